"""The Pulumi program of every ``backend: slurm`` stack under the SDK's mock runtime.

The mocks stand in for AWS and for the two CloudFormation stacks (no account here): the
provider stack answers a ``ServiceToken`` and the cluster stack the outputs its template
declares. Everything the program sends is checked as CloudFormation and ParallelCluster would
receive it; the configuration and template themselves go through ParallelCluster's schema and
cfn-lint in tests/conformance/test_slurm_conformance.py.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import plan_document
from infra.components.identity import given_ecr_repository_arn, server_policy_document
from infra.mockrun import FAKE_ACCOUNT, ProgramRun, run_program, run_stack
from infra.planning import slurm
from infra.spec import SpecError
from tests.conftest import ROOT, SLURM_STACKS, engine_config

STACK = "aws:cloudformation/stack:Stack"


@cache
def run(stack: str) -> ProgramRun:
    return run_stack(stack)


def provider(r: ProgramRun) -> Any:
    return r.named("sglang-slurm-provider")


def cluster(r: ProgramRun) -> Any:
    return r.named("sglang-slurm-cluster")


def template(r: ProgramRun) -> dict[str, Any]:
    return json.loads(cluster(r).inputs["templateBody"])


def resolve(value: Any, params: dict[str, str]) -> Any:
    """CloudFormation's ``Ref`` to a parameter and ``Fn::Sub`` with a variable map, resolved."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return params[value["Ref"]]
        if set(value) == {"Fn::Sub"}:
            text, variables = value["Fn::Sub"]
            for k, v in variables.items():
                text = text.replace("${" + k + "}", str(resolve(v, params)))
            return text
        return {k: resolve(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, params) for v in value]
    return value


@pytest.mark.parametrize("stack", SLURM_STACKS)
def test_provider_stack_is_parallelclusters_published_template(stack: str) -> None:
    r = run(stack)
    p = provider(r)
    region = r.config["aws:region"]
    assert p.inputs["templateUrl"] == (
        f"https://{region}-aws-parallelcluster.s3.{region}.amazonaws.com/parallelcluster/"
        f"{slurm.PCLUSTER_VERSION}/templates/custom_resource/cluster.yaml"
    )
    assert sorted(p.inputs["capabilities"]) == [
        "CAPABILITY_AUTO_EXPAND",
        "CAPABILITY_IAM",
        "CAPABILITY_NAMED_IAM",
    ]
    assert p.custom_timeouts["create"] == "30m"


@pytest.mark.parametrize("stack", SLURM_STACKS)
def test_cluster_stack_holds_one_custom_resource_deleted_with_the_stack(stack: str) -> None:
    r = run(stack)
    t = template(r)
    (res,) = t["Resources"].values()
    assert res["Type"] == "Custom::PclusterCluster"
    assert res["DeletionPolicy"] == "Delete" and res["Properties"]["DeletionPolicy"] == "Delete"
    assert res["Properties"]["ServiceToken"] == {"Ref": "ServiceToken"}
    # ParallelCluster makes a stack of its own named after the cluster.
    assert res["Properties"]["ClusterName"] != cluster(r).inputs["name"]
    # The cluster stack gets the provider's ServiceToken (the mock's Lambda ARN).
    token = cluster(r).inputs["parameters"]["ServiceToken"]
    assert token.startswith(f"arn:aws:lambda:{r.config['aws:region']}:{FAKE_ACCOUNT}:function:pcluster-cfn-")
    assert "sglang-slurm-provider" in cluster(r).depends_on
    assert cluster(r).custom_timeouts == {"create": "150m", "update": "150m", "delete": "90m"}
    assert int(cluster(r).inputs["timeoutInMinutes"]) < 150
    assert set(t["Outputs"]) >= {"HeadNodeInstanceId", "HeadNodePrivateIp", "ValidationMessages"}


@pytest.mark.parametrize("stack", SLURM_STACKS)
def test_template_resolves_to_the_planned_cluster_config(stack: str) -> None:
    """The ClusterConfiguration CloudFormation hands the Lambda, its parameters resolved, is
    exactly the YAML the plan shows (what schema validation checked)."""
    r = run(stack)
    params = cluster(r).inputs["parameters"]
    res = next(iter(template(r)["Resources"].values()))
    resolved = resolve(res["Properties"]["ClusterConfiguration"], params)
    doc = plan_document(r)
    assert resolved == yaml.safe_load(doc["slurm"]["cluster_config"])
    assert doc["slurm"]["cloudformation_template"] == cluster(r).inputs["templateBody"]


@pytest.mark.parametrize("stack", SLURM_STACKS)
def test_cluster_waits_for_network_store_scripts_and_policy(stack: str) -> None:
    r = run(stack)
    waits = r.waits_for(cluster(r))
    expected = {
        "sglang-net-nodes-self-in",
        "sglang-net-nodes-self-out",
        "sglang-net-private-rta",
        "sglang-net-nat",
        "sglang-store-fs",
        "sglang-slurm-node-policy",
        "sglang-slurm-job-script",
        "sglang-slurm-actions-private",
        *(f"sglang-slurm-action-{a.removesuffix('.sh')}" for a in slurm.ACTION_FILES),
    }
    assert expected <= waits, expected - waits


@pytest.mark.parametrize("stack", SLURM_STACKS)
def test_no_instances_of_our_own(stack: str) -> None:
    """ParallelCluster launches the head node and the fleet: no instance, launch template or
    placement group is created by the program itself."""
    types = {x.type for x in run(stack).resources}
    assert not types & {
        "aws:ec2/instance:Instance",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/placementGroup:PlacementGroup",
    }


