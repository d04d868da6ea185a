"""The image build's inputs do not depend on where the project is checked out.

pulumi-docker 5.x (``provider/provider.go`` ``Diff``, read 2026-11-21) compares the ``build``
inputs as plain values: any change, such as the absolute path of another checkout, is an
update, and an update builds and pushes the whole 20-30 GB image again. The rebuilt image gets
a new digest (the EFA installer's apt layers are not reproducible), the nodes' user data
carries that digest, and ``userDataReplaceOnChange`` replaces every GPU node. So the build
context and Dockerfile are given relative to the project directory, where the engine starts
the provider (pulumi/pulumi ``sdk/go/common/resource/plugin/plugin.go``: ``cmd.Dir = pwd``).
Run under the SDK's mocks (no Docker daemon here): the assertion is on the inputs the program
hands the provider.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.components.image import DOCKER_DIR, PROJECT_ROOT
from tests.program.test_store_image_identity import run_cfg

IMAGE = "docker:index/image:Image"


@pytest.mark.parametrize("mode", ["build", "mirror"])
def test_build_inputs_are_relative_to_the_project(mode: str) -> None:
    r = run_cfg(image_source=mode, image_efa_complete=mode == "mirror")
    (img,) = r.of_type(IMAGE)
    build = img.inputs["build"]
    for key in ("context", "dockerfile"):
        assert not Path(build[key]).is_absolute(), f"build.{key}={build[key]!r} names this checkout"
        assert str(PROJECT_ROOT) not in build[key]
        # ... and still names the files in this project, from the project directory.
        assert (PROJECT_ROOT / build[key]).exists()
    sub = DOCKER_DIR if mode == "build" else DOCKER_DIR / "mirror"
    assert PROJECT_ROOT / build["context"] == sub
    assert PROJECT_ROOT / build["dockerfile"] == sub / "Dockerfile"
