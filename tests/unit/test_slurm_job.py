"""The Slurm job script as text: data header, one argv source, settings. Pure, no Slurm.

The job itself runs under a real Slurm in ``tests/conformance/test_slurm_job.py``.
"""

from __future__ import annotations

import re
import shlex

import pytest

from infra.mockrun import STACKS_DIR, load_stack_config
from infra.planning.argv import server_argv
from infra.planning.cluster import ClusterPlan, plan_cluster, server_node_boot
from infra.planning.slurm_job import (
    JOB_BODY,
    SlurmJobSettings,
    rank_independent_argv,
    render_job_script,
    settings_from_spec,
)
from infra.program import region_of
from infra.spec import SpecError, parse_config
from tests.conftest import STACKS, base_config


def _plan(stack: str) -> ClusterPlan:
    cfg = load_stack_config(STACKS_DIR / f"Pulumi.{stack}.yaml")
    return plan_cluster(parse_config(cfg), stack, region_of(cfg))


def _assignment(script: str, name: str) -> list[str]:
    (line,) = [x for x in script.splitlines() if x.startswith(f"{name}=")]
    value = line.split("=", 1)[1]
    return shlex.split(value[1:-1]) if value.startswith("(") else shlex.split(value)


@pytest.mark.parametrize("stack", [s for s in STACKS if "pd" not in s])  # PD: EC2 only (refused on slurm)
def test_ec2_and_slurm_render_identical_server_argv(stack: str) -> None:
    """Every stack, every planned node and server: the job's argv (its rendered data plus the
    rank flags ``sglang_rank`` appends: ``--nnodes N --node-rank R --dist-init-addr HEAD:PORT``)
    equals the EC2 backend's argv for the same node and head address. The bash side of the
    append runs under real Slurm in the conformance test for prod-tp16 and tp2-dp8."""
    plan = _plan(stack)
    script = render_job_script(plan.spec, plan)
    nps = int(_assignment(script, "SGLANG_JOB_NODES_PER_SERVER")[0])
    dist_ports = _assignment(script, "SGLANG_JOB_DIST_PORTS")
    head_ip = "10.1.2.3"
    for node in plan.layout.nodes:
        ec2 = server_node_boot(plan, node, head_ip).processes
        for server, argv in zip(node.servers, ec2, strict=True):
            job = _assignment(script, f"SGLANG_JOB_ARGV_{server.slot}")
            if nps > 1:
                job += ["--nnodes", str(nps), "--node-rank", str(node.rank)]
                job += ["--dist-init-addr", f"{head_ip}:{dist_ports[server.slot]}"]
            assert job == argv, (stack, node.name, server.slot)


def test_rank_flags_come_last_in_server_argv() -> None:
    plan = _plan("prod-tp16")
    full = server_argv(plan.spec, plan.layout.servers[0], 1, "10.0.0.1")
    assert [
        *rank_independent_argv(full),
        "--nnodes",
        "2",
        "--node-rank",
        "1",
        "--dist-init-addr",
        "10.0.0.1:20000",
    ] == full
    with pytest.raises(ValueError, match="does not end with"):
        rank_independent_argv([*full, "--enable-metrics"])


def test_header_sbatch_lines_and_body() -> None:
    plan = _plan("prod-tp16")
    script = render_job_script(plan.spec, plan, SlurmJobSettings(partition="gpu"))
    assert script.startswith("#!/bin/bash\n")
    sbatch = re.findall(r"^#SBATCH (\S+)$", script, re.M)
    assert sbatch == [
        "--job-name=sglang-prod-tp16",
        "--nodes=2",
        "--ntasks-per-node=1",
        "--exclusive",
        "--requeue",
        "--open-mode=append",
        "--output=sglang-%x-%j.out",
        "--partition=gpu",
        "--gpus-per-node=8",
    ]
    assert script.endswith(JOB_BODY.read_text())
    assert _assignment(script, "SGLANG_JOB_ENV") == [f"{k}={v}" for k, v in plan.container_env.items()]
    assert _assignment(script, "SGLANG_JOB_REQUIRE_EFA") == ["1"]
    assert _assignment(script, "SGLANG_JOB_FSX") == ["1"]


def test_packed_layout_renders_one_argv_per_slot() -> None:
    plan = _plan("tp2-dp8")
    script = render_job_script(plan.spec, plan)
    assert _assignment(script, "SGLANG_JOB_SLOTS") == ["4"]
    assert _assignment(script, "SGLANG_JOB_NNODES") == ["2"]
    assert _assignment(script, "SGLANG_JOB_PORTS") == ["30000", "30010", "30020", "30030"]
    assert _assignment(script, "SGLANG_JOB_REQUIRE_EFA") == ["0"]
    assert "SGLANG_JOB_ARGV_4" not in script


def test_values_are_shell_quoted() -> None:
    spec = parse_config(base_config(server_env=["NCCL_ALGO=Ring;echo pwned"]))
    plan = plan_cluster(spec, "prod")
    script = render_job_script(plan.spec, plan)
    assert "'NCCL_ALGO=Ring;echo pwned'" in script
    assert _assignment(script, "SGLANG_JOB_ENV")[-1] == "NCCL_ALGO=Ring;echo pwned"


def test_container_runtime_key() -> None:
    spec = parse_config(base_config(backend="slurm", slurm_container_runtime="pyxis"))
    assert settings_from_spec(spec).container_runtime == "pyxis"
    plan = plan_cluster(spec, "prod")
    assert "SGLANG_JOB_RUNTIME=pyxis" in render_job_script(plan.spec, plan).splitlines()
    assert parse_config(base_config()).slurm_container_runtime == "docker"
    with pytest.raises(SpecError, match="slurm_container_runtime"):
        parse_config(base_config(slurm_container_runtime="podman"))
