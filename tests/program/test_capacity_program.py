"""The GPU launch template's capacity settings, from the program run under the SDK's mocks.

The mocks stand in for AWS (no account, no reservation here): what is checked is exactly what
the program hands the provider for ``aws.ec2.LaunchTemplate`` (camelCase input names, as
``pulumi preview --diff`` shows them).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from infra.mockrun import ProgramRun, run_program, run_stack
from tests.conftest import STACKS, engine_config

CR = "cr-0fedcba9876543210"
LT = "server-g0-r0-lt"
"""The launch template of the first GPU node (every node has its own, with the same settings)."""
PG = "aws:ec2/placementGroup:PlacementGroup"


@cache
def run_cfg(**overrides: Any) -> ProgramRun:
    return run_program("prod-test", engine_config(**overrides))


def test_odcr_target_without_market_type_in_the_created_placement_group() -> None:
    r = run_cfg(capacity_reservation_id=CR, capacity_reservation_az="us-east-1a")
    lt = r.named(LT).inputs
    assert lt["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": CR}
    }
    assert "capacityReservationPreference" not in lt["capacityReservationSpecification"]
    assert "instanceMarketOptions" not in lt
    (pg,) = r.of_type(PG)
    assert pg.inputs["strategy"] == "cluster"
    assert lt["placement"]["groupName"] == r.outputs["placement_group"]
    assert r.outputs["capacity"] == {"kind": "odcr", "reservation_id": CR}


def test_odcr_in_an_existing_placement_group_creates_none() -> None:
    r = run_cfg(capacity_reservation_id=CR, placement_group_name="team-p5-cpg")
    lt = r.named(LT).inputs
    assert r.of_type(PG) == []
    assert lt["placement"] == {"groupName": "team-p5-cpg"}
    assert r.outputs["placement_group"] == "team-p5-cpg"
    assert lt["capacityReservationSpecification"]["capacityReservationTarget"]["capacityReservationId"] == CR


def test_capacity_block_market_type_and_no_placement_group() -> None:
    r = run_cfg(capacity_reservation_id=CR, capacity_block=True)
    lt = r.named(LT).inputs
    assert lt["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert lt["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": CR}
    }
    assert r.of_type(PG) == [] and "placement" not in lt
    assert r.outputs["placement_group"] is None
    assert r.outputs["capacity"] == {"kind": "capacity-block", "reservation_id": CR}
    # Every GPU node launches from its own template with the same capacity settings; the
    # router from its own, without either.
    lt_ids = {i.name: i.inputs["launchTemplate"]["id"] for i in r.of_type("aws:ec2/instance:Instance")}
    router_lt_id = lt_ids.pop("router")
    assert len(lt_ids) == 2 and router_lt_id not in lt_ids.values()
    for node in lt_ids:
        node_lt = r.named(f"{node}-lt").inputs
        assert node_lt["instanceMarketOptions"] == {"marketType": "capacity-block"}
        assert node_lt["capacityReservationSpecification"] == lt["capacityReservationSpecification"]
    router_lt = r.named("router-lt").inputs
    assert "instanceMarketOptions" not in router_lt and "capacityReservationSpecification" not in router_lt


@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_launch_on_demand(stack: str) -> None:
    """No stack file sets the keys: no target, no market options, outputs say on-demand."""
    r = run_stack(stack)
    for name in [f"{n.name}-lt" for n in r.plan.layout.nodes] + ["router-lt"]:
        lt = r.named(name).inputs
        assert "capacityReservationSpecification" not in lt and "instanceMarketOptions" not in lt
    assert r.outputs["capacity"] == {"kind": "on-demand", "reservation_id": None}
