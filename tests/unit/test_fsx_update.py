"""An existing model store under load-time sizing: what `pulumi up` would change in place, and
advice whose steps each change one thing (checked through the real sizing, not by hand)."""

from __future__ import annotations

import json
import subprocess
import sys

from infra.planning.cluster import plan_cluster
from infra.planning.fsx_sizing import StoreSizing
from infra.planning.fsx_update import store_update_advice
from infra.spec import parse_config
from tests.conftest import ROOT, base_config


def _store(**overrides: object) -> StoreSizing:
    store = plan_cluster(parse_config(base_config(**overrides)), "test").store
    assert store is not None
    return store


def _pair(store: StoreSizing) -> tuple[int, int]:
    return store.capacity_gib, store.throughput_mb_per_tib


def test_prod_tp16_store_change_is_a_warning_with_one_change_per_step() -> None:
    """prod-tp16 was 1200 GiB at 250 MB/s/TiB; sizing for a 120 s target makes it 7200 GiB at
    500: both fields in one UpdateFileSystem request. Each advised step, fed back through the
    planner, changes exactly one of them, and the "keep" keys give back the deployed store."""
    store = _store(weights_load_target_secs=120)
    old = store.capacity_only
    assert old is not None and _pair(old) == (1200, 250) and _pair(store) == (7200, 500)
    warnings, notes = store_update_advice(store)
    assert notes == []
    (w,) = warnings
    assert "sglang-cluster:fsx_capacity_gib: 7200 with sglang-cluster:fsx_throughput_mb_per_tib: 250" in w
    assert "then sglang-cluster:fsx_throughput_mb_per_tib: 500" in w
    assert "set sglang-cluster:fsx_capacity_gib: 1200 and sglang-cluster:fsx_throughput_mb_per_tib: 250" in w

    step1 = _store(weights_load_target_secs=120, fsx_capacity_gib=7200, fsx_throughput_mb_per_tib=250)
    step2 = _store(weights_load_target_secs=120, fsx_capacity_gib=7200, fsx_throughput_mb_per_tib=500)
    keep = _store(weights_load_target_secs=120, fsx_capacity_gib=1200, fsx_throughput_mb_per_tib=250)
    assert _pair(step1) == (7200, 250)  # capacity alone
    assert _pair(step2) == _pair(store)  # then throughput alone, to the sized store
    assert _pair(keep) == _pair(old)
    assert store_update_advice(keep) == ([], [])


def test_capacity_only_change_is_a_note() -> None:
    """prod-tp16's default (180 s) keeps the 250 tier and grows 1200 -> 7200 GiB: one update
    action, so a note naming the in-place growth and the keys that keep the deployed store."""
    store = _store()
    assert store.capacity_only is not None and _pair(store) == (7200, 250)
    warnings, notes = store_update_advice(store)
    assert warnings == [] and len(notes) == 1
    assert "grows it to 7200 GiB in place" in notes[0]


def test_throughput_only_change_is_a_note() -> None:
    """tp8-dp2 (Qwen2.5-14B, two TP8 replicas): 1200 GiB still, the target picks 500 MB/s/TiB."""
    store = _store(model="Qwen/Qwen2.5-14B-Instruct", tp_size=8, replicas=2, node_count=2)
    assert store.capacity_only is not None
    assert store.capacity_gib == store.capacity_only.capacity_gib
    assert store.throughput_mb_per_tib != store.capacity_only.throughput_mb_per_tib
    warnings, notes = store_update_advice(store)
    assert warnings == [] and len(notes) == 1
    assert f"changes its tier to {store.throughput_mb_per_tib} MB/s/TiB in place" in notes[0]


def test_unchanged_store_gets_no_advice() -> None:
    assert store_update_advice(_store(weights_load_target_secs=0)) == ([], [])
    assert store_update_advice(None) == ([], [])


def test_the_plan_json_carries_the_warning() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "infra", "plan", "prod-tp16", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc = json.loads(out)
    assert any(n.startswith("model store: on a stack deployed before load-time sizing") for n in doc["notes"])
