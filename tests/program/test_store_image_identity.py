"""Model store, serving image, node identity and secrets, under the SDK's mock runtime.

The mocks stand in for AWS (no account here). Every stack file runs once more with known fake
secret values set, to prove those values reach SSM parameters and nowhere else.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
import yaml

from infra.mockrun import ProgramRun, load_stack_config, run_program, stack_file
from infra.planning.userdata import split_mime, unpack_b64
from tests.conftest import STACKS, engine_config

HF_TOKEN = "hf_FAKEtokenFORtests0123456789abcdef"
API_KEY = "sk-router-FAKE-key-for-tests-42"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
"""Pulumi's marker of a secret value in serialized properties (sdk rpc.py ``_special_sig_key``)."""


def unsecret(value: Any) -> tuple[bool, Any]:
    """``(was it marked secret, plain value)`` of a recorded input."""
    if isinstance(value, dict) and SECRET_SIG in value:
        return True, value["value"]
    return False, value


@cache
def run_cfg(**overrides: Any) -> ProgramRun:
    return run_program("prod-test", engine_config(**overrides))


@cache
def run_with_secrets(stack: str) -> ProgramRun:
    cfg = load_stack_config(stack_file(stack)[1])
    cfg["sglang-cluster:hf_token"] = HF_TOKEN
    cfg["sglang-cluster:router_api_key"] = API_KEY
    # As `pulumi config set --secret` would mark them.
    return run_program(stack, cfg, ["sglang-cluster:hf_token", "sglang-cluster:router_api_key"])


# ----- model store -----


def test_fsx_in_the_node_subnet_with_lustre_rules() -> None:
    r = run_cfg()
    fs = r.of_type("aws:fsx/lustreFileSystem:LustreFileSystem")
    assert len(fs) == 1
    fsi = fs[0].inputs
    # Sized for weights_load_target_secs (180 s default): 2 nodes x 135 GiB need 7200 GiB at
    # 250 MB/s/TiB (3 file servers per node; infra/planning/fsx_sizing.py; test_fsx_sizing.py).
    assert fsi["deploymentType"] == "PERSISTENT_2" and fsi["storageCapacity"] == 7200
    assert fsi["perUnitStorageThroughput"] == 250
    assert r.plan.store and (r.plan.store.capacity_gib, r.plan.store.throughput_mb_per_tib) == (7200, 250)
    lt_subnet = r.named("server-g0-r0-eni").inputs["subnetId"]
    assert fsi["subnetIds"] == lt_subnet
    (store_sg,) = fsi["securityGroupIds"]
    nodes_sg = r.named("sglang-net-nodes-self-in").inputs["securityGroupId"]
    rules = [x.inputs for x in r.of_type(INGRESS) if x.name.startswith("sglang-store-lustre-")]
    into_store = {
        (x["fromPort"], x["toPort"], x["referencedSecurityGroupId"])
        for x in rules
        if x["securityGroupId"] == store_sg
    }
    assert into_store == {
        (988, 988, nodes_sg),
        (1018, 1023, nodes_sg),
        (988, 988, store_sg),
        (1018, 1023, store_sg),
    }
    # Lustre servers call back to clients on the same ports.
    into_nodes = {
        (x["fromPort"], x["toPort"], x["referencedSecurityGroupId"])
        for x in rules
        if x["securityGroupId"] == nodes_sg
    }
    assert into_nodes == {(988, 988, store_sg), (1018, 1023, store_sg)}


def test_no_association_without_s3() -> None:
    assert run_cfg().of_type("aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation") == []


def test_s3_association_maps_prefix_to_models() -> None:
    r = run_cfg(model_s3_uri="s3://acme-weights/llm")
    (dra,) = r.of_type("aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation")
    assert dra.inputs["dataRepositoryPath"] == "s3://acme-weights/llm"
    assert dra.inputs["fileSystemPath"] == "/models"
    assert dra.inputs["batchImportMetaDataOnCreate"] is True
    assert "SGLANG_MODEL_SOURCE=s3" in unpack_b64(r.named("server-g0-r0").inputs["userDataBase64"])


def test_scratch_store_for_dev() -> None:
    r = run_program("dev", engine_config(fsx_deployment_type="SCRATCH_2"))
    (fs,) = r.of_type("aws:fsx/lustreFileSystem:LustreFileSystem")
    assert fs.inputs["deploymentType"] == "SCRATCH_2"
    assert "perUnitStorageThroughput" not in fs.inputs and "importPath" not in fs.inputs


def test_nodes_mount_the_store_and_leader_downloads() -> None:
    r = run_cfg()
    fs = r.outputs["model_store"]
    leader = unpack_b64(r.named("server-g0-r0").inputs["userDataBase64"])
    follower = unpack_b64(r.named("server-g0-r1").inputs["userDataBase64"])
    for ud in (leader, follower):
        assert f"SGLANG_FSX_DNS={fs['dns_name']}" in ud and f"SGLANG_FSX_MOUNT_NAME={fs['mount_name']}" in ud
        assert "SGLANG_MODEL_DIR=/fsx/models/Qwen/Qwen2.5-72B-Instruct" in ud
    assert "SGLANG_MODEL_LEADER=1" in leader and "SGLANG_MODEL_LEADER=0" in follower


