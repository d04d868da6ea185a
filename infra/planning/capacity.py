"""Where the GPU nodes' capacity comes from: on demand, an On-Demand Capacity Reservation (ODCR)
or a Capacity Block for ML. Pure code: the rules, the launch-template settings and the billing.

p5 on demand often fails with ``InsufficientInstanceCapacity``, and an EFA cluster cannot fall
back to another AZ. Two ways to hold capacity, both targeted through the launch template's
``CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId``:

- ODCR (``capacity_reservation_id``): AWS recommends reserving capacity explicitly in the cluster
  placement group ("If you plan to launch instances into a cluster placement group, we recommend
  that you reserve capacity explicitly in the cluster placement group",
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/limitations-placement-groups.html).
  Such a reservation belongs to one existing placement group, so the stack must launch into that
  group (``placement_group_name``) instead of creating its own; and a group that holds an active
  reservation cannot be deleted, so the stack must not own it
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cr-cpg.html).
- Capacity Block (``capacity_block: true`` + its ``cr-`` id): the launch also needs
  ``InstanceMarketOptions.MarketType = capacity-block``
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-launch.html). "Capacity
  Blocks deliver low-latency, high-throughput network connectivity between the instances inside
  the Capacity Block, so there is no need to use a cluster placement group with a Capacity Block"
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-using.html), and AWS
  ParallelCluster refuses a placement group together with a Capacity Block (validator since 3.10):
  with a block the stack uses no placement group at all.

A targeted launch never falls back to on-demand capacity (it fails when the reservation is full,
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-reservations-launch.html), so
``CapacityReservationPreference`` is left unset: pulumi-aws 7.x says to omit it (or set
``capacity-reservations-only``) when a target is given
(``LaunchTemplateCapacityReservationSpecificationArgs``).

What needs the live account (the reservation exists, is ``active``/``scheduled``, its instance
type, AZ, size and placement group) is not checked here: the spec cannot look a reservation up
offline. ``capacity_reservation_az`` lets the user state the AZ so a mismatch with
``availability_zone`` is refused now; the rest belongs to the future ``preflight`` command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.spec import SpecError, StackSpec, qualified

CAPACITY_BLOCK_TYPES: frozenset[str] = frozenset(
    {"p4d.24xlarge", "p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge", "p6-b200.48xlarge"}
)
"""Types of the instance catalog that Capacity Blocks offer (read 2026-11-21): EC2 user guide,
"Capacity Blocks for ML" (p5, p5e, p5en, p4d, trn1, trn2:
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-capacity-blocks.html) and AWS PCS,
"Using Amazon EC2 Capacity Blocks for ML" (P6-B300, P6-B200, P5en, P5e, P5, P4d:
https://docs.aws.amazon.com/pcs/latest/userguide/capacity-blocks.html). Not p4de, g5 or g6e."""

CAPACITY_BLOCK_HOURLY_USD: dict[str, float] = {"p5.48xlarge": 39.33, "p4d.24xlarge": 14.75}
"""Capacity Block "effective instance hourly rate" in USD, US East, for blocks bought in late 2024
(see ``CAPACITY_BLOCK_PRICE_SOURCE``). Other types: unknown. The real fee is fixed at purchase."""

CAPACITY_BLOCK_PRICE_SOURCE = (
    "EC2 Capacity Blocks for ML pricing (https://aws.amazon.com/ec2/capacityblocks/pricing/), "
    "effective instance hourly rate, US East, rates in force until 2025-01-01 (late 2024); "
    "AWS updates them with supply and demand and charges the rate in force at purchase"
)

ODCR_BILLING_DOC = (
    "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-reservations-pricing-billing.html"
)

CapacityKind = Literal["on-demand", "odcr", "capacity-block"]
Placement = Literal["created", "existing", "none"]


@dataclass(frozen=True)
class CapacityPlan:
    """Where the GPU nodes get capacity and what it costs.

    Attributes:
        kind: ``on-demand``, ``odcr`` (On-Demand Capacity Reservation) or ``capacity-block``.
        reservation_id: the targeted ``cr-`` id; ``""`` on demand.
        market_type: the launch template's ``instance_market_options.market_type``:
            ``capacity-block`` for a block, else ``""`` (no market options).
        placement: ``created`` (the stack creates a cluster placement group), ``existing``
            (it launches into ``placement_group_name``) or ``none``.
        placement_group_name: the existing group's name; ``""`` otherwise.
        gpu_node_hourly_usd: USD per GPU node-hour for this kind (on-demand rate for on-demand
            and ODCR, the block's effective rate for a block); ``None`` when unknown.
        price_source: where ``gpu_node_hourly_usd`` comes from, with its date.
        billing: one sentence on how this capacity bills, for the plan.
    """

    kind: CapacityKind
    reservation_id: str
    market_type: str
    placement: Placement
    placement_group_name: str
    gpu_node_hourly_usd: float | None
    price_source: str
    billing: str


def check_capacity(spec: StackSpec, region: str) -> None:
    """Refuse capacity settings AWS would refuse at launch.

    Args:
        spec: the validated spec (field syntax already checked).
        region: the stack's AWS region (``aws:region``).

    Raises:
        SpecError: naming ``capacity_block``, ``capacity_reservation_az`` or
            ``placement_group_name``: a block without its id, on a type Capacity Blocks do not
            offer, or with a placement group; a reservation AZ without a reservation, outside the
            region, or not the stack's ``availability_zone`` (an instance cannot launch into a
            reservation of another AZ,
            https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-launch.html).
    """
    if spec.capacity_block and not spec.capacity_reservation_id:
        raise SpecError(
            qualified("capacity_block"),
            "true needs capacity_reservation_id: the cr- id of the Capacity Block "
            "(EC2 console, Capacity Reservations; or aws ec2 describe-capacity-reservations)",
        )
    if spec.capacity_block and spec.instance_type not in CAPACITY_BLOCK_TYPES:
        raise SpecError(
            qualified("capacity_block"),
            f"Capacity Blocks do not offer {spec.instance_type}; they offer "
            f"{', '.join(sorted(CAPACITY_BLOCK_TYPES))} (of the types this project knows). "
            "Use an On-Demand Capacity Reservation (capacity_block: false) for this type",
        )
    if spec.capacity_block and spec.placement_group_name:
        raise SpecError(
            qualified("placement_group_name"),
            "must be empty with a Capacity Block: its instances are already placed close together "
            "and AWS advises no cluster placement group with a block (ParallelCluster refuses the "
            "pair); leave placement_group_name empty",
        )
    az = spec.capacity_reservation_az
    if az and not spec.capacity_reservation_id:
        raise SpecError(
            qualified("capacity_reservation_az"),
            "is the AZ of the reservation in capacity_reservation_id, which is empty; set both or neither",
        )
    if az and not az.startswith(region):
        raise SpecError(
            qualified("capacity_reservation_az"),
            f"{az} is not in the stack's region {region}; a reservation is used only in its own AZ",
        )
    if az and spec.availability_zone and az != spec.availability_zone:
        raise SpecError(
            qualified("capacity_reservation_az"),
            f"the reservation is in {az} but availability_zone is {spec.availability_zone}: "
            "instances cannot launch into a reservation of another AZ; set availability_zone to "
            f"{az} (EFA and the placement group then follow)",
        )


def plan_capacity(spec: StackSpec, on_demand_hourly_usd: float | None, on_demand_source: str) -> CapacityPlan:
    """The capacity the GPU nodes use and how it bills (no checks: see :func:`check_capacity`).

    Args:
        spec: the validated spec.
        on_demand_hourly_usd: on-demand USD/hour of one GPU node (catalog), ``None`` if unknown.
        on_demand_source: source and date of that price.

    Returns:
        The :class:`CapacityPlan`.
    """
    if spec.capacity_block:
        placement: Placement = "none"
    elif spec.placement_group_name:
        placement = "existing"
    else:
        placement = "created" if spec.node_type.has_efa else "none"
    rid = spec.capacity_reservation_id
    if spec.capacity_block:
        return CapacityPlan(
            kind="capacity-block",
            reservation_id=rid,
            market_type="capacity-block",
            placement=placement,
            placement_group_name="",
            gpu_node_hourly_usd=CAPACITY_BLOCK_HOURLY_USD.get(spec.instance_type),
            price_source=CAPACITY_BLOCK_PRICE_SOURCE,
            billing=(
                f"Capacity Block {rid}: the reservation fee for every instance-hour of the block "
                "was charged up front at purchase, whether nodes run or not; running nodes add "
                "only the operating-system fee. EC2 starts terminating the nodes 30 minutes before "
                "the block ends (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-using.html)"
            ),
        )
    if rid:
        return CapacityPlan(
            kind="odcr",
            reservation_id=rid,
            market_type="",
            placement=placement,
            placement_group_name=spec.placement_group_name,
            gpu_node_hourly_usd=on_demand_hourly_usd,
            price_source=on_demand_source,
            billing=(
                f"On-Demand Capacity Reservation {rid}: every reserved instance bills at the "
                "on-demand rate for as long as the reservation is active, used or not; nodes "
                "running in it add nothing on top. pulumi destroy does not cancel it "
                f"(aws ec2 cancel-capacity-reservation) ({ODCR_BILLING_DOC})"
            ),
        )
    return CapacityPlan(
        kind="on-demand",
        reservation_id="",
        market_type="",
        placement=placement,
        placement_group_name=spec.placement_group_name,
        gpu_node_hourly_usd=on_demand_hourly_usd,
        price_source=on_demand_source,
        billing=(
            "On demand: each GPU node bills per second while it runs; no capacity is held, so a "
            "launch can fail with InsufficientInstanceCapacity (reserve it: capacity_reservation_id)"
        ),
    )
