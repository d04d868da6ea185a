"""The cold-start model's arithmetic, its constants file, and the plan's ``estimates.cold_start``.

Users size FSx from these figures, so each formula is checked against a hand computation from
the documented constants (FSx SSD table, gp3 baseline, the SOCI measurement).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from infra.cli import plan_document
from infra.mockrun import run_program, run_stack
from infra.planning.coldstart import (
    ColdStartInputs,
    constants,
    critical_path,
    finish_times,
    fsx_rates_mb_per_s,
    image_pull_phase,
    inputs_from_plan,
    loader_streams,
    model_cold_start,
    rank_launch_order,
    weight_load_phase,
    weights_fetch_secs,
)
from infra.planning.memory import GIB
from tests.conftest import ALL_STACKS, ROOT, STACKS, engine_config

CKPT = 72.7e9 * 2  # Qwen2.5-72B in bf16, bytes


def _inputs(**kw: Any) -> ColdStartInputs:
    base: dict[str, Any] = {
        "checkpoint_bytes": CKPT,
        "model_source": "local",
        "fsx_deployment_type": "PERSISTENT_2",
        "fsx_capacity_gib": 1200,
        "fsx_mb_per_tib": 250,
        "gpu_nodes": 2,
        "nodes_per_server": 2,
        "image_gb": 25.0,
        "image_pull": "ecr",
        "image_build": "none",
    }
    base.update(kw)
    return ColdStartInputs(**base)


def _r(name: str, rtype: str, *deps: str) -> dict[str, Any]:
    return {"name": name, "type": rtype, "depends_on": list(deps)}


def test_every_constant_has_unit_source_date_and_flag() -> None:
    cs = constants()
    assert len(cs) >= 25
    for c in cs.values():
        assert c.unit and c.source and len(c.date) == 10 and isinstance(c.assumption, bool), c.name
        assert (
            c.assumption
            or "docs.aws.amazon.com" in c.source
            or "README" in c.source
            or "PR" in c.source
            or "real parser" in c.source
        ), f"{c.name}: a non-assumption needs a doc link, a published measurement or the real parser"


def test_fsx_rates_from_the_ssd_table() -> None:
    """1200 GiB = 1.171875 TiB; PERSISTENT-250: disk 250 baseline / 500 burst, network 640 /
    1300 MB/s per TiB (ssd-storage.html): reads are disk-bound."""
    read, write, key = fsx_rates_mb_per_s(_inputs())
    assert key == "PERSISTENT_2-250"
    assert read == pytest.approx(250 * 1.171875) and write == pytest.approx(250 * 1.171875)
    burst, _, _ = fsx_rates_mb_per_s(_inputs(fsx_use_burst=True))
    assert burst == pytest.approx(500 * 1.171875)
    big, _, _ = fsx_rates_mb_per_s(_inputs(fsx_capacity_gib=4800, fsx_mb_per_tib=1000))
    assert big == pytest.approx(1000 * 4800 / 1024)
    scratch, swrite, _ = fsx_rates_mb_per_s(_inputs(fsx_deployment_type="SCRATCH_2"))
    assert scratch == pytest.approx(200 * 1.171875) and swrite == pytest.approx(100 * 1.171875)


def test_weight_load_is_readers_times_bytes_over_fsx_rate() -> None:
    """The issue's rough figure: 145 GB read by both nodes at ~300 MB/s is about 16 minutes."""
    p = weight_load_phase(_inputs(), readers=2)
    assert p.seconds == pytest.approx(2 * CKPT / (250 * 1.171875e6))
    assert 15 * 60 < p.seconds < 17 * 60
    single = weight_load_phase(_inputs(), readers=1)
    assert single.seconds == pytest.approx(p.seconds / 2)
    # A fast store is bounded by the node: one loader stream is one 5 Gbit/s flow (EC2's
    # single-flow limit outside a placement group), and 100 Gbit/s per client at most.
    fast = _inputs(fsx_capacity_gib=96000, fsx_mb_per_tib=1000)
    assert weight_load_phase(fast, readers=1).seconds == pytest.approx(CKPT / (8 * 625e6))
    one = weight_load_phase(replace(fast, loader_streams_per_node=1), readers=1)
    assert one.seconds == pytest.approx(CKPT / 625e6)
    many = weight_load_phase(replace(fast, loader_streams_per_node=64), readers=1)
    assert many.seconds == pytest.approx(CKPT / 12500e6)
    # A sharded loader reads half per node.
    half = weight_load_phase(_inputs(bytes_per_node_fraction=0.5), readers=2)
    assert half.seconds == pytest.approx(p.seconds / 2)


def test_s3_first_reader_hydrates() -> None:
    p = weight_load_phase(_inputs(model_source="s3"), readers=2)
    rate = 250 * 1.171875e6
    assert p.seconds == pytest.approx(CKPT / min(1000e6, rate) + CKPT / rate)


