"""Model-store sizing for load time (issue 10 part 2): the arithmetic against hand computations
and a brute-force search, the keys the user sets, and the plan's figures."""

from __future__ import annotations

import itertools

import pytest

from infra.planning.cluster import plan_cluster
from infra.planning.fsx_sizing import (
    MB_PER_GIB,
    PERSISTENT_2_TIERS,
    evaluate,
    next_valid_capacity,
    size_store,
)
from infra.spec import SpecError, StackSpec, parse_config
from tests.conftest import base_config


def spec(**overrides: object) -> StackSpec:
    return parse_config(base_config(**overrides))


def test_prod_tp16_default_by_hand() -> None:
    """Qwen2.5-72B on 2 x p5, default 180 s: both nodes read the whole checkpoint at once.

    By hand: 2 x 135.4 GiB = 290.8 GB; 180 s needs 1615.5 MB/s from the file system, and each
    node its 145.4 GB at 807.7 MB/s, more than one file server gives one client (5 Gbit/s =
    625 MB/s; one file server per 2400 GiB): at least 2 file servers, 4800 GiB. Per tier the
    smallest valid capacity: 125 -> 14400 GiB ($2088/month), 250 -> 7200 ($1512), 500 -> 4800
    ($1632), 1000 -> 4800 ($2880; 2400 GiB is one file server, 232 s). 7200 GiB at 250 MB/s/TiB
    = 1757.8 MB/s -> 165 s; the old store, 1200 GiB at 250 = 292.97 MB/s, took 993 s.
    """
    s = spec()
    plan = plan_cluster(s, "prod-tp16")
    w = plan.layout.memory.total_weights_gib
    store = plan.store
    assert store is not None
    assert (store.capacity_gib, store.throughput_mb_per_tib, store.chosen) == (7200, 250, "target")
    assert store.baseline_mb_s == pytest.approx(7200 / 1024 * 250)
    assert store.read_mb == pytest.approx(2 * w * 1024**3 / 1e6)
    assert store.load_secs == pytest.approx(2 * w * 1024**3 / 1e6 / (7200 / 1024 * 250))
    assert 160 < store.load_secs < 170 and store.meets_target
    assert store.monthly_usd == pytest.approx(7200 * 0.21)
    old = store.capacity_only
    assert old is not None and (old.capacity_gib, old.throughput_mb_per_tib) == (1200, 250)
    assert old.load_secs == pytest.approx(2 * w * MB_PER_GIB / (1200 / 1024 * 250))
    assert 980 < old.load_secs < 1000
    assert store.extra_hourly_usd == pytest.approx((7200 * 0.21 - 1200 * 0.21) / 730, abs=1e-3)
    assert plan.fsx_capacity_gib == 7200


def test_one_file_server_caps_one_node() -> None:
    """2400 GiB at 1000 MB/s/TiB is one file server: however fast the tier, one node reads it at
    5 Gbit/s (625 MB/s), so 145.4 GB take 232 s, not 124 s."""
    one = evaluate("PERSISTENT_2", 2400, 1000, 2, 135.4)
    assert one.load_secs == pytest.approx(135.4 * MB_PER_GIB / 625)
    assert 230 < one.load_secs < 235


@pytest.mark.parametrize("target", [60, 120, 180, 300, 600, 1200])
@pytest.mark.parametrize(("weights_gib", "readers"), [(135.4, 2), (27.5, 2), (1.1, 1), (640.0, 4)])
def test_chosen_store_is_the_cheapest_that_meets_the_target(
    target: int, weights_gib: float, readers: int
) -> None:
    """Brute force over every capacity up to 240 TiB and every tier."""
    s = spec(weights_load_target_secs=target)
    got = size_store(s, weights_gib, readers)
    floor = next_valid_capacity(weights_gib * 1.25)
    caps = [1200, *range(2400, 245_760 + 1, 2400)]
    meeting = [
        evaluate("PERSISTENT_2", c, t, readers, weights_gib)
        for c, t in itertools.product(caps, PERSISTENT_2_TIERS)
        if c >= floor
    ]
    meeting = [m for m in meeting if m.load_secs <= target]
    if not meeting:
        # Out of reach even at 240 TiB (8 loader streams x 625 MB/s per node): reported as
        # missed (a plan warning), never refused.
        assert not got.meets_target
        return
    cheapest = min(m.monthly_usd for m in meeting)
    assert got.meets_target and got.load_secs <= target
    assert got.monthly_usd == pytest.approx(cheapest)
    assert got.capacity_gib >= weights_gib * 1.25


def test_target_zero_is_the_old_capacity_only_store() -> None:
    store = plan_cluster(spec(weights_load_target_secs=0), "p").store
    assert store is not None
    assert (store.capacity_gib, store.throughput_mb_per_tib, store.chosen) == (1200, 250, "capacity only")
    assert store.capacity_only is None and store.extra_hourly_usd == 0.0


def test_a_given_throughput_is_kept_and_capacity_grows() -> None:
    store = plan_cluster(spec(fsx_throughput_mb_per_tib=250), "p").store
    assert store is not None
    assert (store.throughput_mb_per_tib, store.chosen) == (250, "throughput given")
    assert store.capacity_gib == 7200 and store.meets_target  # 6.3 TiB needed at 250


def test_a_given_capacity_is_a_floor_and_the_tier_is_sized() -> None:
    store = plan_cluster(spec(fsx_capacity_gib=4800), "p").store
    assert store is not None
    assert (store.capacity_gib, store.throughput_mb_per_tib, store.chosen) == (4800, 500, "capacity given")


def test_both_given_are_kept_and_a_missed_target_is_a_warning() -> None:
    store = plan_cluster(spec(fsx_capacity_gib=1200, fsx_throughput_mb_per_tib=125), "p").store
    assert store is not None
    assert (store.capacity_gib, store.throughput_mb_per_tib, store.chosen) == (1200, 125, "given")
    assert not store.meets_target and "WARNING: misses the 180 s target" in store.summary()


def test_scratch_grows_capacity_for_the_target() -> None:
    s = spec(fsx_deployment_type="SCRATCH_2")
    store = plan_cluster(s, "dev").store
    assert store is not None
    # 290.8 GB in 180 s at 200 MB/s/TiB: 8.27 TiB -> 9600 GiB.
    assert (store.capacity_gib, store.throughput_mb_per_tib) == (9600, 200)
    assert store.meets_target


def test_no_store_no_sizing() -> None:
    plan = plan_cluster(spec(model_store=False), "p")
    assert plan.store is None and plan.fsx_capacity_gib == 0


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"fsx_throughput_mb_per_tib": 300}, "fsx_throughput_mb_per_tib"),
        ({"fsx_deployment_type": "SCRATCH_2", "fsx_throughput_mb_per_tib": 250}, "fsx_throughput_mb_per_tib"),
        ({"weights_load_target_secs": -1}, "weights_load_target_secs"),
    ],
)
def test_bad_store_keys_name_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(SpecError) as e:
        plan_cluster(spec(**overrides), "dev")
    assert e.value.key == f"sglang-cluster:{key}"
