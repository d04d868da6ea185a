"""The boot-path figures a cold-start model needs, as plain values (issue 10 part 2). Pure code.

The cold-start model (``infra/planning/coldstart.py``, another branch) reads these instead of
restating the decisions made here and in the components:

- :func:`fsx_throughput_mb_s`: the model store's disk throughput as sized for
  ``weights_load_target_secs`` (:mod:`infra.planning.fsx_sizing`), baseline and burst;
- :func:`launch_is_parallel`: every GPU node of the stack launches at once (no instance waits
  for another: ranks >= 1 and the router take rank 0's address from its primary network
  interface, :mod:`infra.components.server_fleet`; ``tests/program/test_parallel_launch.py``
  asserts the deploy graph matches this value for every stack);
- :func:`image_pull_source`: where nodes pull the serving image from;
- :func:`nvme` / :func:`nvme_present`: the GPU type's instance-store NVMe, which holds
  Docker's data root and the model cache (``userdata/sglang-nvme``);
- :func:`fast_load`: SGLang's weight-load flags the servers run with
  (:mod:`infra.planning.fastload`).

:func:`boot_figures` gathers them for the plan JSON (``estimates.boot``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from infra.planning.fastload import OVERLAP_VALUE, PREFETCH_FLAG, fast_load_args
from infra.planning.image import pull_source

if TYPE_CHECKING:
    from infra.planning.cluster import ClusterPlan

PARALLEL_LAUNCH = True
"""Whether the program launches every GPU instance without waiting for another (EC2 backend)."""

NVME_SOURCE = (
    "EC2 instance store volumes per type (https://docs.aws.amazon.com/ec2/latest/instancetypes/"
    "ac.html and gp.html, 'Instance store specifications'), as recorded 2025 and not re-read "
    "here; p5: 8 x 3.84 TB (shared/reference/aws-gpu-clusters.md)"
)
INSTANCE_STORE: dict[str, tuple[int, int]] = {
    # type: (NVMe instance-store disks, GB per disk)
    "p4d.24xlarge": (8, 1000),
    "p4de.24xlarge": (8, 1000),
    "p5.48xlarge": (8, 3840),
    "p5e.48xlarge": (8, 3840),
    "p5en.48xlarge": (8, 3840),
    "p6-b200.48xlarge": (8, 3840),
    "g5.xlarge": (1, 250),
    "g5.12xlarge": (1, 3800),
    "g5.48xlarge": (2, 3800),
    "g6e.xlarge": (1, 250),
    "g6e.12xlarge": (2, 1900),
    "g6e.24xlarge": (2, 1900),
    "g6e.48xlarge": (4, 1900),
}
"""Types not listed (the router's c7i/m7i) have no instance store."""


@dataclass(frozen=True)
class Nvme:
    """Instance-store NVMe of a node type.

    Attributes:
        disks: local NVMe disks (0 = none: Docker and the cache stay on the root EBS volume).
        disk_gb: GB per disk.
        raid0: the disks are joined in one RAID0 array (more than one disk).
    """

    disks: int
    disk_gb: int

    @property
    def raid0(self) -> bool:
        return self.disks > 1

    @property
    def total_gb(self) -> int:
        return self.disks * self.disk_gb


def nvme(instance_type: str) -> Nvme:
    """Instance-store NVMe of ``instance_type`` (``Nvme(0, 0)`` when it has none)."""
    disks, gb = INSTANCE_STORE.get(instance_type, (0, 0))
    return Nvme(disks, gb)


def nvme_present(plan: ClusterPlan) -> bool:
    """True when the GPU nodes have instance-store NVMe (Docker's data root and the model cache
    go there; else they stay on the root EBS volume)."""
    return nvme(plan.node_type.name).disks > 0


def fsx_throughput_mb_s(plan: ClusterPlan) -> tuple[float, float] | None:
    """``(baseline, burst)`` disk throughput of the model store in MB/s as sized, or ``None``
    without a store."""
    if plan.store is None:
        return None
    return plan.store.baseline_mb_s, plan.store.burst_mb_s


def launch_is_parallel(plan: ClusterPlan) -> bool:
    """True when every GPU node launches at once (see :data:`PARALLEL_LAUNCH`)."""
    del plan  # one rule for every EC2 stack; kept as a function of the plan for the model
    return PARALLEL_LAUNCH


def image_pull_source(plan: ClusterPlan) -> str:
    """``ecr-in-region``, ``ecr-other-region`` or the image's registry host (``docker.io``)."""
    return pull_source(plan.spec, plan.region)


def fast_load(plan: ClusterPlan) -> dict[str, bool]:
    """``{"prefetch_checkpoints": ..., "startup_overlap": ...}``: the weight-load flags servers get."""
    args = fast_load_args(plan.spec)
    return {"prefetch_checkpoints": PREFETCH_FLAG in args, "startup_overlap": OVERLAP_VALUE in args}


@dataclass(frozen=True)
class BootFigures:
    """The figures above for one stack (the plan JSON's ``estimates.boot``).

    Attributes:
        parallel_launch: see :func:`launch_is_parallel`.
        image_pull_source: see :func:`image_pull_source`.
        nvme_disks / nvme_total_gb / docker_on_nvme: see :func:`nvme`.
        fsx_baseline_mb_s / fsx_burst_mb_s: see :func:`fsx_throughput_mb_s` (``None`` without
            a store).
        weights_readers: nodes reading the checkpoint at once; weights_read_gb: GB they read.
        weights_load_secs / weights_load_secs_burst: at baseline / burst (``None`` without a
            store).
        prefetch_checkpoints / startup_overlap: see :func:`fast_load`.
        sources: where the figures come from.
    """

    parallel_launch: bool
    image_pull_source: str
    nvme_disks: int
    nvme_total_gb: int
    docker_on_nvme: bool
    fsx_baseline_mb_s: float | None
    fsx_burst_mb_s: float | None
    weights_readers: int
    weights_read_gb: float | None
    weights_load_secs: float | None
    weights_load_secs_burst: float | None
    prefetch_checkpoints: bool
    startup_overlap: bool
    sources: dict[str, str]


def boot_figures(plan: ClusterPlan) -> BootFigures:
    """Every figure of this module for ``plan``."""
    disks = nvme(plan.node_type.name)
    store = plan.store
    load = fast_load(plan)
    return BootFigures(
        parallel_launch=launch_is_parallel(plan),
        image_pull_source=image_pull_source(plan),
        nvme_disks=disks.disks,
        nvme_total_gb=disks.total_gb,
        docker_on_nvme=disks.disks > 0,
        fsx_baseline_mb_s=round(store.baseline_mb_s, 1) if store else None,
        fsx_burst_mb_s=round(store.burst_mb_s, 1) if store else None,
        weights_readers=len(plan.layout.nodes),
        weights_read_gb=round(store.read_mb / 1000, 1) if store else None,
        weights_load_secs=round(store.load_secs, 1) if store else None,
        weights_load_secs_burst=round(store.load_secs_burst, 1) if store else None,
        prefetch_checkpoints=load["prefetch_checkpoints"],
        startup_overlap=load["startup_overlap"],
        sources={
            "nvme": NVME_SOURCE,
            "fsx": "infra/planning/fsx_sizing.py (FSx for Lustre SSD performance table)",
            "fast_load": "infra/planning/fastload.py (SGLang 0.5.23 source)",
        },
    )


def boot_document(plan: ClusterPlan) -> dict[str, object]:
    """:func:`boot_figures` as a JSON object."""
    return asdict(boot_figures(plan))
