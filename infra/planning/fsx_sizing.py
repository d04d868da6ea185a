"""Model-store sizing for load time: FSx for Lustre capacity and per-unit throughput that let
every GPU node read the checkpoint within ``weights_load_target_secs``. Pure code.

What a start reads: every GPU node reads the whole checkpoint once. SGLang 0.5.23's default
loader opens each safetensors file on every TP rank and reads every tensor before slicing it
(``model_loader/weight_utils.py`` ``safetensors_weights_iterator``); the ranks of one node share
the Lustre client's page cache, so a node reads the checkpoint once, and the nodes read at the
same time. This is an upper bound for PP (a stage may skip other stages' tensors) and a
stated assumption, not a measurement.

Throughput per TiB of storage, FSx for Lustre SSD, from "Performance characteristics of SSD
and HDD storage classes" (https://docs.aws.amazon.com/fsx/latest/LustreGuide/ssd-storage.html,
table as published 2026-11; the same figures in two independent public summaries found
2026-11-21). Reads the file servers' RAM cache does not hold come off disk, so the disk figure
is the one a cold checkpoint load gets; the RAM cache (3.4 to 27.3 GiB per TiB) is far smaller
than a checkpoint and is not counted. Burst is credit-based (network I/O credits accrue below
baseline): the planner sizes on the baseline and reports the burst figure as the optimistic
bound.

Prices: https://aws.amazon.com/fsx/lustre/pricing/ (us-east-1, USD per GB-month of SSD
storage). 125 MB/s/TiB at $0.145 was re-read 2026-11-21 (c3x.dev quoting the AWS page); 250,
500 and 1000 are the page's us-east-1 list prices as recorded in 2025 and were not re-read
here. Monthly = 730 hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from infra.planning.storage import FSX_SMALLEST_GIB, FSX_STEP_GIB, fsx_capacity_gib

if TYPE_CHECKING:
    from infra.spec import StackSpec

MB_PER_GIB = 1024**3 / 1e6
"""FSx throughput is in MB/s (10^6 bytes); checkpoints are measured in GiB."""
HOURS_PER_MONTH = 730
SSD_DOC = "https://docs.aws.amazon.com/fsx/latest/LustreGuide/ssd-storage.html"
PRICE_DOC = "https://aws.amazon.com/fsx/lustre/pricing/"


@dataclass(frozen=True)
class FsxTier:
    """One throughput tier of FSx for Lustre SSD storage, per TiB of storage.

    Attributes:
        per_unit: the ``PerUnitStorageThroughput`` value (MB/s per TiB); SCRATCH_2 has none
            (its figure is fixed at 200 and never sent to the API).
        disk_baseline / disk_burst: disk throughput in MB/s per TiB (burst ``None`` = none).
        network_baseline / network_burst: network throughput in MB/s per TiB.
        usd_per_gb_month: storage price, us-east-1.
    """

    per_unit: int
    disk_baseline: int
    disk_burst: int | None
    network_baseline: int
    network_burst: int | None
    usd_per_gb_month: float


PERSISTENT_2_TIERS: dict[int, FsxTier] = {
    125: FsxTier(125, 125, 500, 320, 1300, 0.145),
    250: FsxTier(250, 250, 500, 640, 1300, 0.210),
    500: FsxTier(500, 500, None, 1300, None, 0.340),
    1000: FsxTier(1000, 1000, None, 2600, None, 0.600),
}
SCRATCH_2_TIER = FsxTier(200, 200, None, 200, 1300, 0.140)
"""SCRATCH_2: 200 MB/s/TiB disk (reads), 1300 network burst; $0.140/GB-month (pricing page)."""

LEGACY_THROUGHPUT = 250
"""The per-unit throughput every stack had before load-time sizing (and the one used when
``weights_load_target_secs`` is 0)."""


@dataclass(frozen=True)
class StoreSizing:
    """The model store as sized, and what a start reads from it.

    Attributes:
        deployment_type: ``PERSISTENT_2`` or ``SCRATCH_2``.
        capacity_gib: storage capacity (1200 or a multiple of 2400).
        throughput_mb_per_tib: the per-unit throughput (PERSISTENT_2: sent to FSx; SCRATCH_2:
            its fixed 200).
        readers: GPU nodes that read the checkpoint at the same time.
        read_mb: MB (10^6 bytes) the nodes read in all: readers x checkpoint.
        baseline_mb_s / burst_mb_s: the file system's disk throughput in MB/s.
        load_secs: seconds for ``read_mb`` at baseline (what the planner sizes on).
        load_secs_burst: seconds at burst (the optimistic bound; equal without burst).
        target_secs: ``weights_load_target_secs`` (0 = not sized for load time).
        chosen: ``"target"`` (capacity and throughput picked for the target), ``"throughput
            given"``, ``"capacity given"``, ``"given"`` (both keys set) or ``"capacity only"``
            (no target).
        hourly_usd / monthly_usd: the store's price, us-east-1.
        capacity_only: what the store would be without a target (smallest capacity at 250
            MB/s/TiB), for the cost difference; ``None`` when this is it.
    """

    deployment_type: str
    capacity_gib: int
    throughput_mb_per_tib: int
    readers: int
    read_mb: float
    baseline_mb_s: float
    burst_mb_s: float
    load_secs: float
    load_secs_burst: float
    target_secs: int
    chosen: str
    monthly_usd: float
    hourly_usd: float
    capacity_only: StoreSizing | None = None

    @property
    def meets_target(self) -> bool:
        """True when the baseline load time is within the target (or there is none)."""
        return not self.target_secs or self.load_secs <= self.target_secs

    @property
    def extra_hourly_usd(self) -> float:
        """USD/hour over the capacity-only store (0 when this is it)."""
        return round(self.hourly_usd - self.capacity_only.hourly_usd, 3) if self.capacity_only else 0.0

    def document(self) -> dict[str, object]:
        """The plan JSON's ``estimates.model_store``."""
        doc: dict[str, object] = {
            "deployment_type": self.deployment_type,
            "capacity_gib": self.capacity_gib,
            "throughput_mb_per_tib": self.throughput_mb_per_tib,
            "baseline_mb_per_s": round(self.baseline_mb_s, 1),
            "burst_mb_per_s": round(self.burst_mb_s, 1),
            "readers": self.readers,
            "read_gb": round(self.read_mb / 1000, 1),
            "load_secs": round(self.load_secs, 1),
            "load_secs_burst": round(self.load_secs_burst, 1),
            "weights_load_target_secs": self.target_secs,
            "meets_target": self.meets_target,
            "chosen": self.chosen,
            "hourly_usd": round(self.hourly_usd, 3),
            "monthly_usd": round(self.monthly_usd, 2),
            "sources": {"throughput": SSD_DOC, "price": PRICE_DOC},
            "summary": self.summary(),
        }
        if self.capacity_only is not None:
            doc["capacity_only"] = {
                "capacity_gib": self.capacity_only.capacity_gib,
                "throughput_mb_per_tib": self.capacity_only.throughput_mb_per_tib,
                "baseline_mb_per_s": round(self.capacity_only.baseline_mb_s, 1),
                "load_secs": round(self.capacity_only.load_secs, 1),
                "hourly_usd": round(self.capacity_only.hourly_usd, 3),
            }
            doc["extra_hourly_usd"] = self.extra_hourly_usd
        return doc

    def summary(self) -> str:
        """One line for the plan table."""
        burst = f" (burst {self.load_secs_burst:.0f} s)" if self.load_secs_burst < self.load_secs else ""
        target = f", target {self.target_secs} s" if self.target_secs else ""
        line = (
            f"{self.capacity_gib} GiB {self.deployment_type} at {self.throughput_mb_per_tib} MB/s/TiB = "
            f"{self.baseline_mb_s:.0f} MB/s; {self.readers} node(s) read {self.read_mb / 1000:.1f} GB "
            f"in {self.load_secs:.0f} s{burst}{target}; ${self.hourly_usd:.2f}/h"
        )
        if self.capacity_only is not None:
            line += (
                f" (+${self.extra_hourly_usd:.2f}/h over {self.capacity_only.capacity_gib} GiB at "
                f"{self.capacity_only.throughput_mb_per_tib} MB/s/TiB, which loads in "
                f"{self.capacity_only.load_secs:.0f} s)"
            )
        if not self.meets_target:
            line += f"; WARNING: misses the {self.target_secs} s target ({self.chosen})"
        return line