@pytest.mark.parametrize("stack", SLURM_STACKS)
def test_node_policy_is_the_ec2_backends_and_attachable_by_parallelcluster(stack: str) -> None:
    r = run(stack)
    pol = r.named("sglang-slurm-node-policy")
    # The provider's Lambda may attach only policies under /parallelcluster/ (or named so).
    assert pol.inputs["path"] == "/parallelcluster/"
    doc = json.loads(pol.inputs["policy"])
    log_arn = f"arn:aws:logs:{r.config['aws:region']}:{FAKE_ACCOUNT}:log-group:/sglang/{stack}"
    repo_arn = given_ecr_repository_arn(r.outputs["image"])
    assert repo_arn and repo_arn in json.dumps(doc)  # image pull on this stack's repository
    assert doc == server_policy_document(r.plan, FAKE_ACCOUNT, repo_arn, log_arn)
    config = yaml.safe_load(plan_document(r)["slurm"]["cluster_config"])
    arn = cluster(r).inputs["parameters"]["NodePolicyArn"]
    assert arn.startswith(f"arn:aws:iam::{FAKE_ACCOUNT}:policy/parallelcluster/")
    for iam in [config["HeadNode"]["Iam"], *(q["Iam"] for q in config["Scheduling"]["SlurmQueues"])]:
        assert iam["AdditionalIamPolicies"] == [{"Policy": arn}, {"Policy": slurm.SSM_CORE_POLICY}]


@pytest.mark.parametrize("stack", SLURM_STACKS)
def test_bucket_holds_the_actions_and_the_job_script(stack: str) -> None:
    r = run(stack)
    bucket = r.named("sglang-slurm-actions")
    assert bucket.inputs["forceDestroy"] is True  # pulumi destroy empties and deletes it
    keys = {}
    for o in r.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        keys[o.inputs["key"]] = o
    assert set(keys) == {f"custom-actions/{a}" for a in slurm.ACTION_FILES} | {slurm.JOB_SCRIPT_KEY}
    for a in slurm.ACTION_FILES:
        path = Path(keys[f"custom-actions/{a}"].inputs["source"].path)
        assert path == ROOT / "slurm" / "custom-actions" / a and path.is_file()
    assert keys[slurm.JOB_SCRIPT_KEY].inputs["content"] == plan_document(r)["slurm"]["job_script"]
    config = yaml.safe_load(plan_document(r)["slurm"]["cluster_config"])
    scripts = [s["Script"] for s in config["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Sequence"]]
    scripts += [q["CustomActions"]["OnNodeConfigured"]["Script"] for q in config["Scheduling"]["SlurmQueues"]]
    for uri in scripts:
        bucket_name, _, key = uri.removeprefix("s3://").partition("/")
        assert bucket_name == bucket.id and key in keys


@pytest.mark.parametrize("stack", SLURM_STACKS)
def test_outputs(stack: str) -> None:
    r = run(stack)
    out = r.outputs
    spec = r.plan.spec
    head = out["head_node"]
    assert head["instance_id"].startswith("i-") and head["private_ip"]
    host = head["public_ip"] if spec.router_public_ip else head["private_ip"]
    assert out["router_url"] == f"http://{host}:{spec.router_port}"
    assert out["openai_base_url"] == out["router_url"] + "/v1"
    assert out["validation_messages"] == "[]"
    assert out["slurm_job_name"] == slurm.job_name(stack)
    assert head["instance_id"] in out["squeue_command"]
    assert f"squeue --name {slurm.job_name(stack)}" in out["squeue_command"]
    assert out["backend"] == "slurm"


def test_slurm_tp16_layout() -> None:
    from infra.cli import render_table

    doc = plan_document(run("slurm-tp16"))
    assert doc["backend"] == "slurm"
    table = render_table(doc)
    assert "(slurm, us-east-1)" in table and f"ParallelCluster {slurm.PCLUSTER_VERSION}" in table
    servers = [n for n in doc["nodes"] if n["role"] == "server"]
    assert [n["instance_type"] for n in servers] == ["p5.48xlarge"] * 2
    assert [n["private_ip"] for n in servers] == ["slurm:gpu-st-p5-48xlarge-1", "slurm:gpu-st-p5-48xlarge-2"]
    for rank, n in enumerate(servers):
        argv = n["processes"][0]["argv"]
        assert argv[argv.index("--tp-size") + 1] == "16"
        assert argv[argv.index("--node-rank") + 1] == str(rank)
        assert argv[argv.index("--dist-init-addr") + 1] == "gpu-st-p5-48xlarge-1:20000"
        assert argv[argv.index("--model-path") + 1] == "/fsx/models/Qwen/Qwen2.5-72B-Instruct"
    config = yaml.safe_load(doc["slurm"]["cluster_config"])
    (queue,) = config["Scheduling"]["SlurmQueues"]
    (cr,) = queue["ComputeResources"]
    assert (cr["MinCount"], cr["MaxCount"], cr["Efa"]) == (2, 2, {"Enabled": True})
    assert queue["Networking"]["PlacementGroup"] == {"Enabled": True}
    assert config["SharedStorage"][0]["MountDir"] == "/fsx"
    assert (
        config["SharedStorage"][0]["FsxLustreSettings"]["FileSystemId"]
        == run("slurm-tp16").outputs["model_store"]["file_system_id"]
    )


@pytest.mark.parametrize("key", ["hf_token", "router_api_key"])
def test_secrets_are_refused_before_anything_exists(key: str) -> None:
    config = engine_config(backend="slurm", **{key: "s3cr3t-value"})
    with pytest.raises(SpecError) as e:
        run_program("slurm-secret", config, secret_keys=[f"sglang-cluster:{key}"])
    assert e.value.key == f"sglang-cluster:{key}"
