"""Keys of the router node and the router process in front of the servers."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from infra.planning import catalog
from infra.spec.base import Keys, SpecError, qualified

if TYPE_CHECKING:
    from infra.spec.stack import StackSpec


GatewayPolicy = Literal[
    "cache_aware", "round_robin", "random", "power_of_two", "least_load", "prefix_hash", "consistent_hashing"
]
"""Routing policies the spec offers: the four both gateways have, then smg 1.13.0's extras
(``--policy`` choices of each real parser, ``tools/dump_flags.py``)."""
SMG_ONLY_POLICIES = frozenset({"least_load", "prefix_hash", "consistent_hashing", "bucket"})
"""Policies sglang-router 0.3.2's parser refuses (its choices: random, round_robin,
cache_aware, power_of_two, manual); ``bucket`` is smg's prefill-only policy."""


class RouterKeys(Keys):
    """The gateway (router): which package, policy, health checks, ports, node, address."""

    gateway: Literal["smg", "sglang-router"] = Field(
        "smg",
        description="Gateway in front of the servers: smg (the maintained successor, `smg "
        "launch`, workers discovered from a file it rereads) or sglang-router (0.3.2, the last "
        "release, with the sglang-router-sync re-adder). backend slurm: sglang-router (the "
        "default there; its job registers workers through POST /workers).",
    )
    router_policy: GatewayPolicy = Field(
        "cache_aware",
        description="Routing policy (--policy): cache_aware, round_robin, random, power_of_two; "
        "with gateway smg also least_load, prefix_hash, consistent_hashing.",
    )
    router_prefill_policy: Literal["", "cache_aware", "round_robin", "random", "power_of_two",
                                   "least_load", "prefix_hash", "consistent_hashing", "bucket"] = Field(
        "",
        description="Policy for prefill workers in PD mode (--prefill-policy); empty = "
        "router_policy. bucket needs gateway smg.",
    )  # fmt: skip
    router_decode_policy: Literal["", "cache_aware", "round_robin", "random", "power_of_two",
                                  "least_load", "prefix_hash", "consistent_hashing"] = Field(
        "", description="Policy for decode workers in PD mode (--decode-policy); empty = router_policy."
    )  # fmt: skip
    router_cache_threshold: float = Field(
        0.3,
        ge=0,
        le=1,
        description="cache_aware: minimum prefix-match ratio to follow cache affinity "
        "(--cache-threshold, 0..1).",
    )
    router_balance_abs_threshold: int = Field(
        64,
        ge=0,
        description="cache_aware: load difference (requests) above which it balances instead "
        "(--balance-abs-threshold).",
    )
    router_balance_rel_threshold: float = Field(
        1.5,
        ge=1,
        description="cache_aware: load ratio above which it balances instead (--balance-rel-threshold).",
    )
    router_health_check_interval_secs: int = Field(
        10, ge=1, le=3600, description="Seconds between the gateway's worker health checks."
    )
    router_health_check_timeout_secs: int = Field(
        30,
        ge=1,
        le=600,
        description="Seconds one worker health check may take (SGLang's /health runs a "
        "one-token generation, up to 20 s on a busy server; the gateways default to 5).",
    )
    router_health_failure_threshold: int = Field(
        3, ge=1, le=100, description="Failed health checks in a row before a worker is taken out."
    )
    router_max_retries: int = Field(
        3,
        ge=1,
        le=20,
        description="Attempts per request on another worker after a failure (--retry-max-retries).",
    )
    router_prometheus_host: str = Field(
        "0.0.0.0",
        description="Address the gateway's Prometheus listener binds (its /metrics has no "
        "authentication: 127.0.0.1 keeps it on the router node).",
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

    @field_validator("router_prometheus_host")
    @classmethod
    def _ipv4(cls, v: str) -> str:
        try:
            ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError("must be an IPv4 address (0.0.0.0 or 127.0.0.1)") from None
        return v

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
        SpecError: ``router_prometheus_port`` equal to ``router_port``; an smg-only policy with
            ``gateway: sglang-router``; a health-check timeout longer than the start-up wait.
    """
    if spec.router_port == spec.router_prometheus_port:
        raise SpecError(qualified("router_prometheus_port"), "must differ from router_port")
    if spec.gateway == "sglang-router":
        for key in ("router_policy", "router_prefill_policy", "router_decode_policy"):
            value = getattr(spec, key)
            if value in SMG_ONLY_POLICIES:
                raise SpecError(
                    qualified(key),
                    f"{value} is a policy of smg only; sglang-router 0.3.2 offers cache_aware, "
                    "round_robin, random and power_of_two (or set gateway: smg)",
                )
    if spec.router_worker_startup_timeout_secs and (
        spec.router_worker_startup_timeout_secs < spec.router_health_check_timeout_secs
    ):
        raise SpecError(
            qualified("router_worker_startup_timeout_secs"),
            f"{spec.router_worker_startup_timeout_secs} s is shorter than one health check "
            f"(router_health_check_timeout_secs {spec.router_health_check_timeout_secs} s)",
        )
