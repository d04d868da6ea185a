"""Review fixes of the cold-start model: the per-file-server read cap of one Lustre client, and
ParallelCluster's own cluster creation on the SLURM stack's critical path.

Hand computations use the documented figures in ``infra/planning/data/coldstart.json``:
5 Gbit/s (625 MB/s) between one client instance and one FSx object storage server
(``performance.html``, "Throughput to individual client instances"), 2400 GiB of storage per
OSS on non-EFA PERSISTENT_2 (``using-fsx-lustre.html``), and the model's stated assumptions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from infra.cli import plan_document
from infra.mockrun import run_stack
from infra.planning.coldstart import (
    SLURM_FLEET,
    ColdStartInputs,
    constants,
    fsx_oss_count,
    fsx_rates_mb_per_s,
    image_pull_phase,
    image_push_secs,
    model_cold_start,
    weight_load_phase,
    weights_fetch_secs,
    with_slurm_fleet,
)

CKPT = 72.7e9 * 2  # Qwen2.5-72B in bf16, bytes
PER_OSS = 625e6  # 5 Gbit/s in bytes per second


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


@pytest.mark.parametrize(("gib", "oss"), [(1200, 1), (2400, 1), (4800, 2), (9600, 4), (0, 0)])
def test_oss_count_is_capacity_over_2400_gib(gib: int, oss: int) -> None:
    assert fsx_oss_count(_inputs(fsx_capacity_gib=gib)) == oss


def test_one_node_reads_at_most_5_gbit_per_file_server() -> None:
    """2400 GiB at 1000 MB/s/TiB is one OSS: the store serves 2344 MB/s, but one node gets at
    most 625 MB/s from it, whatever its loader's thread count (the limit is per client and
    file server, not per TCP stream)."""
    one_oss = _inputs(fsx_capacity_gib=2400, fsx_mb_per_tib=1000)
    assert fsx_rates_mb_per_s(one_oss)[0] == pytest.approx(1000 * 2400 / 1024)
    alone = weight_load_phase(one_oss, readers=1)
    assert alone.seconds == pytest.approx(CKPT / PER_OSS)
    assert alone.inputs["fsx_oss"] == 1 and alone.inputs["node_read_cap_mb_per_s"] == 625
    # Two servers: each node reads from two at once (8 loader threads reach both).
    two_oss = _inputs(fsx_capacity_gib=4800, fsx_mb_per_tib=1000)
    assert weight_load_phase(two_oss, readers=1).seconds == pytest.approx(CKPT / (2 * PER_OSS))
    # A single-threaded loader reads one file at a time: one server at a time.
    single = weight_load_phase(replace(two_oss, loader_streams_per_node=1), readers=1)
    assert single.seconds == pytest.approx(CKPT / PER_OSS)
    # Both nodes of prod-tp16 at 1200 GiB/250: the store's 293 MB/s binds, not the client.
    both = weight_load_phase(_inputs(), readers=2)
    assert both.seconds == pytest.approx(2 * CKPT / (250 * 1200 / 1024 * 1e6))
    assert {c.name for c in both.sources} >= {"fsx_client_per_oss_mb_per_s", "fsx_storage_per_oss_gib"}


def test_per_oss_constants_are_documented_not_assumed() -> None:
    cs = constants()
    assert cs["fsx_client_per_oss_mb_per_s"].value == 625
    assert "performance.html" in cs["fsx_client_per_oss_mb_per_s"].source
    assert cs["fsx_storage_per_oss_gib"].value == 2400
    assert "using-fsx-lustre.html" in cs["fsx_storage_per_oss_gib"].source
    assert not cs["fsx_client_per_oss_mb_per_s"].assumption
    assert "single_flow_mb_per_s" not in cs  # the per-loader-stream flow cap had no source
    assert cs["parallelcluster_create_secs"].assumption  # a workshop's "~10 minutes", flagged


def test_slurm_fleet_waits_for_the_cluster_stack() -> None:
    res = [
        {"name": "fs", "type": "aws:fsx/lustreFileSystem:LustreFileSystem", "depends_on": []},
        {"name": "sglang-slurm-provider", "type": "aws:cloudformation/stack:Stack", "depends_on": []},
        {
            "name": "sglang-slurm-cluster",
            "type": "aws:cloudformation/stack:Stack",
            "depends_on": ["fs", "sglang-slurm-provider"],
        },
    ]
    out = with_slurm_fleet(res)
    assert out[-1] == {
        "name": SLURM_FLEET,
        "type": "aws:ec2/instance:Instance",
        "depends_on": ["sglang-slurm-cluster"],
    }
    cs = model_cold_start(_inputs(model_source="hf"), res)
    phases = {p.name: p for p in cs.cold.phases}
    # FSx 600 s, then ParallelCluster's cluster 600 s, then the compute nodes launch (60 s).
    assert phases["resources"].seconds == pytest.approx(600 + 600 + 60)
    assert [n for n, _, _ in cs.critical_path] == ["fs", "sglang-slurm-cluster", SLURM_FLEET]
    # The hub download runs on the first compute node and sits on the critical path.
    assert phases["weights_fetch"].seconds == pytest.approx(weights_fetch_secs(_inputs(model_source="hf"))[0])
    assert phases["weights_fetch"].seconds > 0
    # An EC2 stack (server-* instances) gets no extra fleet.
    ec2 = [{"name": "server-g0-r0", "type": "aws:ec2/instance:Instance", "depends_on": []}]
    assert with_slurm_fleet(ec2) == ec2


def test_slurm_tp16_plan_counts_parallelcluster_and_the_download() -> None:
    doc = plan_document(run_stack("slurm-tp16"))
    cs = doc["estimates"]["cold_start"]
    phases = {p["name"]: p for p in cs["cold"]["phases"]}
    path = phases["resources"]["inputs"]["critical_path"]
    assert any(p.startswith("sglang-slurm-cluster (600 s)") for p in path), path
    assert path[-1].startswith(SLURM_FLEET)
    assert phases["resources"]["seconds"] >= 600 + 60
    assert "parallelcluster_create_secs" in cs["assumptions"]
    # The store is sized for the load target (7200 GiB at 250 MB/s/TiB writes 1758 MB/s), so
    # the hub's 500 MB/s binds the download.
    assert phases["weights_fetch"]["seconds"] == pytest.approx(CKPT / 500e6, rel=1e-3)
    # Same nodes, same store, same image as prod-tp16, plus the cluster's creation.
    prod = plan_document(run_stack("prod-tp16"))["estimates"]["cold_start"]
    assert cs["cold"]["total_secs"] > prod["cold"]["total_secs"]


def test_deployer_link_moves_compressed_blobs() -> None:
    """The image is measured as docker's unpacked SIZE; a pull or push over the deployer's link
    moves the compressed blobs (17.6 GB vs 8.792 GB for the DLC image of the SOCI README)."""
    assert constants()["image_compressed_fraction"].value == 0.5
    assert constants()["image_compressed_fraction"].assumption
    assert image_push_secs(25.0, "mirror") == pytest.approx(12.5e9 / 50e6 + 12.5e9 / 12.5e6)
    assert image_push_secs(25.0, "build") == pytest.approx(12.5e9 / 50e6 + 12.5e9 / 12.5e6 + 300)
    assert image_push_secs(25.0, "none") == 0
    # prod-tp16 builds its image: the plan lists every constant of the push as a source.
    cs = plan_document(run_stack("prod-tp16"))["estimates"]["cold_start"]
    res = next(p for p in cs["cold"]["phases"] if p["name"] == "resources")
    names = {s["constant"] for s in res["source"]}
    assert {"deployer_upload_mb_per_s", "deployer_download_mb_per_s", "image_compressed_fraction"} <= names
    assert "image_compressed_fraction" in cs["assumptions"]


def test_soci_counts_its_lazy_fetch() -> None:
    """SOCI's 8.9 s start leaves the files to be fetched on first access: the same README
    measured import torch at 22.785 s with SOCI vs 4.308 s pulled, 18.5 s more."""
    soci = image_pull_phase(_inputs(image_pull="ecr-soci"))
    assert soci.seconds == pytest.approx(8.9 + (22.785 - 4.308), abs=0.05)
    assert {c.name for c in soci.sources} == {"soci_lazy_pull_secs", "soci_lazy_run_penalty_secs"}


def test_finish_times_is_the_longest_path_on_random_graphs() -> None:
    """Against an independent longest-path computation (topological order, then a DP over
    predecessors) on random DAGs with roots, shared dependencies and isolated resources; the
    critical path's own seconds add up to the target's finish."""
    import random

    from infra.planning.coldstart import critical_path, finish_times, resource_create_secs

    types = [
        "aws:ec2/vpc:Vpc",
        "aws:fsx/lustreFileSystem:LustreFileSystem",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/instance:Instance",
        "sglang:aws:Network",
    ]
    rng = random.Random(7)
    inputs = _inputs()
    for _ in range(200):
        n = rng.randint(1, 12)
        res = [
            {
                "name": f"r{i}",
                "type": rng.choice(types),
                "depends_on": [f"r{j}" for j in range(i) if rng.random() < 0.3],
            }
            for i in range(n)
        ]
        rng.shuffle(res)  # the plan lists resources in no particular order
        own = {r["name"]: resource_create_secs(r["type"], inputs, r["name"])[0] for r in res}
        deps = {r["name"]: r["depends_on"] for r in res}
        want: dict[str, float] = {}
        for i in range(n):  # r0..r{n-1} is a topological order by construction
            name = f"r{i}"
            want[name] = max((want[d] for d in deps[name]), default=0.0) + own[name]
        finish, _ = finish_times(res, inputs)
        assert finish == pytest.approx(want)
        target = max(want, key=lambda k: want[k])
        chain = critical_path(res, inputs, target)
        assert sum(s for _, _, s in chain) == pytest.approx(want[target], abs=0.1 * len(chain))