def test_image_pull_rates() -> None:
    """ECR: 17.6 GB in 266 s (SOCI README) = 66.2 MB/s; gp3's 125 MiB/s does not bind it; SOCI
    starts in 8.9 s and fetches lazily afterwards; a cached image takes nothing."""
    ecr = image_pull_phase(_inputs())
    assert ecr.seconds == pytest.approx(25e9 / 66.2e6)
    assert image_pull_phase(_inputs(docker_root="nvme")).seconds == pytest.approx(ecr.seconds)
    # SOCI: 8.9 s to start, plus the 18.5 s the same README measured for files fetched lazily
    # on first access (import torch).
    assert image_pull_phase(_inputs(image_pull="ecr-soci")).seconds == pytest.approx(8.9 + 18.5)
    assert image_pull_phase(_inputs(), cached=True).seconds == 0


def test_critical_path_is_the_longest_chain() -> None:
    inputs = _inputs(image_build="build")
    res = [
        _r("vpc", "aws:ec2/vpc:Vpc"),
        _r("sg", "aws:ec2/securityGroup:SecurityGroup", "vpc"),
        _r("fs", "aws:fsx/lustreFileSystem:LustreFileSystem", "sg"),
        _r("repo", "aws:ecr/repository:Repository"),
        _r("img", "docker:index/image:Image", "repo"),
        _r("server-g0-r0", "aws:ec2/instance:Instance", "fs", "img"),
        _r("server-g0-r1", "aws:ec2/instance:Instance", "fs", "img", "server-g0-r0"),
    ]
    finish, _ = finish_times(res, inputs)
    # base pull + push (compressed blobs: half the 25 GB image) + EFA installer
    push = 12.5e9 / 50e6 + 12.5e9 / 12.5e6 + 300
    assert finish["img"] == pytest.approx(5 + push)
    assert finish["server-g0-r0"] == pytest.approx(max(17 + 5 + 600, 5 + push) + 60)
    assert finish["server-g0-r1"] == pytest.approx(finish["server-g0-r0"] + 60)
    path = [n for n, _, _ in critical_path(res, inputs, "server-g0-r1")]
    assert path == ["repo", "img", "server-g0-r0", "server-g0-r1"]
    assert rank_launch_order(res) == "serial"
    parallel = [r if r["name"] != "server-g0-r1" else _r("server-g0-r1", r["type"], "fs", "img") for r in res]
    assert rank_launch_order(parallel) == "parallel"
    # Without the image build, FSx is the long pole.
    path = [n for n, _, _ in critical_path(res, _inputs(), "server-g0-r0")]
    assert path == ["vpc", "sg", "fs", "server-g0-r0"]


def test_cycle_is_refused() -> None:
    res = [_r("a", "aws:ec2/vpc:Vpc", "b"), _r("b", "aws:ec2/vpc:Vpc", "a")]
    with pytest.raises(ValueError, match="cycle"):
        finish_times(res, _inputs())


def test_cold_phases_add_up_and_follow_the_leader_download() -> None:
    res = [
        _r("server-g0-r0", "aws:ec2/instance:Instance"),
        _r("server-g0-r1", "aws:ec2/instance:Instance", "server-g0-r0"),
    ]
    inputs = _inputs(model_source="hf")
    cs = model_cold_start(inputs, res)
    names = [p.name for p in cs.cold.phases]
    assert names == [
        "resources",
        "node_boot",
        "image_pull",
        "weights_fetch",
        "weight_load",
        "server_start",
        "router",
    ]
    assert cs.cold.total_secs == pytest.approx(sum(p.seconds for p in cs.cold.phases))
    fetch = CKPT / (250 * 1.171875e6)  # the hub (500 MB/s) is faster than FSx writes
    # The leader's chain (launch 60 s, then its download) is longer than rank 1's (120 s).
    assert cs.cold.phases[0].seconds == 60
    assert cs.cold.phases[3].seconds == pytest.approx(fetch)
    # Warm: reboot, no pull, one reader.
    warm = {p.name: p.seconds for p in cs.warm.phases}
    assert warm["image_pull"] == 0 and warm["weight_load"] == pytest.approx(fetch)
    assert cs.warm.total_secs < cs.warm_replaced.total_secs < cs.cold.total_secs


def test_every_knob_moves_the_figures() -> None:
    """What the fastboot defaults change (FSx sizing, SOCI, parallel launch) shows in the model."""
    res = [
        _r("server-g0-r0", "aws:ec2/instance:Instance"),
        _r("server-g0-r1", "aws:ec2/instance:Instance", "server-g0-r0"),
    ]
    base = _inputs()
    cold = model_cold_start(base, res).cold.total_secs
    faster_fsx = model_cold_start(replace(base, fsx_capacity_gib=2400, fsx_mb_per_tib=1000), res)
    assert faster_fsx.cold.total_secs < cold
    assert model_cold_start(replace(base, image_pull="ecr-soci"), res).cold.total_secs < cold
    parallel = [res[0], _r("server-g0-r1", "aws:ec2/instance:Instance")]
    assert model_cold_start(base, parallel).cold.total_secs == pytest.approx(cold - 60)


