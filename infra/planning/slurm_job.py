"""The Slurm batch job that serves a stack's layout on a ParallelCluster queue. Pure code.

:func:`render_job_script` returns the exact text handed to ``sbatch``: ``#SBATCH`` lines and
the stack's data (``SGLANG_JOB_*`` shell assignments, every value ``shlex``-quoted), followed
by the static body ``slurm/sglang-job.sh`` (shellcheck-clean, templated by nothing). The job
matches seed 000's ``run.sbatch`` (pysheeet ``src/llm/sglang``, ``shared/reference/
sglang-serving.md``) and improves on it:

- nodes from the allocation (``scontrol show hostnames $SLURM_JOB_NODELIST``), each node's
  address from Slurm's ``NodeAddr`` (ParallelCluster sets the private IPv4; the seed's
  ``getent ahostsv4`` is the fallback); a server's head address is its first node's;
- ``--nnodes``, ``--node-rank`` and ``--dist-init-addr`` appended per rank from the job's node
  list and ``SLURMD_NODENAME`` (``SLURM_NODEID`` is relative to a step, so it is not used);
  the rest of the argv comes from :func:`infra.planning.argv.server_argv`, the EC2 backend's
  builder, so both backends run the same argv for the same layout;
- ranks >= 1 start first (one ``srun`` step), rank 0 only once every one of them has started
  its container (one step per server slot);
- containers through ``docker`` (as on the EC2 nodes: same flags, devices, environment) or
  Pyxis/Enroot (``srun --container-image``), chosen by the stack and overridable with
  ``SGLANG_CONTAINER_RUNTIME`` at submission;
- the EC2 nodes' EFA/NCCL container environment (:attr:`ClusterPlan.container_env`), uverbs and
  gdrdrv devices, and, where the EC2 backend enforces it (``require_efa``), the same transport
  check: ``sglang-nccl-transport`` on each node's rank log, a non-EFA verdict stops the job;
- a bounded readiness loop on rank 0 of every server (``/health``, then ``/v1/models``; only
  rank 0 says whether a multi-node server is ready);
- cleanup that stops only this job's containers (named and labelled with the job id; the seed
  removed every container on the node);
- ``--requeue``: Slurm requeues the job when a node fails; a rank that crashes makes the job
  requeue itself (all ranks restart together, at most :attr:`SlurmJobSettings.max_requeues`
  times); a failure a restart would repeat (wrong node count, NCCL off EFA, readiness time-out)
  ends the job with status 78 and no requeue;
- the router hook: once every server answers, its rank-0 URLs are written to
  ``<log dir>/workers``, POSTed to ``$SGLANG_ROUTER_URL/workers`` (sglang-router 0.3.2 and smg:
  ``{"url": ...}``) and passed to ``$SGLANG_WORKERS_HOOK`` (e.g. a router restart with
  ``--worker-urls``).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from infra.planning.argv import DIST_INIT_FLAG, server_argv
from infra.planning.transport import require_efa

if TYPE_CHECKING:
    from infra.planning.cluster import ClusterPlan
    from infra.spec import StackSpec

JOB_BODY = Path(__file__).resolve().parents[2] / "slurm" / "sglang-job.sh"
"""The static body of the job (shellcheck-clean bash)."""

RANK_FLAGS = ("--nnodes", "--node-rank", DIST_INIT_FLAG)
"""Flags the job appends per rank, in :func:`server_argv`'s order."""

HEAD_PLACEHOLDER = "0.0.0.0"
"""Head address handed to :func:`server_argv` before its rank flags are cut off."""

ContainerRuntime = Literal["docker", "pyxis"]


@dataclass(frozen=True)
class SlurmJobSettings:
    """Job choices the layout does not decide.

    Attributes:
        container_runtime: ``docker`` (the EC2 nodes' way: ``docker run`` with the same flags)
            or ``pyxis`` (``srun --container-image``, Pyxis/Enroot; ParallelCluster ships it
            off since 3.11.1). Stack key ``slurm_container_runtime``.
        partition: Slurm partition (ParallelCluster queue name); empty = the default partition.
        job_name: ``--job-name``; empty = ``sglang-<stack>``.
        max_requeues: self-requeues after a rank crash (``SLURM_RESTART_COUNT`` counts them).
        ready_tries: readiness checks of rank 0 before the job gives up.
        ready_interval_secs: seconds between two checks (360 x 10 s = 1 h, the seed's bound).
        gpus_per_node: request ``--gpus-per-node`` (ParallelCluster defines GPU GRES).
    """

    container_runtime: ContainerRuntime = "docker"
    partition: str = ""
    job_name: str = ""
    max_requeues: int = 3
    ready_tries: int = 360
    ready_interval_secs: int = 10
    gpus_per_node: bool = True


def settings_from_spec(spec: StackSpec, partition: str = "") -> SlurmJobSettings:
    """:class:`SlurmJobSettings` from the stack: ``slurm_container_runtime``, and ``partition``
    (the ParallelCluster queue name, from the cluster config) when given."""
    return SlurmJobSettings(container_runtime=spec.slurm_container_runtime, partition=partition)