SGLANG_LOADER_STREAMS = 8
"""Threads one rank loads safetensors with by default (SGLang 0.5.23 ``DEFAULT_NUM_THREADS``,
model_loader/loader.py); a node reads at most this many file servers at once."""


def tier_of(deployment_type: str, per_unit: int) -> FsxTier:
    """The tier table row of a deployment type and per-unit throughput.

    Raises:
        KeyError: for a PERSISTENT_2 throughput FSx does not offer.
    """
    return SCRATCH_2_TIER if deployment_type == "SCRATCH_2" else PERSISTENT_2_TIERS[per_unit]


def next_valid_capacity(gib: float) -> int:
    """Smallest FSx SSD capacity (1200, or a multiple of 2400 GiB) of at least ``gib``."""
    if gib <= FSX_SMALLEST_GIB:
        return FSX_SMALLEST_GIB
    return int(math.ceil(gib / FSX_STEP_GIB) * FSX_STEP_GIB)


def evaluate(
    deployment_type: str, capacity_gib: int, per_unit: int, readers: int, weights_gib: float
) -> StoreSizing:
    """Throughput, load time and price of one configuration (``chosen`` left empty).

    Args:
        deployment_type: ``PERSISTENT_2`` or ``SCRATCH_2``.
        capacity_gib: storage capacity in GiB.
        per_unit: MB/s per TiB (ignored for SCRATCH_2).
        readers: nodes reading the checkpoint at once.
        weights_gib: checkpoint size in GiB.
    """
    from infra.planning.coldstart import node_read_cap_mb_per_s

    tier = tier_of(deployment_type, per_unit)
    tib = capacity_gib / 1024
    base = tib * tier.disk_baseline
    burst = tib * (tier.disk_burst or tier.disk_baseline)
    read_mb = readers * weights_gib * MB_PER_GIB
    # One node reads its copy at most at the per-client limit (5 Gbit/s per file server, one
    # file server per 2400 GiB): a small fast store cannot feed one p5 faster than that.
    node_secs = weights_gib * MB_PER_GIB / node_read_cap_mb_per_s(capacity_gib, SGLANG_LOADER_STREAMS)
    monthly = capacity_gib * tier.usd_per_gb_month
    return StoreSizing(
        deployment_type=deployment_type,
        capacity_gib=capacity_gib,
        throughput_mb_per_tib=tier.per_unit,
        readers=readers,
        read_mb=read_mb,
        baseline_mb_s=base,
        burst_mb_s=burst,
        load_secs=max(read_mb / base, node_secs),
        load_secs_burst=max(read_mb / burst, node_secs),
        target_secs=0,
        chosen="",
        monthly_usd=monthly,
        hourly_usd=monthly / HOURS_PER_MONTH,
    )


