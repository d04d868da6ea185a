"""Node identity under the SDK's mock runtime: a role and instance profile per node kind, the
stack's KMS key and its policy, SSM parameters under that key, log ARNs, and invokes that carry
the stack's provider.

The mocks stand in for AWS (no account here): they record what the program hands the provider,
which is what these tests check.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from infra.components.identity import KEY_ADMIN_ACTIONS, KMS_DELETION_WINDOW_DAYS
from infra.mockrun import FAKE_ACCOUNT, ProgramRun, RecordedResource, run_program
from infra.planning.bundle import Kind, bundle
from tests.conftest import engine_config
from tests.program.test_store_image_identity import API_KEY, HF_TOKEN

HF = "sglang-cluster:hf_token"
RK = "sglang-cluster:router_api_key"
HF_ARN = f"arn:aws:ssm:us-east-1:{FAKE_ACCOUNT}:parameter/sglang/prod-test/hf-token"
RK_ARN = f"arn:aws:ssm:us-east-1:{FAKE_ACCOUNT}:parameter/sglang/prod-test/router-api-key"


@cache
def run_secrets(hf: bool = True, rk: bool = True, **overrides: Any) -> ProgramRun:
    cfg = engine_config(**overrides)
    keys = []
    if hf:
        cfg[HF] = HF_TOKEN
        keys.append(HF)
    if rk:
        cfg[RK] = API_KEY
        keys.append(RK)
    return run_program("prod-test", cfg, keys)


def _one(r: ProgramRun, type_token: str, name_part: str) -> RecordedResource:
    (res,) = [x for x in r.of_type(type_token) if name_part in x.name]
    return res


def _policy(r: ProgramRun, kind: str) -> dict[str, Any]:
    return json.loads(_one(r, "aws:iam/rolePolicy:RolePolicy", f"-{kind}-policy").inputs["policy"])


def _role_arn(r: ProgramRun, kind: str) -> str:
    role = _one(r, "aws:iam/role:Role", f"-{kind}-role")
    # PlanMocks names a role "<logical name>-<7 hex>" and derives its ARN from that name.
    return next(
        f"arn:aws:iam::{FAKE_ACCOUNT}:role/{p.inputs['role']}"
        for p in r.of_type("aws:iam/instanceProfile:InstanceProfile")
        if p.inputs["role"].startswith(role.name)
    )


def _resources(st: dict[str, Any]) -> list[str]:
    res = st["Resource"]
    return res if isinstance(res, list) else [res]


def _key_policy(r: ProgramRun) -> dict[str, Any]:
    (key,) = r.of_type("aws:kms/key:Key")
    return json.loads(key.inputs["policy"])


# ----- roles and instance profiles -----


def test_a_role_and_profile_per_node_kind_on_its_launch_template() -> None:
    r = run_secrets()
    roles = r.of_type("aws:iam/role:Role")
    profiles = r.of_type("aws:iam/instanceProfile:InstanceProfile")
    assert sorted(x.name for x in roles) == ["sglang-identity-router-role", "sglang-identity-servers-role"]
    assert len(profiles) == 2
    for role in roles:
        trust = json.loads(role.inputs["assumeRolePolicy"])
        assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {
        a.inputs["role"].rsplit("-", 1)[0]: a.inputs["policyArn"]
        for a in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert set(attached) == {x.name for x in roles}
    assert all(v.endswith("AmazonSSMManagedInstanceCore") for v in attached.values())
    for lt, kind in (("server-g0-r0-lt", "servers"), ("router-lt", "router")):
        arn = r.named(lt).inputs["iamInstanceProfile"]["arn"]
        assert f":instance-profile/sglang-identity-{kind}-profile-" in arn, (lt, arn)


URI_EFA = {"image_source": "uri", "image_efa_complete": True}
"""A TP16 server across two EFA nodes runs a given image only when it is stated EFA-complete
(``image_source`` auto would build the EFA image into the stack's repository)."""


@pytest.mark.parametrize(
    ("overrides", "pulls"),
    [(URI_EFA, False), ({"image_source": "build"}, True), ({"model_s3_uri": "s3://acme-weights/llm"}, True)],
    ids=["uri", "build", "s3"],
)
def test_server_policy_reads_hf_token_pulls_stack_image_only(overrides: dict, pulls: bool) -> None:
    r = run_secrets(**overrides)
    doc = _policy(r, "servers")
    for st in doc["Statement"]:
        if "*" in _resources(st):
            assert st["Action"] == "ecr:GetAuthorizationToken", st  # AWS allows it on "*" only
            continue
        for res in _resources(st):
            if st["Sid"] == "NodeBundle":  # exactly the server bundle object, read only
                assert st["Action"] == "s3:GetObject" and res == _bundle_arn(r, "server"), st
                continue
            assert "prod-test" in res or "acme-weights" in res or ":repository/" in res, res
    params = [st for st in doc["Statement"] if any(":parameter/" in x for x in _resources(st))]
    assert [_resources(st) for st in params] == [[HF_ARN]]
    sids = {s["Sid"] for s in doc["Statement"]}
    assert ("StackImagePull" in sids) == pulls
    assert ("WeightsRead" in sids) == ("model_s3_uri" in overrides)
    if pulls:
        (repo,) = r.of_type("aws:ecr/repository:Repository")
        pull = next(s for s in doc["Statement"] if s["Sid"] == "StackImagePull")
        assert pull["Resource"].endswith(f":repository/{repo.name}-" + pull["Resource"].rsplit("-", 1)[1])
    if "model_s3_uri" in overrides:
        read = next(s for s in doc["Statement"] if s["Sid"] == "WeightsRead")
        assert read["Resource"] == "arn:aws:s3:::acme-weights/llm/*"


def test_router_policy_reads_only_the_api_key() -> None:
    r = run_secrets(image_source="build", model_s3_uri="s3://acme-weights/llm")
    doc = _policy(r, "router")
    actions = {
        a
        for st in doc["Statement"]
        for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    }
    assert actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
        "ssm:GetParameter",
        "ssm:GetParameters",
        "s3:GetObject",
    }
    every = [x for st in doc["Statement"] for x in _resources(st)]
    assert RK_ARN in every and HF_ARN not in every
    (bundle,) = [st for st in doc["Statement"] if "s3:GetObject" in st["Action"]]
    assert bundle["Resource"] == _bundle_arn(r, "router") != _bundle_arn(r, "server")
    assert "*" not in every


