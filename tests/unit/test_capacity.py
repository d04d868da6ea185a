"""Capacity keys: the rules AWS would enforce at launch, refused offline, and what the plan shows.

The invalid cases run the real CLI entry point on a written stack file (exit 2, one line naming
the key), like ``test_invalid_specs.py``; the rest call the pure planner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import main
from infra.planning.capacity import CAPACITY_BLOCK_HOURLY_USD, CAPACITY_BLOCK_TYPES, check_capacity
from infra.planning.catalog import CATALOG
from infra.planning.cluster import plan_cluster
from infra.spec import SpecError, parse_config
from tests.conftest import base_config

CR = "cr-0123456789abcdef0"
ROUTER_USD = 0.1785
"""c7i.xlarge on demand, us-east-1 (the catalog's figure, restated so a drift shows)."""
BLOCK = {"capacity_reservation_id": CR, "capacity_block": True}


def _write_stack(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    qualified = {(k if ":" in k else f"sglang-cluster:{k}"): v for k, v in cfg.items()}
    path = tmp_path / "Pulumi.capacity.yaml"
    path.write_text(yaml.safe_dump({"config": qualified}), encoding="utf-8")
    return path


def _plan(**overrides: Any) -> Any:
    cfg = base_config(**overrides)
    return plan_cluster(parse_config(cfg), "prod-test", cfg.get("aws:region", "us-east-1"))


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "id without cr- prefix",
        {"capacity_reservation_id": "0123456789abcdef0"},
        "capacity_reservation_id",
        "17 lowercase hex digits",
    ),
    (
        "id too short",
        {"capacity_reservation_id": "cr-0123456789abcdef"},
        "capacity_reservation_id",
        "17 lowercase hex digits",
    ),
    (
        "id upper-case hex",
        {"capacity_reservation_id": "cr-0123456789ABCDEF0"},
        "capacity_reservation_id",
        "17 lowercase hex digits",
    ),
    (
        "id not hex",
        {"capacity_reservation_id": "cr-0123456789abcdefg"},
        "capacity_reservation_id",
        "17 lowercase hex digits",
    ),
    ("block without an id", {"capacity_block": True}, "capacity_block", "needs capacity_reservation_id"),
    (
        "block on a type blocks do not offer",
        {**BLOCK, "instance_type": "p4de.24xlarge"},
        "capacity_block",
        "Capacity Blocks do not offer p4de.24xlarge",
    ),
    (
        "block on a G type",
        {
            **BLOCK,
            "instance_type": "g6e.48xlarge",
            "model": "Qwen/Qwen2.5-14B-Instruct",
            "tp_size": 8,
        },
        "capacity_block",
        "Capacity Blocks do not offer g6e.48xlarge",
    ),
    (
        "block with a placement group",
        {**BLOCK, "placement_group_name": "my-cpg"},
        "placement_group_name",
        "must be empty with a Capacity Block",
    ),
    (
        "reservation AZ without a reservation",
        {"capacity_reservation_az": "us-east-1a"},
        "capacity_reservation_az",
        "set both or neither",
    ),
    (
        "reservation AZ not the stack's AZ",
        {"capacity_reservation_id": CR, "capacity_reservation_az": "us-east-1b"},
        "capacity_reservation_az",
        "set availability_zone to us-east-1b",
    ),
    (
        "reservation AZ in another region",
        {
            "capacity_reservation_id": CR,
            "capacity_reservation_az": "us-west-2a",
            "vpc_id": "vpc-0123456789abcdef0",
            "subnet_id": "subnet-0123456789abcdef0",
            "router_public_ip": False,
            "availability_zone": None,
        },
        "capacity_reservation_az",
        "not in the stack's region us-east-1",
    ),
    (
        "reservation AZ malformed",
        {"capacity_reservation_id": CR, "capacity_reservation_az": "east"},
        "capacity_reservation_az",
        "must look like us-east-1a",
    ),
    (
        "placement group name not ASCII",
        {"placement_group_name": "grüppe"},
        "placement_group_name",
        "printable ASCII",
    ),
    (
        "placement group name too long",
        {"placement_group_name": "g" * 256},
        "placement_group_name",
        "printable ASCII",
    ),
]


@pytest.mark.parametrize(("what", "overrides", "key", "says"), CASES, ids=[c[0] for c in CASES])
def test_refused_through_the_cli(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    what: str,
    overrides: dict[str, Any],
    key: str,
    says: str,
) -> None:
    rc = main(["plan", str(_write_stack(tmp_path, base_config(**overrides)))])
    out, err = capsys.readouterr()
    assert rc == 2, f"{what}: expected exit 2, got {rc}"
    assert out == ""
    assert f"sglang-cluster:{key}:" in err, f"{what}: {err!r} does not name {key}"
    assert says in err, f"{what}: {err!r} does not say {says!r}"
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("itype", sorted(CAPACITY_BLOCK_TYPES))
def test_block_accepted_on_every_offered_type(itype: str) -> None:
    spec = parse_config(base_config(**BLOCK, instance_type=itype))
    check_capacity(spec, "us-east-1")  # no SpecError


