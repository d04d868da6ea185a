"""Launch-template arguments for the GPU nodes' capacity (:mod:`infra.planning.capacity`).

pulumi-aws 7.x ``aws.ec2.LaunchTemplate`` arguments: ``capacity_reservation_specification``
(``capacity_reservation_target.capacity_reservation_id``; ``capacity_reservation_preference`` to
be omitted when a target is given) and ``instance_market_options.market_type``, which the EC2 API
takes as ``capacity-block`` for Capacity Blocks
(https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceMarketOptionsRequest.html).
"""

from __future__ import annotations

import pulumi_aws as aws

from infra.planning.capacity import CapacityPlan

_Target = aws.ec2.LaunchTemplateCapacityReservationSpecificationCapacityReservationTargetArgs


def reservation_target(
    cap: CapacityPlan,
) -> aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs | None:
    """The reservation the nodes launch into, or ``None`` on demand (EC2's default ``open``
    preference then still uses any matching open reservation of the account)."""
    if not cap.reservation_id:
        return None
    return aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs(
        capacity_reservation_target=_Target(capacity_reservation_id=cap.reservation_id)
    )


def market_options(cap: CapacityPlan) -> aws.ec2.LaunchTemplateInstanceMarketOptionsArgs | None:
    """``market_type = capacity-block`` for a Capacity Block, else ``None`` (on-demand market)."""
    if not cap.market_type:
        return None
    return aws.ec2.LaunchTemplateInstanceMarketOptionsArgs(market_type=cap.market_type)
