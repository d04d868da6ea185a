"""Keys of the network: VPC and subnets (created or brought), AZ, client CIDRs."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from pydantic import Field, ValidationInfo, field_validator

from infra.spec.base import Keys, SpecError, availability_zone, aws_id, qualified

if TYPE_CHECKING:
    from infra.spec.stack import StackSpec


class NetworkKeys(Keys):
    """Where the nodes live and who may reach the router."""

    availability_zone: str = Field(
        "",
        description="AZ of the subnet when the project creates the VPC (EFA does not cross AZs). "
        "Required unless subnet_id is given.",
    )
    vpc_cidr: str = Field("10.0.0.0/16", description="CIDR of the VPC the project creates.")
    vpc_id: str = Field("", description="Existing VPC id; empty = create a VPC.")
    subnet_id: str = Field(
        "", description="Existing private subnet for the GPU nodes (with a NAT route); needs vpc_id."
    )
    router_subnet_id: str = Field(
        "",
        description="Existing subnet for the router node; required with vpc_id when "
        "router_public_ip is true (a public subnet); empty = subnet_id for a private router.",
    )
    client_cidrs: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed to reach the router port (no default: the router is never "
        "opened to the internet unless you write 0.0.0.0/0 here).",
    )

    @field_validator("vpc_id", "subnet_id", "router_subnet_id")
    @classmethod
    def _network_ids(cls, v: str, info: ValidationInfo) -> str:
        return aws_id(v, "vpc" if info.field_name == "vpc_id" else "subnet")

    @field_validator("availability_zone")
    @classmethod
    def _subnet_az(cls, v: str) -> str:
        return availability_zone(v)

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, v: str) -> str:
        net = ipaddress.ip_network(v, strict=True)
        if net.version != 4 or not 16 <= net.prefixlen <= 22:
            raise ValueError("must be an IPv4 CIDR with a prefix from /16 to /22")
        return v

    @field_validator("client_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for c in v:
            try:
                ipaddress.ip_network(c, strict=True)
            except ValueError as e:
                raise ValueError(f"{c!r} is not a CIDR ({e})") from None
        return v

    @property
    def creates_vpc(self) -> bool:
        """True when the project creates the VPC and subnets."""
        return not self.vpc_id


def check(spec: StackSpec) -> None:
    """Rules between the network keys (and the router's public IP).

    Raises:
        SpecError: ``client_cidrs`` empty; ``subnet_id``/``vpc_id`` given without the other;
            ``router_subnet_id`` missing for a public router in a brought VPC;
            ``availability_zone`` missing when the project creates the VPC.
    """
    if not spec.client_cidrs:
        raise SpecError(
            qualified("client_cidrs"),
            'required: list the CIDRs allowed to reach the router (e.g. ["203.0.113.0/24"]); '
            "the project never opens the router to the internet by default",
        )
    if spec.vpc_id and not spec.subnet_id:
        raise SpecError(qualified("subnet_id"), "required when vpc_id is set (one subnet, one AZ)")
    if (spec.subnet_id or spec.router_subnet_id) and not spec.vpc_id:
        raise SpecError(qualified("vpc_id"), "required when subnet_id or router_subnet_id is set")
    if spec.vpc_id and spec.router_public_ip and not spec.router_subnet_id:
        # subnet_id is the GPU nodes' private subnet (NAT route only): a public IP there is
        # unreachable from clients.
        raise SpecError(
            qualified("router_subnet_id"),
            "required when vpc_id is set and router_public_ip is true: give a public subnet "
            "(route 0.0.0.0/0 to an internet gateway) in the same VPC, or set "
            "router_public_ip false to keep the router private in subnet_id",
        )
    if not spec.vpc_id and not spec.availability_zone:
        raise SpecError(
            qualified("availability_zone"),
            "required when the project creates the VPC: EFA and cluster placement groups stay in "
            "one AZ; pick one that offers "
            f"{spec.instance_type} (aws ec2 describe-instance-type-offerings "
            "--location-type availability-zone)",
        )
