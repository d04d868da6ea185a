"""What `pulumi up` does to a model store that already exists when load-time sizing
(:mod:`infra.planning.fsx_sizing`) picks another capacity or throughput tier. Pure code.

Facts (FSx for Lustre user guide and API reference, read 2026-11-21):

- Storage capacity only grows in place, in multiples of 2400 GiB for SSD file systems
  (https://docs.aws.amazon.com/fsx/latest/APIReference/API_UpdateFileSystem.html,
  ``StorageCapacity``); FSx adds file servers, the file system is briefly unavailable, then
  rebalances data for hours to days, and takes no further capacity increase until that
  optimization ends (https://docs.aws.amazon.com/fsx/latest/LustreGuide/managing-storage-capacity.html).
- A PERSISTENT_2 throughput tier (125/250/500/1000 MB/s/TiB) changes in place: FSx switches out
  the file servers and the file system is unavailable for minutes
  (https://docs.aws.amazon.com/fsx/latest/LustreGuide/managing-throughput-capacity.html).
- pulumi-aws (terraform-provider-aws ``internal/service/fsx/lustre_file_system.go``) sends every
  changed field in ONE ``UpdateFileSystem`` request, and replaces the file system when the
  capacity goes down (``ForceNew`` on a smaller ``storage_capacity``): the checkpoint is imported
  again and, as the nodes' user data names the file system, every GPU node is replaced.

FSx documents the two changes as separate update actions; that it accepts both in one request
is not documented (not proven here: no AWS account). The advice therefore changes one at a time.
"""

from __future__ import annotations

from infra.planning.fsx_sizing import StoreSizing
from infra.spec import qualified


def store_update_advice(store: StoreSizing | None) -> tuple[list[str], list[str]]:
    """Warnings and notes for a stack whose store was deployed with the capacity-only sizing.

    Args:
        store: the sized store (``None`` without one). Its ``capacity_only`` is the store a
            stack got before load-time sizing (smallest capacity at 250 MB/s/TiB).

    Returns:
        ``(warnings, notes)``: a warning when both capacity and throughput change (one
        request, two FSx update actions), with the two ``pulumi up`` steps that change one at a
        time and the keys that keep the deployed store; a note when only one changes; nothing
        when the sizing is the capacity-only one.
    """
    if store is None or store.capacity_only is None:
        return [], []
    old = store.capacity_only
    cap = store.capacity_gib != old.capacity_gib
    tput = (
        store.deployment_type == "PERSISTENT_2" and store.throughput_mb_per_tib != old.throughput_mb_per_tib
    )
    cap_key, tp_key = qualified("fsx_capacity_gib"), qualified("fsx_throughput_mb_per_tib")
    was = f"{old.capacity_gib} GiB at {old.throughput_mb_per_tib} MB/s/TiB"
    keep = f"to keep it as it is, set {cap_key}: {old.capacity_gib} and {tp_key}: {old.throughput_mb_per_tib}"
    if cap and tput:
        return [
            f"model store: a stack deployed before load-time sizing has a {was} file system; "
            f"`pulumi up` would ask FSx for {store.capacity_gib} GiB and "
            f"{store.throughput_mb_per_tib} MB/s/TiB in one UpdateFileSystem request, two FSx "
            "update actions that each take the file system offline for minutes (a capacity "
            "increase then rebalances for hours and blocks further increases). Change one at a "
            f"time: first {cap_key}: {store.capacity_gib} with {tp_key}: "
            f"{old.throughput_mb_per_tib}, then {tp_key}: {store.throughput_mb_per_tib}; {keep}. "
            "Capacity never shrinks in place: a smaller value replaces the file system and every "
            "GPU node"
        ], []
    if cap:
        what = (
            f"grows it to {store.capacity_gib} GiB in place (offline for minutes, then hours of rebalancing)"
        )
    elif tput:
        what = (
            f"changes its tier to {store.throughput_mb_per_tib} MB/s/TiB in place "
            "(file servers switched out, offline for minutes)"
        )
    else:
        return [], []
    return [], [
        f"model store: on a stack deployed before load-time sizing ({was}) `pulumi up` {what}; {keep}"
    ]
