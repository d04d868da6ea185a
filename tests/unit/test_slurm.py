"""The SLURM backend's pure planning (infra/planning/slurm.py) and spec rules (infra/spec/backend.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from infra.planning import slurm
from infra.planning.cluster import ClusterPlan, plan_cluster, server_node_boot
from infra.spec import SpecError, parse_config
from tests.conftest import base_config

IDS = slurm.SlurmResources(
    head_subnet_id="subnet-0123456789abcdef0",
    compute_subnet_id="subnet-0123456789abcdef1",
    node_sg_id="sg-0123456789abcdef0",
    router_sg_id="sg-0123456789abcdef1",
    node_policy_arn="arn:aws:iam::123456789012:policy/parallelcluster/p",
    actions_bucket="bucket-1",
    file_system_id="fs-0123456789abcdef0",
)


def plan_of(**overrides: Any) -> ClusterPlan:
    return plan_cluster(parse_config(base_config(backend="slurm", **overrides)), "slurm-test", "us-east-1")


def config_of(**overrides: Any) -> dict[str, Any]:
    return slurm.cluster_config(plan_of(**overrides), IDS, "lmsysorg/sglang:v0.5.23")


def gpu_queue(config: dict[str, Any]) -> dict[str, Any]:
    (q,) = [q for q in config["Scheduling"]["SlurmQueues"] if q["Name"] == slurm.QUEUE]
    return q


def test_counts_come_from_the_layout() -> None:
    q = gpu_queue(config_of())
    (cr,) = q["ComputeResources"]
    assert (cr["InstanceType"], cr["MinCount"], cr["MaxCount"]) == ("p5.48xlarge", 2, 2)
    assert cr["Efa"] == {"Enabled": True}
    q4 = gpu_queue(config_of(tp_size=8, replicas=4, model="Qwen/Qwen2.5-14B-Instruct"))
    assert q4["ComputeResources"][0]["MinCount"] == 4


def test_placement_group_by_default_existing_by_name() -> None:
    assert gpu_queue(config_of())["Networking"]["PlacementGroup"] == {"Enabled": True}
    named = gpu_queue(config_of(placement_group_name="pg-1"))["Networking"]["PlacementGroup"]
    assert named == {"Enabled": True, "Name": "pg-1"}


def test_capacity_block_takes_no_placement_group() -> None:
    q = gpu_queue(config_of(capacity_reservation_id="cr-0123456789abcdef0", capacity_block=True))
    assert q["CapacityType"] == "CAPACITY_BLOCK"
    assert "PlacementGroup" not in q["Networking"]
    assert q["ComputeResources"][0]["CapacityReservationTarget"] == {
        "CapacityReservationId": "cr-0123456789abcdef0"
    }
    cr = q["ComputeResources"][0]
    assert cr["MinCount"] == cr["MaxCount"] > 0  # ParallelCluster requires it for blocks


def test_odcr_takes_no_placement_group() -> None:
    q = gpu_queue(config_of(capacity_reservation_id="cr-0123456789abcdef0"))
    assert q["CapacityType"] == "ONDEMAND"
    # Explicitly off: ParallelCluster's EfaPlacementGroupValidator refuses an implicit choice
    # on an EFA queue (tests/conformance/test_pcluster_validators.py runs the validator).
    assert q["Networking"]["PlacementGroup"] == {"Enabled": False}
    assert (
        q["ComputeResources"][0]["CapacityReservationTarget"]["CapacityReservationId"]
        == "cr-0123456789abcdef0"
    )


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (
            {"placement_group_name": "pg-1", "capacity_reservation_id": "cr-0123456789abcdef0"},
            "placement_group_name",
        ),
        ({"ami_id": "ami-0123456789abcdef0"}, "ami_id"),
        ({"slurm_head_instance_type": "m1.tiny"}, "slurm_head_instance_type"),
        ({"slurm_container_runtime": "podman"}, "slurm_container_runtime"),
        ({"backend": "k8s"}, "backend"),
        (
            {
                "endpoint": "https",
                "certificate_arn": "arn:aws:acm:us-east-1:210987654321:certificate/0f2b6c1e-3d4a-4b5c-8d7e-9f0a1b2c3d4e",
            },
            "endpoint",
        ),
        ({"endpoint": "private"}, "endpoint"),
        ({"pd_disaggregation": True}, "pd_disaggregation"),
        ({"gateway": "smg"}, "gateway"),
    ],
)
def test_spec_refusals_name_the_key(overrides: dict[str, Any], key: str) -> None:
    cfg = base_config(**{"backend": "slurm", **overrides})
    with pytest.raises(SpecError) as e:
        parse_config(cfg)
    assert e.value.key == f"sglang-cluster:{key}"


@pytest.mark.parametrize("key", ["slurm_container_runtime", "slurm_router", "slurm_head_instance_type"])
def test_slurm_keys_are_refused_on_ec2(key: str) -> None:
    value = {
        "slurm_container_runtime": "pyxis",
        "slurm_router": "own_node",
        "slurm_head_instance_type": "c7i.xlarge",
    }
    with pytest.raises(SpecError) as e:
        parse_config(base_config(**{key: value[key]}))
    assert e.value.key == f"sglang-cluster:{key}" and "backend: slurm" in e.value.message


def test_ec2_pair_of_placement_group_and_reservation_stays_allowed() -> None:
    """On the EC2 backend an ODCR made in a cluster placement group is the recommended path."""
    spec = parse_config(
        base_config(placement_group_name="pg-1", capacity_reservation_id="cr-0123456789abcdef0")
    )
    assert spec.backend == "ec2"


def test_names() -> None:
    for stack in ("slurm-tp16", "my.stack_1", "x" * 80):
        name = slurm.cluster_name(stack)
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,59}", name), name
        assert name not in (slurm.cluster_stack_name(stack), slurm.provider_stack_name(stack))
        assert len(slurm.cluster_stack_name(stack)) <= 128
    assert slurm.compute_resource_name("p5.48xlarge") == "p5-48xlarge"


def test_head_node_and_router_placement() -> None:
    head = config_of()["HeadNode"]
    assert head["Networking"]["SubnetId"] == IDS.head_subnet_id
    assert head["Networking"]["AdditionalSecurityGroups"] == [IDS.node_sg_id, IDS.router_sg_id]
    assert head["Networking"]["ElasticIp"] is True
    seq = head["CustomActions"]["OnNodeConfigured"]["Sequence"]
    assert [s["Script"].rsplit("/", 1)[1] for s in seq] == [slurm.HEAD_ACTION, slurm.ROUTER_ACTION]
    own = config_of(slurm_router="own_node")
    seq = own["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Sequence"]
    assert [s["Script"].rsplit("/", 1)[1] for s in seq] == [slurm.HEAD_ACTION]
    (router_q,) = [q for q in own["Scheduling"]["SlurmQueues"] if q["Name"] == slurm.ROUTER_QUEUE]
    assert router_q["ComputeResources"][0]["InstanceType"] == "c7i.xlarge"
    private = config_of(router_public_ip=False)["HeadNode"]["Networking"]
    assert "ElasticIp" not in private


def test_router_argv_comes_from_the_one_builder() -> None:
    from infra.planning.argv import router_argv

    plan = plan_of()
    seq = config_of()["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Sequence"]
    args = seq[1]["Args"]
    assert args[1:] == router_argv(plan.spec, [], plan.router_startup_timeout_secs)


def test_no_store_no_shared_storage() -> None:
    assert "SharedStorage" in config_of()
    assert "SharedStorage" not in config_of(model_store=False)


def test_yaml_is_plain_and_round_trips() -> None:
    config = config_of()
    text = slurm.config_yaml(config)
    assert "&id" not in text and "*id" not in text
    assert yaml.safe_load(text) == config


def test_template_parameters_cover_every_ref() -> None:
    plan = plan_of()
    t = slurm.cloudformation_template(plan, "img")
    text = yaml.safe_dump(t)
    refs = set(re.findall(r"Ref: (\w+)", text))
    assert refs <= set(t["Parameters"]) | {slurm.CLUSTER_LOGICAL_ID}
    assert set(slurm.template_parameters(plan, IDS, "arn:token")) == set(t["Parameters"])
    no_store = plan_of(model_store=False)
    assert "FileSystemId" not in slurm.cloudformation_template(no_store, "img")["Parameters"]


def test_slurm_argv_equals_the_ec2_argv_for_the_same_layout() -> None:
    """One argv builder: each planned Slurm rank runs what the EC2 node of the same rank runs,
    given the same dist-init host."""
    plan = plan_of()
    for node, snode in zip(plan.layout.nodes, slurm.slurm_nodes(plan), strict=True):
        head = slurm.slurm_node_names(plan)[plan.head_nodes()[node.group].name]
        assert snode.processes == server_node_boot(plan, node, head).processes


def test_provider_template_url() -> None:
    assert slurm.provider_template_url("eu-west-1") == (
        "https://eu-west-1-aws-parallelcluster.s3.eu-west-1.amazonaws.com/parallelcluster/"
        f"{slurm.PCLUSTER_VERSION}/templates/custom_resource/cluster.yaml"
    )
    assert slurm.PCLUSTER_VERSION.startswith("3.16.")


def test_cost_counts_the_head_node_not_the_router() -> None:
    plan = plan_of()
    from infra.planning.catalog import lookup

    gpu = plan.capacity.gpu_node_hourly_usd
    head = lookup("c7i.2xlarge").hourly_usd
    assert gpu is not None and head is not None
    assert slurm.hourly_cost_usd(plan) == round(2 * gpu + head, 2)
    own = plan_of(slurm_router="own_node")
    router = lookup("c7i.xlarge").hourly_usd
    assert router is not None
    assert slurm.hourly_cost_usd(own) == round(2 * gpu + head + router, 2)


def test_the_schema_venv_pins_the_same_parallelcluster_release() -> None:
    from tests.conftest import ROOT

    pins = (ROOT / "tools" / "requirements-pcluster.txt").read_text(encoding="utf-8").splitlines()
    assert f"aws-parallelcluster=={slurm.PCLUSTER_VERSION}" in pins


def test_head_node_ssh_is_closed() -> None:
    head = config_of()["HeadNode"]
    assert head["Ssh"] == {"AllowedIps": "127.0.0.1/32"}
    assert "KeyName" not in head["Ssh"]


@pytest.mark.parametrize("router", ["head_node", "own_node"])
def test_every_node_role_gets_session_manager(router: str) -> None:
    """ParallelCluster 3.16.1 gives a node role only ``AdditionalIamPolicies`` and
    CloudWatchAgentServerPolicy (``_add_node_role`` in ``pcluster/templates/cdk_builder_utils.py``):
    without AmazonSSMManagedInstanceCore the head node never registers with Systems Manager,
    and with SSH closed the ``squeue_command`` output and every operator session fail."""
    config = config_of(slurm_router=router)
    blocks = [config["HeadNode"]["Iam"], *(q["Iam"] for q in config["Scheduling"]["SlurmQueues"])]
    assert len(blocks) == (3 if router == "own_node" else 2)
    for iam in blocks:
        assert iam["AdditionalIamPolicies"] == [
            {"Policy": IDS.node_policy_arn},
            {"Policy": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"},
        ]


def test_cluster_log_groups_are_deleted_with_the_cluster() -> None:
    """ParallelCluster keeps the cluster's CloudWatch log group after the cluster is deleted
    unless told otherwise (``CloudWatchLogs.deletion_policy`` defaults to ``Retain`` in
    3.16.1 ``pcluster/config/cluster_config.py``): ``pulumi destroy`` must remove it."""
    logs = config_of()["Monitoring"]["Logs"]["CloudWatch"]
    assert logs["Enabled"] is True and logs["DeletionPolicy"] == "Delete"
