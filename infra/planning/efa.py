"""EFA network-interface layout of a launch template, per instance type. Pure code.

Current AWS guidance (EC2 user guide, "Maximize network bandwidth on accelerated instance
types", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-acc-inst-types.html):

- network card 0, device index 0 is the primary ENA interface (``interface``): it carries the
  instance's IP address; the primary interface can never be ``efa-only``;
- if card 0 supports EFA, an ``efa-only`` interface goes at card 0, device index 1;
- every further network card gets an ``efa-only`` interface at device index 0.

``efa-only`` interfaces (since Oct 2024) have no IP address, so they use no subnet addresses.
The EFA count is the type's ``EfaInfo.MaximumEfaInterfaces`` from the catalog (p5.48xlarge: 32 EFA
+ 1 ENA = 33 interfaces), never the network-card count (they differ on newer types).
Types without EFA get one plain interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.planning.catalog import InstanceType

InterfaceType = Literal["interface", "efa-only"]


@dataclass(frozen=True)
class NetworkInterfaceSpec:
    """One launch-template network interface (subnet and security groups are added by the
    component: every interface gets the same subnet and the EFA security group)."""

    network_card_index: int
    device_index: int
    interface_type: InterfaceType

    @property
    def is_primary(self) -> bool:
        """The ENA interface at card 0, device 0 that carries the instance's IP."""
        return self.network_card_index == 0 and self.device_index == 0


def network_interfaces(itype: InstanceType) -> list[NetworkInterfaceSpec]:
    """The interfaces a launch template for ``itype`` declares.

    Returns:
        ``1 + itype.max_efa`` interfaces: the ENA primary first, then ``efa-only`` ones by card.

    Raises:
        ValueError: when the catalog says a type has more EFA interfaces than network cards (a
            catalog error: one ``efa-only`` per card, two on card 0).
    """
    primary = NetworkInterfaceSpec(0, 0, "interface")
    if not itype.has_efa:
        return [primary]
    if itype.max_efa > itype.network_cards:
        raise ValueError(
            f"catalog: {itype.name} lists {itype.max_efa} EFA interfaces on "
            f"{itype.network_cards} network cards"
        )
    out = [primary, NetworkInterfaceSpec(0, 1, "efa-only")]
    out += [NetworkInterfaceSpec(card, 0, "efa-only") for card in range(1, itype.max_efa)]
    return out


def efa_count(interfaces: list[NetworkInterfaceSpec]) -> int:
    """Number of EFA interfaces in a layout."""
    return sum(1 for i in interfaces if i.interface_type == "efa-only")