def test_block_types_are_catalog_gpu_types_with_efa() -> None:
    for t in CAPACITY_BLOCK_TYPES:
        assert CATALOG[t].gpus == 8 and CATALOG[t].has_efa, t
    assert "p4de.24xlarge" not in CAPACITY_BLOCK_TYPES


def test_mismatch_message_says_what_to_change() -> None:
    spec = parse_config(base_config(capacity_reservation_id=CR, capacity_reservation_az="us-east-1d"))
    with pytest.raises(SpecError) as e:
        check_capacity(spec, "us-east-1")
    assert e.value.key == "sglang-cluster:capacity_reservation_az"
    assert "us-east-1d" in e.value.message and "set availability_zone to us-east-1d" in e.value.message


def test_byo_subnet_reservation_az_is_not_compared_offline() -> None:
    """Without availability_zone the stack's AZ is the subnet's, unknown offline: accepted."""
    spec = parse_config(
        base_config(
            capacity_reservation_id=CR,
            capacity_reservation_az="us-east-1c",
            vpc_id="vpc-0123456789abcdef0",
            subnet_id="subnet-0123456789abcdef0",
            router_public_ip=False,
            availability_zone=None,
        )
    )
    check_capacity(spec, "us-east-1")


def test_on_demand_by_default() -> None:
    plan = _plan()
    cap = plan.capacity
    assert (cap.kind, cap.reservation_id, cap.market_type, cap.placement) == ("on-demand", "", "", "created")
    assert plan.uses_placement_group
    assert cap.gpu_node_hourly_usd == CATALOG["p5.48xlarge"].hourly_usd
    assert plan.estimates.hourly_cost_usd == round(2 * 55.04 + ROUTER_USD, 2)
    assert "InsufficientInstanceCapacity" in cap.billing


def test_odcr_keeps_the_created_placement_group_and_on_demand_rate() -> None:
    plan = _plan(capacity_reservation_id=CR, capacity_reservation_az="us-east-1a")
    cap = plan.capacity
    assert (cap.kind, cap.reservation_id, cap.market_type, cap.placement) == ("odcr", CR, "", "created")
    assert plan.uses_placement_group
    assert plan.estimates.hourly_cost_usd == _plan().estimates.hourly_cost_usd
    assert "on-demand rate" in cap.billing and "used or not" in cap.billing
    assert "pulumi destroy does not cancel it" in cap.billing


def test_odcr_in_an_existing_cluster_placement_group() -> None:
    plan = _plan(capacity_reservation_id=CR, placement_group_name="my-cpg")
    assert plan.capacity.placement == "existing" and plan.capacity.placement_group_name == "my-cpg"
    assert not plan.uses_placement_group


def test_block_uses_no_placement_group_and_its_own_rate() -> None:
    plan = _plan(**BLOCK)
    cap = plan.capacity
    assert (cap.kind, cap.market_type, cap.placement) == ("capacity-block", "capacity-block", "none")
    assert not plan.uses_placement_group
    assert cap.gpu_node_hourly_usd == CAPACITY_BLOCK_HOURLY_USD["p5.48xlarge"] == 39.33
    assert plan.estimates.hourly_cost_usd == round(2 * 39.33 + ROUTER_USD, 2)
    assert "2025-01-01" in cap.price_source and "up front" in cap.billing


def test_block_on_a_type_without_a_known_block_price_has_unknown_cost() -> None:
    plan = _plan(**BLOCK, instance_type="p5en.48xlarge")
    assert plan.capacity.gpu_node_hourly_usd is None
    assert plan.estimates.hourly_cost_usd is None


def test_plan_json_and_table_show_the_capacity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_stack(tmp_path, base_config(**BLOCK))
    assert main(["plan", str(path), "--format", "json"]) == 0
    est = json.loads(capsys.readouterr().out)["estimates"]
    assert est["capacity"]["kind"] == "capacity-block"
    assert est["capacity"]["reservation_id"] == CR
    assert est["capacity"]["market_type"] == "capacity-block"
    assert est["capacity"]["placement_group"] == "none"
    assert est["capacity"]["gpu_node_hourly_usd"] == 39.33
    assert est["hourly_cost_usd"] == round(2 * 39.33 + ROUTER_USD, 2)
    assert main(["plan", str(path)]) == 0
    table = capsys.readouterr().out
    assert "in a Capacity Block (its effective rate; router on demand)" in table
    assert f"Capacity: Capacity Block {CR}" in table
    assert est["price_source"].startswith("GPU nodes: EC2 Capacity Blocks for ML pricing")


def test_plan_json_on_demand_capacity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(_write_stack(tmp_path, base_config())), "--format", "json"]) == 0
    cap = json.loads(capsys.readouterr().out)["estimates"]["capacity"]
    assert cap["kind"] == "on-demand" and cap["reservation_id"] is None and cap["market_type"] is None
    assert cap["placement_group"] == "created"