def _bundle_arn(r: ProgramRun, kind: Kind) -> str:
    """ARN of the kind's bundle object as the program uploads it (bucket id + content key)."""
    (obj,) = [o for o in r.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if o.name.endswith(f"-{kind}")]
    assert obj.inputs["key"] == bundle(kind).key
    return f"arn:aws:s3:::{obj.inputs['bucket']}/{obj.inputs['key']}"


def test_server_policy_never_names_the_api_key() -> None:
    doc = _policy(run_secrets(), "servers")
    assert RK_ARN not in [x for st in doc["Statement"] for x in _resources(st)]


def test_given_ecr_image_gets_pull_on_that_repository_only() -> None:
    image = "210987654321.dkr.ecr.us-west-2.amazonaws.com/team/sglang:v0.5.23"
    r = run_secrets(image=image, **URI_EFA)
    pull = next(s for s in _policy(r, "servers")["Statement"] if s["Sid"] == "StackImagePull")
    assert pull["Resource"] == "arn:aws:ecr:us-west-2:210987654321:repository/team/sglang"
    assert r.of_type("aws:ecr/repository:Repository") == []
    assert all(s["Sid"] != "StackImagePull" for s in _policy(r, "router")["Statement"])


def test_log_arns_have_the_stream_form() -> None:
    r = run_secrets()
    (lg,) = r.of_type("aws:cloudwatch/logGroup:LogGroup")
    want = f"arn:aws:logs:us-east-1:{FAKE_ACCOUNT}:log-group:{lg.inputs['name']}:*"
    for kind in ("servers", "router"):
        (logs,) = [s for s in _policy(r, kind)["Statement"] if s["Sid"] == "StackLogs"]
        assert _resources(logs) == [want], kind
        assert set(logs["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}


# ----- the stack's KMS key -----


def test_key_is_deleted_with_the_stack_and_has_an_alias() -> None:
    r = run_secrets()
    (key,) = r.of_type("aws:kms/key:Key")
    assert key.inputs["deletionWindowInDays"] == KMS_DELETION_WINDOW_DAYS == 7
    assert key.inputs["enableKeyRotation"] is True
    (alias,) = r.of_type("aws:kms/alias:Alias")
    assert alias.inputs["name"] == "alias/sglang/prod-test/secrets"
    key_ids = {p.inputs["keyId"].rsplit("/", 1)[1] for p in r.of_type("aws:ssm/parameter:Parameter")}
    assert key_ids == {alias.inputs["targetKeyId"]}  # the alias names the parameters' key


def test_parameters_are_encrypted_with_the_stack_key() -> None:
    r = run_secrets()
    key_arn = f"arn:aws:kms:us-east-1:{FAKE_ACCOUNT}:key/"
    params = r.of_type("aws:ssm/parameter:Parameter")
    assert len(params) == 2
    for p in params:
        assert p.inputs["type"] == "SecureString"
        assert p.inputs["keyId"].startswith(key_arn), p.inputs["keyId"]
    assert len({p.inputs["keyId"] for p in params}) == 1


def test_key_policy_names_only_this_stacks_principals() -> None:
    r = run_secrets()
    doc = _key_policy(r)
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert set(by_sid) == {
        "AccountAdministersKey",
        "DeployerWritesParameters",
        "ServersReadHfToken",
        "RouterReadsApiKey",
    }
    admin = by_sid["AccountAdministersKey"]
    deployer = f"arn:aws:iam::{FAKE_ACCOUNT}:role/plan-deployer"
    assert admin["Principal"] == {"AWS": [f"arn:aws:iam::{FAKE_ACCOUNT}:root", deployer]}
    # Administrative actions only: root "kms:*" would let IAM policies grant Decrypt.
    assert admin["Action"] == list(KEY_ADMIN_ACTIONS)
    assert "kms:PutKeyPolicy" in admin["Action"] and "kms:ScheduleKeyDeletion" in admin["Action"]
    for forbidden in ("kms:*", "kms:Decrypt", "kms:Encrypt", "kms:CreateGrant", "kms:ReEncryptFrom"):
        assert forbidden not in admin["Action"]
    assert not any(a.endswith("*") for a in admin["Action"])

    servers, router = _role_arn(r, "servers"), _role_arn(r, "router")
    # The deployer is the IAM role behind the assumed-role session, not the session.
    assert by_sid["DeployerWritesParameters"]["Principal"] == {"AWS": deployer}
    assert by_sid["DeployerWritesParameters"]["Action"] == ["kms:Encrypt", "kms:Decrypt"]
    assert by_sid["ServersReadHfToken"]["Principal"] == {"AWS": servers}
    assert by_sid["RouterReadsApiKey"]["Principal"] == {"AWS": router}
    for sid, params in (
        ("DeployerWritesParameters", sorted([HF_ARN, RK_ARN])),
        ("ServersReadHfToken", HF_ARN),
        ("RouterReadsApiKey", RK_ARN),
    ):
        cond = by_sid[sid]["Condition"]["StringEquals"]
        assert cond["kms:ViaService"] == "ssm.us-east-1.amazonaws.com"
        assert cond["kms:CallerAccount"] == FAKE_ACCOUNT
        assert cond["kms:EncryptionContext:PARAMETER_ARN"] == params, sid
    for sid in ("ServersReadHfToken", "RouterReadsApiKey"):
        assert by_sid[sid]["Action"] == ["kms:Decrypt"]
    named = {
        x
        for s in doc["Statement"]
        for x in (
            s["Principal"]["AWS"] if isinstance(s["Principal"]["AWS"], list) else [s["Principal"]["AWS"]]
        )
    }
    assert named == {f"arn:aws:iam::{FAKE_ACCOUNT}:root", deployer, servers, router}


def test_only_the_secrets_set_get_statements() -> None:
    r = run_secrets(rk=False)
    sids = {s["Sid"] for s in _key_policy(r)["Statement"]}
    assert sids == {"AccountAdministersKey", "DeployerWritesParameters", "ServersReadHfToken"}
    assert [p.inputs["name"] for p in r.of_type("aws:ssm/parameter:Parameter")] == [
        "/sglang/prod-test/hf-token"
    ]
    router = _policy(r, "router")
    assert [s["Sid"] for s in router["Statement"]] == ["StackLogs", "NodeBundle"]


def test_no_key_without_secrets() -> None:
    r = run_secrets(hf=False, rk=False)
    assert r.of_type("aws:kms/key:Key") == []
    assert r.of_type("aws:kms/alias:Alias") == []
    assert r.of_type("aws:ssm/parameter:Parameter") == []


# ----- invokes -----


@pytest.mark.parametrize("mode", ["uri", "build"])
def test_every_invoke_uses_the_stack_provider(mode: str) -> None:
    """The mock's ``call`` receives the provider reference of each invoke: it must be the
    stack's explicit provider named ``aws`` (``urn:...$pulumi:providers:aws::aws::<id>``), never the
    default provider (an empty reference)."""
    r = run_secrets(**(URI_EFA if mode == "uri" else {"image_source": mode}))
    tokens = {t for t, _ in r.invokes}
    want = {"aws:index/getCallerIdentity:getCallerIdentity", "aws:iam/getSessionContext:getSessionContext"}
    if mode == "build":
        want.add("aws:ecr/getAuthorizationToken:getAuthorizationToken")
    assert want <= tokens, tokens
    for token, provider in r.invokes:
        urn, _, _ = provider.rpartition("::")  # "<provider URN>::<provider id>"
        assert urn.endswith("pulumi:providers:aws::aws"), (token, provider)
