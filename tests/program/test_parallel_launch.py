"""Parallel launch of every rank (issue 10 part 2): no GPU instance waits for another.

Under the SDK's mock runtime (no AWS account here): the edges are the ones the SDK sends the
engine (``RegisterResourceRequest.dependencies``), walked transitively by
:meth:`ProgramRun.waits_for`. Before this change rank 1's user data took rank 0's *instance*
``private_ip``, so rank 1 (and the router) waited for rank 0 to be running.
"""

from __future__ import annotations

from functools import cache

import pytest

from infra.mockrun import ProgramRun, run_program, run_stack
from infra.planning.fastboot import launch_is_parallel
from infra.planning.userdata import unpack_b64
from tests.conftest import STACKS, engine_config
from tests.program.test_graph import BYO, config_of

INSTANCE = "aws:ec2/instance:Instance"
ENI = "aws:ec2/networkInterface:NetworkInterface"


@cache
def run(stack: str, byo: bool = False) -> ProgramRun:
    return run_program(stack, config_of(stack, BYO if byo else {}))


def gpu_instances(r: ProgramRun) -> list[str]:
    return [i.name for i in r.of_type(INSTANCE) if i.name != "router"]


@pytest.mark.parametrize(("stack", "byo"), [("prod-tp16", False), ("tp8-pp2", False), ("prod-tp16", True)])
def test_rank1_waits_for_rank0_interface_not_rank0_instance(stack: str, byo: bool) -> None:
    r = run(stack, byo)
    multi = [n for n in r.plan.layout.nodes if not n.is_head]
    assert multi, "a multi-node stack"
    gpu = set(gpu_instances(r))
    for node in multi:
        head = next(n for n in r.plan.layout.nodes if n.group == node.group and n.is_head)
        waits = r.waits_for(r.named(node.name))
        assert not waits & gpu, (node.name, sorted(waits & gpu))
        assert f"{head.name}-lt" not in waits
        assert f"{head.name}-eni" in waits  # its address, known before any instance
        # ... and that address is what its user data points the dist-init at.
        eni_ip = r.ips[head.name]
        ud = unpack_b64(r.named(node.name).inputs["userDataBase64"])
        assert f"SGLANG_DIST_INIT_HOST={eni_ip}\n" in ud


@pytest.mark.parametrize("stack", ["prod-tp16", "tp2-dp8", "dev"])
def test_router_waits_for_no_gpu_instance(stack: str) -> None:
    r = run(stack)
    waits = r.waits_for(r.named("router"))
    assert not waits & set(gpu_instances(r))
    heads = {f"{n.name}-eni" for n in r.plan.head_nodes()}
    assert heads <= waits


@pytest.mark.parametrize("byo", [False, True])
def test_one_primary_interface_per_node_in_the_node_subnet(byo: bool) -> None:
    r = run("prod-tp16", byo)
    enis = {e.name: e for e in r.of_type(ENI)}
    assert set(enis) == {f"{n.name}-eni" for n in r.plan.layout.nodes}
    subnets = {e.inputs["subnetId"] for e in enis.values()}
    assert len(subnets) == 1  # EFA never crosses a subnet/AZ
    if byo:
        assert subnets == {BYO["sglang-cluster:subnet_id"]}
    for node in r.plan.layout.nodes:
        primary = r.named(f"{node.name}-lt").inputs["networkInterfaces"][0]
        # Kept when the instance is terminated: a replaced node gets the same address back.
        assert "deleteOnTermination" not in primary
        assert primary["networkInterfaceId"] == enis[f"{node.name}-eni"].id
        assert r.outputs["nodes"][node.name]["private_ip"] == r.ips[node.name]


def test_every_rank_of_a_wide_group_launches_in_one_wave() -> None:
    """Four nodes per server: no rank waits for any other (the old chain had rank 0 first)."""
    r = run_program("prod-test", engine_config(node_count=4, tp_size=32))
    gpu = set(gpu_instances(r))
    assert len(gpu) == 4
    for name in gpu:
        assert not r.waits_for(r.named(name)) & gpu, name


@pytest.mark.parametrize("stack", STACKS)
def test_the_parallel_launch_figure_is_the_graph(stack: str) -> None:
    """``estimates.boot.parallel_launch`` (what the cold-start model reads) says what the deploy
    graph does: no GPU instance (and not the router) waits for another instance."""
    r = run_stack(stack)
    instances = {i.name for i in r.of_type(INSTANCE)}
    waits = any(r.waits_for(r.named(name)) & instances for name in instances)
    assert launch_is_parallel(r.plan) is (not waits)


@pytest.mark.parametrize("stack", STACKS)
def test_plan_json_carries_the_boot_and_store_figures(stack: str) -> None:
    from infra import cli

    doc = cli.plan_document(run_stack(stack))
    est = doc["estimates"]
    assert est["boot"]["parallel_launch"] is True
    store = est["model_store"]
    fs = next(r for r in doc["resources"] if r["type"] == "aws:fsx/lustreFileSystem:LustreFileSystem")
    assert fs["inputs"]["storageCapacity"] == store["capacity_gib"]
    if store["deployment_type"] == "PERSISTENT_2":
        assert fs["inputs"]["perUnitStorageThroughput"] == store["throughput_mb_per_tib"]
    assert store["meets_target"] and store["load_secs"] <= store["weights_load_target_secs"]
    assert "Model store:" in cli.render_table(doc) and "Boot: all nodes launch at once" in cli.render_table(
        doc
    )