def test_no_store_when_disabled() -> None:
    r = run_cfg(model_store=False)
    assert r.of_type("aws:fsx/lustreFileSystem:LustreFileSystem") == []
    assert r.outputs["model_store"] is None


# ----- serving image -----


def test_uri_mode_has_no_repository() -> None:
    """One TP8 server per node: NCCL stays inside the node, so the public image runs as is
    (``uri``; auto would mirror it into ECR on this EFA type, issue 10)."""
    r = run_cfg(model="Qwen/Qwen2.5-14B-Instruct", tp_size=8, image_source="uri")
    assert r.plan.spec.image_source == "uri"
    assert r.of_type("aws:ecr/repository:Repository") == []
    assert r.outputs["image"] == "lmsysorg/sglang:v0.5.23"


@pytest.mark.parametrize("mode", ["mirror", "build"])
def test_ecr_modes(mode: str) -> None:
    # Mirroring runs the image as is: across EFA nodes only with the EFA statement.
    r = run_cfg(image_source=mode, image_efa_complete=mode == "mirror")
    (repo,) = r.of_type("aws:ecr/repository:Repository")
    assert repo.inputs["forceDelete"] is True
    assert repo.inputs["imageScanningConfiguration"]["scanOnPush"] is True
    (lc,) = r.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    rule = json.loads(lc.inputs["policy"])["rules"][0]
    assert rule["selection"]["tagStatus"] == "untagged" and rule["action"]["type"] == "expire"
    (img,) = r.of_type("docker:index/image:Image")
    assert img.inputs["build"]["platform"] == "linux/amd64"
    if mode == "mirror":
        assert img.inputs["imageName"].endswith(":v0.5.23")
        assert img.inputs["build"]["args"]["SOURCE_IMAGE"] == "lmsysorg/sglang:v0.5.23"
    else:
        assert img.inputs["imageName"].endswith(":sglang-0.5.23")
        assert img.inputs["build"]["args"] == {
            "BASE_IMAGE": "lmsysorg/sglang:v0.5.23",
            "SGLANG_VERSION": "0.5.23",
        }
    secret, registry = unsecret(img.inputs["registry"])
    assert secret and registry["username"] == "AWS"  # the ECR password never shows in plain
    # Nodes pull the pushed digest from ECR after logging in with their role.
    ud = unpack_b64(r.named("server-g0-r0").inputs["userDataBase64"])
    assert f"SGLANG_IMAGE={r.outputs['image']}" in ud and "@sha256:" in r.outputs["image"]
    assert ".dkr.ecr.us-east-1.amazonaws.com" in ud.split("SGLANG_ECR_REGISTRY=")[1].splitlines()[0]


# ----- node identity (roles, key, policies: test_identity.py) -----


def test_log_group_retention() -> None:
    r = run_cfg(log_retention_days=14)
    (lg,) = r.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert lg.inputs["name"] == "/sglang/prod-test" and lg.inputs["retentionInDays"] == 14
    ud = unpack_b64(r.named("server-g0-r0").inputs["userDataBase64"])
    doc = yaml.safe_load(split_mime(ud)["text/cloud-config"])
    (cw,) = [f for f in doc["write_files"] if f["path"] == "/etc/sglang/cloudwatch-agent.json"]
    streams = json.loads(cw["content"])["logs"]["logs_collected"]["files"]["collect_list"]
    assert {s["log_group_name"] for s in streams} == {"/sglang/prod-test"}
    assert {s["log_stream_name"] for s in streams} == {
        "server-g0-r0/boot.log",
        "server-g0-r0/server-0.log",
        "server-g0-r0/ready-0.log",
    }


# ----- secrets -----


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_reach_ssm_and_nothing_else(stack: str) -> None:
    r = run_with_secrets(stack)
    params = {p.inputs["name"]: p.inputs for p in r.of_type("aws:ssm/parameter:Parameter")}
    assert set(params) == {f"/sglang/{stack}/hf-token", f"/sglang/{stack}/router-api-key"}
    assert all(p["type"] == "SecureString" for p in params.values())
    everything = json.dumps(r.outputs)
    for inst in r.of_type("aws:ec2/instance:Instance"):
        ud = unpack_b64(inst.inputs["userDataBase64"])
        everything += ud + json.dumps(inst.inputs)
    for lt in r.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        everything += json.dumps(lt.inputs)
    for secret in (HF_TOKEN, API_KEY):
        assert secret not in everything
    # The nodes learn where the secrets are, not what they are.
    assert f"SGLANG_HF_TOKEN_PARAM=/sglang/{stack}/hf-token" in unpack_b64(
        r.named(r.plan.layout.nodes[0].name).inputs["userDataBase64"]
    )
    assert f"SGLANG_API_KEY_PARAM=/sglang/{stack}/router-api-key" in unpack_b64(
        r.named("router").inputs["userDataBase64"]
    )


def test_secret_values_are_marked_secret() -> None:
    """The SSM parameter's value is a Pulumi secret (encrypted in state, masked in output)."""
    r = run_with_secrets("prod-tp16")
    (hf,) = [p for p in r.of_type("aws:ssm/parameter:Parameter") if p.name.endswith("hf-token")]
    assert unsecret(hf.inputs["value"]) == (True, HF_TOKEN)
    assert r.plan.secret_params == {
        "hf_token": "/sglang/prod-tp16/hf-token",
        "router_api_key": "/sglang/prod-tp16/router-api-key",
    }
