"""Keys of the GPU nodes: instance type and count, AMI, root volume, capacity (On-Demand
Capacity Reservation or Capacity Block) and placement group.

The capacity rules that need the catalog live in :mod:`infra.planning.capacity`.
"""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, field_validator

from infra.planning import catalog
from infra.spec.base import Keys, availability_zone, aws_id, no_newline


class ComputeKeys(Keys):
    """The GPU nodes and the capacity they launch into."""

    instance_type: str = Field(description="EC2 instance type of the GPU nodes (p5.48xlarge).")
    node_count: int = Field(
        0,
        ge=0,
        description="Expected number of GPU nodes; 0 = derived from the layout. When set, a "
        "layout that needs a different count is refused.",
    )
    ami_id: str = Field(
        "",
        description="AMI id for GPU nodes; empty = the latest Base OSS Nvidia Driver DLAMI "
        "(Ubuntu 22.04) resolved from its public SSM parameter at launch.",
    )
    root_volume_gib: int = Field(
        0,
        ge=0,
        description="Root gp3 volume size in GiB; 0 = sized for the image and the model cache.",
    )
    capacity_reservation_id: str = Field(
        "",
        description="Capacity Reservation the GPU nodes launch into: an On-Demand Capacity "
        "Reservation or a Capacity Block id (cr- and 17 hex digits); empty = on demand.",
    )
    capacity_block: bool = Field(
        False,
        description="capacity_reservation_id is a Capacity Block for ML (required for a block: EC2 "
        "refuses a block launch without it): launch with the capacity-block market type and no "
        "placement group (the block places nodes together).",
    )
    capacity_reservation_az: str = Field(
        "",
        description="AZ of the reservation, as EC2 shows it; when set it must equal "
        "availability_zone. Empty = not checked offline.",
    )
    placement_group_name: str = Field(
        "",
        description="Existing cluster placement group to launch the GPU nodes into (the one an "
        "On-Demand Capacity Reservation was created in); empty = the stack creates one for EFA types.",
    )

    @field_validator("ami_id")
    @classmethod
    def _single_line_ami(cls, v: str) -> str:
        return no_newline(v)

    @field_validator("ami_id", "capacity_reservation_id")
    @classmethod
    def _compute_ids(cls, v: str, info: ValidationInfo) -> str:
        return aws_id(v, "ami" if info.field_name == "ami_id" else "cr")

    @field_validator("capacity_reservation_az")
    @classmethod
    def _reservation_az(cls, v: str) -> str:
        return availability_zone(v)

    @field_validator("instance_type")
    @classmethod
    def _gpu_type(cls, v: str) -> str:
        t = catalog.CATALOG.get(v)
        if t is None or t.gpus == 0:
            raise ValueError(f"unknown GPU instance type; allowed: {', '.join(catalog.GPU_TYPES)}")
        return v

    @field_validator("placement_group_name")
    @classmethod
    def _placement_group_name(cls, v: str) -> str:
        # CreatePlacementGroup: "Up to 255 ASCII characters".
        if v and not re.fullmatch(r"[ -~]{1,255}", v):
            raise ValueError("must be 1 to 255 printable ASCII characters (an existing placement group)")
        return v

    @property
    def node_type(self) -> catalog.InstanceType:
        """Catalog entry of the GPU node type."""
        return catalog.lookup(self.instance_type)
