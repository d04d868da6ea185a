"""Instances name their launch template version as EC2 expects it: ``"1"``, not ``"1.0"``.

The engine returns ``latestVersion`` as a protobuf number (a double); the Python SDK casts it
to ``int`` by the resource's type annotation (``pulumi/runtime/rpc.py``
``translate_output_properties``) only when the property arrives under its engine name. The
mock must return it the same way, or the plan shows ``version: "1.0"``, which is not what the
real run sends (and not a version EC2 knows: RunInstances takes ``$Latest``, ``$Default`` or a
version number). Run under the SDK's mocks.
"""

from __future__ import annotations

import pytest

from infra.mockrun import run_stack

INSTANCE = "aws:ec2/instance:Instance"


@pytest.mark.parametrize("stack", ["prod-tp16", "dev"])
def test_instances_use_an_integer_template_version(stack: str) -> None:
    r = run_stack(stack)
    instances = r.of_type(INSTANCE)
    assert instances
    for inst in instances:
        assert inst.inputs["launchTemplate"]["version"] == "1", inst.name