def test_prod_tp16_inputs_from_the_plan() -> None:
    run = run_stack("prod-tp16")
    inputs = inputs_from_plan(run.plan)
    assert inputs.checkpoint_bytes == pytest.approx(72.7e9 * 2)
    # The store the planner sized for the 180 s load target with the 5 Gbit/s-per-file-server
    # client limit (infra/planning/fsx_sizing.py: 3 file servers), not
    # the spec's 0 = "sized by the planner"; docker's data root on the p5's instance-store RAID0.
    assert (inputs.fsx_capacity_gib, inputs.fsx_mb_per_tib, inputs.model_source) == (7200, 250, "hf")
    assert inputs.docker_root == "nvme"
    assert (inputs.image_pull, inputs.image_build, inputs.gpu_nodes, inputs.nodes_per_server) == (
        "ecr",
        "build",
        2,
        2,
    )
    # H100 TP16: decode graphs up to batch 512 (52 sizes) and prefill graphs up to chunk 8192.
    assert inputs.decode_graph_sizes == 52
    assert inputs.checkpoint_bytes / GIB == pytest.approx(135.4, abs=0.05)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_plan_has_cold_and_warm_with_sources(stack: str) -> None:
    doc = plan_document(run_stack(stack))
    cs = doc["estimates"]["cold_start"]
    for scen in ("cold", "warm", "warm_replaced"):
        phases = cs[scen]["phases"]
        assert cs[scen]["total_secs"] == pytest.approx(sum(p["seconds"] for p in phases), abs=0.5)
        for p in phases:
            assert set(p) == {"name", "seconds", "inputs", "source", "note"}
            for s in p["source"]:
                assert s["source"] and s["date"] and "assumption" in s
    assert cs["cold"]["total_secs"] > cs["warm"]["total_secs"] > 0
    assert set(cs["assumptions"]) <= set(constants())


def test_no_store_stack_downloads_on_every_node() -> None:
    doc = plan_document(run_program("nostore", engine_config(model_store=False, tp_size=8)))
    cs = doc["estimates"]["cold_start"]
    phases = {p["name"]: p for p in cs["cold"]["phases"]}
    # A p5 node downloads into the instance-store NVMe: the hub's 500 MB/s binds.
    assert phases["weights_fetch"]["seconds"] == pytest.approx(CKPT / 500e6, rel=1e-3)
    assert phases["weights_fetch"]["inputs"]["cache"] == "nvme"
    # On the root gp3 volume 125 MiB/s would bind instead.
    ebs = weights_fetch_secs(_inputs(model_source="none", weights_cache="ebs"))[0]
    assert ebs == pytest.approx(CKPT / (125 * 2**20))
    assert phases["weight_load"]["seconds"] == 0
    assert cs["inputs"]["fsx"] is None


def test_readme_ttft_column_matches_the_plan() -> None:
    """The README stack table's "modeled TTFT cold / warm" column is the plan's figures, rounded
    to whole minutes, so it cannot drift from the model."""
    readme = (ROOT / "README.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[-2].strip()
        for line in readme.splitlines()
        if line.startswith("| `") and line.count("|") == 9
    }
    assert set(ALL_STACKS) <= set(rows), rows
    for stack in ALL_STACKS:
        cs = plan_document(run_stack(stack))["estimates"]["cold_start"]
        want = f"{round(cs['cold']['total_secs'] / 60)} / {round(cs['warm']['total_secs'] / 60)} min"
        assert rows[stack] == want, stack


@pytest.mark.parametrize(
    ("args", "streams"),
    [
        ([], 8),
        (["--model-loader-extra-config", '{"num_threads": 16}'], 16),
        (['--model-loader-extra-config={"enable_multithread_load": false}'], 1),
        (["--model-loader-extra-config", "not json"], 8),
    ],
)
def test_loader_streams_follow_sglang_loader_config(args: list[str], streams: int) -> None:
    """SGLang 0.5.23 loads with 8 threads per rank unless --model-loader-extra-config says
    otherwise (model_loader/loader.py)."""
    assert loader_streams(args) == streams


@pytest.mark.parametrize("stack", STACKS)
def test_every_ec2_stack_waits_for_its_gpu_nodes(stack: str) -> None:
    """The resources phase ends at a GPU node's launch for every EC2 stack, prefill/decode pools
    included (their nodes are named prefill-/decode-g*-r*, not server-*): a phase of 0 s would
    mean the model found no GPU instance in the deploy graph."""
    cs = plan_document(run_stack(stack))["estimates"]["cold_start"]
    phases = {p["name"]: p for p in cs["cold"]["phases"]}
    assert phases["resources"]["seconds"] > 0