def rank_independent_argv(argv: list[str]) -> list[str]:
    """``argv`` without its trailing ``--nnodes N --node-rank R --dist-init-addr HOST:PORT``.

    Raises:
        ValueError: when those flags are present but not the argv's last six arguments (the job
            appends them at the end, so another order would change the argv).
    """
    if "--nnodes" not in argv:
        return list(argv)
    tail = argv[-6:]
    if tail[0::2] != list(RANK_FLAGS):
        raise ValueError(f"server argv does not end with {' '.join(RANK_FLAGS)}: {argv}")
    return argv[:-6]


def job_name(stack: str, settings: SlurmJobSettings | None = None) -> str:
    """The job's ``--job-name`` (what ``squeue --name`` finds)."""
    s = settings or SlurmJobSettings()
    return s.job_name or f"sglang-{stack}"


def _array(name: str, values: list[str]) -> str:
    return f"{name}=({' '.join(shlex.quote(v) for v in values)})"


def render_job_script(
    spec: StackSpec,
    plan: ClusterPlan,
    settings: SlurmJobSettings | None = None,
    image: str | None = None,
) -> str:
    """The exact batch script for ``sbatch``.

    Args:
        spec: the stack spec (``plan.spec`` once the image is resolved; the argv uses it).
        plan: the cluster plan (layout, container environment, require_efa).
        settings: job choices; defaults to :func:`settings_from_spec`.
        image: the image reference nodes run; defaults to ``plan.spec.image`` (pass the ECR URI
            in the mirror and build modes).

    Returns:
        The script text: ``#!/bin/bash``, ``#SBATCH`` lines, data, then ``slurm/sglang-job.sh``.
        It needs bash >= 5.1 (``wait -n`` with ids) on the compute nodes, ``scontrol``/``srun``,
        ``curl``, and ``sglang-nccl-transport`` on ``PATH`` where ``require_efa`` applies.

    Raises:
        ValueError: when :func:`server_argv` no longer ends with the rank flags.
    """
    s = settings or settings_from_spec(spec)
    layout = plan.layout
    node = plan.node_type
    head_node = layout.nodes[0]
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name(plan.stack, s)}",
        f"#SBATCH --nodes={len(layout.nodes)}",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --exclusive",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "#SBATCH --output=sglang-%x-%j.out",
    ]
    if s.partition:
        lines.append(f"#SBATCH --partition={s.partition}")
    if s.gpus_per_node and node.gpus:
        lines.append(f"#SBATCH --gpus-per-node={node.gpus}")
    lines += [
        f"# SGLang serving job of stack {plan.stack}, rendered by infra/planning/slurm_job.py:",
        "# the data below, then the static body slurm/sglang-job.sh. Submit: sbatch THIS_FILE",
        "# shellcheck disable=SC2034 # the body reads these (some through a nameref)",
        f"SGLANG_JOB_STACK={shlex.quote(plan.stack)}",
        f"SGLANG_JOB_RUNTIME={s.container_runtime}",
        f"SGLANG_JOB_IMAGE={shlex.quote(image or plan.spec.image)}",
        f"SGLANG_JOB_NNODES={len(layout.nodes)}",
        f"SGLANG_JOB_NODES_PER_SERVER={layout.nodes_per_server}",
        f"SGLANG_JOB_SLOTS={len(head_node.servers)}",
        _array("SGLANG_JOB_PORTS", [str(sv.port) for sv in head_node.servers]),
        _array("SGLANG_JOB_DIST_PORTS", [str(sv.dist_init_port) for sv in head_node.servers]),
    ]
    for sv in head_node.servers:
        argv = rank_independent_argv(server_argv(spec, sv, 0, HEAD_PLACEHOLDER))
        lines.append(_array(f"SGLANG_JOB_ARGV_{sv.slot}", argv))
    env = [f"{k}={v}" for k, v in plan.container_env.items()]
    local_ranks = math.ceil(spec.tp_size * spec.pp_size / layout.nodes_per_server)
    lines += [
        _array("SGLANG_JOB_ENV", env),
        f"SGLANG_JOB_FSX={1 if plan.uses_model_store else 0}",
        f"SGLANG_JOB_REQUIRE_EFA={1 if require_efa(plan.spec, layout) else 0}",
        f"export SGLANG_JOB_LOCAL_RANKS={local_ranks} SGLANG_JOB_NODES_PER_SERVER "
        "SGLANG_JOB_IMAGE SGLANG_JOB_FSX SGLANG_JOB_REQUIRE_EFA",
        f"SGLANG_JOB_MAX_REQUEUES={s.max_requeues}",
        f'SGLANG_READY_TRIES="${{SGLANG_READY_TRIES:-{s.ready_tries}}}"',
        f'SGLANG_READY_INTERVAL="${{SGLANG_READY_INTERVAL:-{s.ready_interval_secs}}}"',
    ]
    return "\n".join(lines) + "\n" + JOB_BODY.read_text(encoding="utf-8")
