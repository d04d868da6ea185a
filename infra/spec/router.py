"""Keys of the router node and the router process in front of the servers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from infra.planning import catalog
from infra.spec.base import Keys, SpecError, qualified

if TYPE_CHECKING:
    from infra.spec.stack import StackSpec


class RouterKeys(Keys):
    """The router: policy, ports, node type, start-up wait, public address."""

    router_policy: Literal["cache_aware", "round_robin", "random", "power_of_two"] = Field(
        "cache_aware", description="Router load-balancing policy (--policy)."
    )
    router_port: int = Field(8000, ge=1024, le=65535, description="Router HTTP port.")
    router_prometheus_port: int = Field(
        29000, ge=1024, le=65535, description="Router Prometheus metrics port."
    )
    router_instance_type: str = Field("c7i.xlarge", description="EC2 instance type of the CPU router node.")
    router_worker_startup_timeout_secs: int = Field(
        0,
        ge=0,
        description="Seconds the router waits for workers to become healthy; 0 = sized from the "
        "model's weight size (at least 1800 s).",
    )
    router_public_ip: bool = Field(
        True,
        description="Give the router a public IPv4, an Elastic IP that survives replacements (in "
        "the public subnet of a created VPC, or router_subnet_id).",
    )

    @field_validator("router_instance_type")
    @classmethod
    def _cpu_type(cls, v: str) -> str:
        if v not in catalog.CATALOG:
            allowed = ", ".join(catalog.CPU_TYPES + catalog.GPU_TYPES)
            raise ValueError(f"unknown instance type; allowed: {allowed}")
        return v

    @property
    def router_type(self) -> catalog.InstanceType:
        """Catalog entry of the router node type."""
        return catalog.lookup(self.router_instance_type)


def check(spec: StackSpec) -> None:
    """Rules between the router keys.

    Raises:
        SpecError: ``router_prometheus_port`` equal to ``router_port``.
    """
    if spec.router_port == spec.router_prometheus_port:
        raise SpecError(qualified("router_prometheus_port"), "must differ from router_port")