def cheapest_for_target(
    min_capacity_gib: int, readers: int, weights_gib: float, target_secs: int, tiers: list[int]
) -> StoreSizing:
    """The cheapest PERSISTENT_2 (capacity, tier) whose baseline reads ``readers`` x the
    checkpoint within ``target_secs``; ties go to the higher throughput.

    For each tier the smallest valid capacity that is at least ``min_capacity_gib`` and gives
    ``readers * weights / target`` MB/s is priced; the cheapest wins.
    """
    need_mb_s = readers * weights_gib * MB_PER_GIB / target_secs
    best: StoreSizing | None = None
    for per_unit in tiers:
        gib = next_valid_capacity(max(min_capacity_gib, need_mb_s / per_unit * 1024))
        cand = evaluate("PERSISTENT_2", gib, per_unit, readers, weights_gib)
        # More file servers for the per-client limit (bounded: 40 steps = 96 TiB more).
        for _ in range(40):
            if cand.load_secs <= target_secs:
                break
            gib = next_valid_capacity(gib + FSX_STEP_GIB)
            cand = evaluate("PERSISTENT_2", gib, per_unit, readers, weights_gib)
        if best is None or (cand.monthly_usd, -per_unit) < (best.monthly_usd, -best.throughput_mb_per_tib):
            best = cand
    assert best is not None
    return best


