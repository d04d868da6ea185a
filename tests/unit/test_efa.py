"""EFA interface layout per instance type (AWS efa-acc-inst-types guidance)."""

from __future__ import annotations

import pytest

from infra.planning.catalog import CATALOG, GPU_TYPES
from infra.planning.efa import efa_count, network_interfaces


@pytest.mark.parametrize(
    ("itype", "efa", "total"),
    [
        ("p5.48xlarge", 32, 33),
        ("p5e.48xlarge", 32, 33),
        ("p5en.48xlarge", 16, 17),
        ("p4d.24xlarge", 4, 5),
        ("p6-b200.48xlarge", 8, 9),
        ("g6e.48xlarge", 4, 5),
        ("g6e.24xlarge", 2, 3),
        ("g5.12xlarge", 1, 2),
        ("g6e.xlarge", 0, 1),
        ("g5.xlarge", 0, 1),
    ],
)
def test_counts(itype: str, efa: int, total: int) -> None:
    ifaces = network_interfaces(CATALOG[itype])
    assert efa_count(ifaces) == efa == CATALOG[itype].max_efa
    assert len(ifaces) == total


@pytest.mark.parametrize("itype", GPU_TYPES)
def test_layout_rules(itype: str) -> None:
    ifaces = network_interfaces(CATALOG[itype])
    primary = ifaces[0]
    assert (primary.network_card_index, primary.device_index, primary.interface_type) == (0, 0, "interface")
    assert sum(1 for i in ifaces if i.interface_type == "interface") == 1
    slots = {(i.network_card_index, i.device_index) for i in ifaces}
    assert len(slots) == len(ifaces), "two interfaces on one card/device slot"
    assert all(i.device_index in (0, 1) for i in ifaces)
    assert all(i.network_card_index < CATALOG[itype].network_cards for i in ifaces)
    if CATALOG[itype].has_efa:
        assert (0, 1) in slots  # card 0 carries an efa-only at device 1
        cards = sorted(i.network_card_index for i in ifaces if i.interface_type == "efa-only")
        assert cards == list(range(CATALOG[itype].max_efa))
