"""Every rendered IAM policy through parliament (duo-labs), a linter that knows AWS's actions and
the resource-ARN format each action takes (its IAM data, parliament 1.6.4).

It catches unknown actions and resource ARNs of the wrong form, for example a bare
``log-group:NAME`` ARN for ``logs:PutLogEvents`` (aws-cdk#7096). The key policy is a resource
policy: there ``"Resource": "*"`` means the key itself
(https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html), so parliament's
``RESOURCE_STAR`` is the one finding it may have.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from infra.mockrun import ProgramRun, run_program
from tests.conformance.conftest import TOOLS, run_json
from tests.conftest import engine_config
from tests.program.test_store_image_identity import API_KEY, HF_TOKEN

PARLIAMENT_PYTHON = Path(
    os.environ.get("PARLIAMENT_PYTHON", str(TOOLS / "parliament-venv" / "bin" / "python"))
)
VARIANTS: dict[str, dict[str, Any]] = {
    "uri": {},
    "build": {"image_source": "build"},
    "s3": {"model_s3_uri": "s3://acme-weights/llm"},
    "given-ecr": {"image": "210987654321.dkr.ecr.us-west-2.amazonaws.com/team/sglang:v0.5.23"},
}


@cache
def _run(variant: str) -> ProgramRun:
    cfg = engine_config(**VARIANTS[variant])
    cfg["sglang-cluster:hf_token"] = HF_TOKEN
    cfg["sglang-cluster:router_api_key"] = API_KEY
    return run_program("prod-test", cfg, ["sglang-cluster:hf_token", "sglang-cluster:router_api_key"])


@cache
def _findings() -> dict[str, list]:
    docs: dict[str, Any] = {}
    for variant in VARIANTS:
        r = _run(variant)
        for pol in r.of_type("aws:iam/rolePolicy:RolePolicy"):
            docs[f"{variant}/{pol.name}"] = json.loads(pol.inputs["policy"])
        (key,) = r.of_type("aws:kms/key:Key")
        docs[f"{variant}/key"] = json.loads(key.inputs["policy"])
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/sglang/x"
    docs["probe/bare-log-group"] = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": arn}],
    }
    docs["probe/unknown-action"] = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:Decrypts", "Resource": arn}],
    }
    return run_json(PARLIAMENT_PYTHON, "check_iam_policies.py", docs)


def test_the_linter_is_live() -> None:
    found = _findings()
    assert [f[0] for f in found["probe/bare-log-group"]] == ["RESOURCE_MISMATCH"]
    assert "UNKNOWN_ACTION" in [f[0] for f in found["probe/unknown-action"]]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_role_policies_have_no_findings(variant: str) -> None:
    found = {k: v for k, v in _findings().items() if k.startswith(f"{variant}/") and "-policy" in k}
    assert len(found) == 2  # servers and router
    assert found == {k: [] for k in found}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_key_policy_has_only_resource_star(variant: str) -> None:
    issues = {f[0] for f in _findings()[f"{variant}/key"]}
    assert issues <= {"RESOURCE_STAR"}, _findings()[f"{variant}/key"]