def size_store(spec: StackSpec, weights_gib: float, readers: int) -> StoreSizing:
    """Capacity and per-unit throughput of the model store.

    Args:
        spec: the spec (``fsx_deployment_type``, ``fsx_capacity_gib``,
            ``fsx_throughput_mb_per_tib``, ``weights_load_target_secs``).
        weights_gib: checkpoint size in GiB.
        readers: GPU nodes that read it at the same time (every GPU node).

    Returns:
        With ``weights_load_target_secs`` > 0 on PERSISTENT_2: the cheapest capacity and tier
        that hold the checkpoint (1.25 x) and read it within the target at baseline; a key the
        user set (``fsx_capacity_gib`` as a floor, ``fsx_throughput_mb_per_tib`` as the tier)
        is kept and the rest is sized around it. SCRATCH_2 has one tier: its capacity grows
        for the target. With target 0: the capacity-only store (``fsx_throughput_mb_per_tib``
        or 250). The load time is always reported; missing the target is a warning in the
        plan, never a refusal (the user's keys stand).
    """
    floor = max(fsx_capacity_gib(weights_gib), spec.fsx_capacity_gib)
    given_tp = spec.fsx_throughput_mb_per_tib
    target = spec.weights_load_target_secs
    scratch = spec.fsx_deployment_type == "SCRATCH_2"
    base_tp = given_tp or LEGACY_THROUGHPUT
    baseline = evaluate(spec.fsx_deployment_type, floor, base_tp, readers, weights_gib)
    if not target:
        return replace(baseline, chosen="capacity only")
    if spec.fsx_capacity_gib and (given_tp or scratch):
        return replace(baseline, target_secs=target, chosen="given")
    if scratch:
        need_gib = readers * weights_gib * MB_PER_GIB / target / SCRATCH_2_TIER.disk_baseline * 1024
        gib = next_valid_capacity(max(floor, need_gib))
        chosen = evaluate("SCRATCH_2", gib, 0, readers, weights_gib)
        how = "target"
    elif spec.fsx_capacity_gib:
        # Capacity given: the cheapest tier at that capacity that meets the target, else the fastest.
        options = [
            evaluate("PERSISTENT_2", floor, t, readers, weights_gib) for t in sorted(PERSISTENT_2_TIERS)
        ]
        chosen = next((o for o in options if o.load_secs <= target), options[-1])
        how = "capacity given"
    else:
        tiers = [given_tp] if given_tp else sorted(PERSISTENT_2_TIERS)
        chosen = cheapest_for_target(floor, readers, weights_gib, target, tiers)
        how = "throughput given" if given_tp else "target"
    reference = replace(baseline, target_secs=target, chosen="capacity only")
    same = (chosen.capacity_gib, chosen.throughput_mb_per_tib) == (
        reference.capacity_gib,
        reference.throughput_mb_per_tib,
    )
    return replace(chosen, target_secs=target, chosen=how, capacity_only=None if same else reference)
