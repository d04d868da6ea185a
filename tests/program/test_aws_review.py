"""What a real ``pulumi up`` against AWS would refuse or race, found in review of issue 6.

The SDK's mock runtime stands in for AWS and the engine (no account here): these tests check
what the program hands the provider and the edges the engine receives, against the provider's
own validation rules and AWS's documented behaviour (sources on each test).
"""

from __future__ import annotations

import re
from functools import cache

import pytest

from infra.components.identity import key_alias_name
from infra.mockrun import ProgramRun, run_program
from tests.conftest import engine_config
from tests.program.test_store_image_identity import API_KEY, HF_TOKEN

HF = "sglang-cluster:hf_token"
RK = "sglang-cluster:router_api_key"
INSTANCE = "aws:ec2/instance:Instance"
DRA = "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation"

KMS_ALIAS_NAME = re.compile(r"^alias/[0-9A-Za-z_/-]+$")
"""terraform-provider-aws ``internal/service/kms/validate.go`` ``validNameForResource`` (the
pulumi-aws provider runs it at preview): ``alias/`` then only ``[0-9A-Za-z_/-]``; KMS's own
``CreateAlias`` pattern is ``^[a-zA-Z0-9:/_-]+$``
(https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html)."""


@cache
def run_secrets(stack: str = "prod-test") -> ProgramRun:
    cfg = engine_config()
    cfg[HF] = HF_TOKEN
    cfg[RK] = API_KEY
    return run_program(stack, cfg, [HF, RK])


# ----- SSM SecureString parameters: standard tier, so the key policy's Encrypt/Decrypt fit -----


def test_parameters_are_standard_tier_whatever_the_account_default() -> None:
    """Without ``tier`` the parameter takes the account's default tier (pulumi-aws
    ``ssm.Parameter`` docstring: "If not specified, will use the default parameter tier for the
    region"). An Advanced SecureString is envelope-encrypted with the AWS Encryption SDK
    (``kms:GenerateDataKey``, https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html),
    which the key policy does not grant the deployer: PutParameter would fail in an account
    whose default tier is Advanced. Standard parameters are encrypted directly (Encrypt/Decrypt)."""
    r = run_secrets()
    params = r.of_type("aws:ssm/parameter:Parameter")
    assert len(params) == 2
    for p in params:
        assert p.inputs.get("tier") == "Standard", p.name


# ----- KMS alias: a valid name for every Pulumi stack name -----


@pytest.mark.parametrize(
    ("stack", "want"),
    [
        ("prod-tp16", "alias/sglang/prod-tp16/secrets"),
        ("prod.tp16", "alias/sglang/prod-tp16/secrets"),
        ("team_a.v2.eu", "alias/sglang/team_a-v2-eu/secrets"),
    ],
)
def test_key_alias_name_follows_the_kms_alias_grammar(stack: str, want: str) -> None:
    """Pulumi stack names may contain ``.`` (``pulumi stack init`` accepts alphanumerics,
    ``-``, ``_`` and ``.``); a KMS alias may not."""
    name = key_alias_name(stack)
    assert name == want
    assert KMS_ALIAS_NAME.match(name), name


def test_dotted_stack_gets_a_valid_alias_in_the_program() -> None:
    r = run_secrets("prod.test")
    (alias,) = r.of_type("aws:kms/alias:Alias")
    assert KMS_ALIAS_NAME.match(alias.inputs["name"]), alias.inputs["name"]
    # The parameter names keep the stack name as it is (SSM allows ".").
    names = {p.inputs["name"] for p in r.of_type("aws:ssm/parameter:Parameter")}
    assert names == {"/sglang/prod.test/hf-token", "/sglang/prod.test/router-api-key"}


# ----- GPU nodes launch after the S3 data repository association -----


def test_gpu_instances_wait_for_the_s3_association() -> None:
    """With ``model_s3_uri`` the nodes wait at boot for ``/fsx/models/<model>/config.json``,
    which only the data repository association makes appear. Creating the association takes
    minutes after the file system, and it fails at create time on a bad bucket or prefix; GPU
    nodes launched in parallel would bill $50-100 an hour each while it is created or fails.
    The edge is ordering-only: replacing the association never replaces a GPU node."""
    r = run_program("prod-test", engine_config(model_s3_uri="s3://acme-weights/llm"))
    (dra,) = r.of_type(DRA)
    gpu = [i for i in r.of_type(INSTANCE) if i.name != "router"]
    assert gpu
    for inst in gpu:
        assert dra.name in r.waits_for(inst), inst.name
        via_inputs = {n for names in inst.property_dependencies.values() for n in names}
        assert dra.name not in via_inputs, inst.name
