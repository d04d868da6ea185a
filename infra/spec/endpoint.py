"""Keys of the client endpoint: the router's own address (``http``), or an Application Load
Balancer in front of it (``https`` on the internet, ``private`` inside the VPC).

With ``https`` or ``private`` the router moves to the private subnet with no public IPv4 and no
Elastic IP: ``router_public_ip`` defaults to false then, and true is refused.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from infra.spec.base import Keys, SpecError, aws_id, qualified

if TYPE_CHECKING:
    from infra.spec.stack import StackSpec

EndpointKind = Literal["http", "https", "private"]

ACM_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):acm:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"certificate/(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
"""An ACM certificate ARN: ``arn:aws:acm:REGION:ACCOUNT:certificate/UUID``
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscertificatemanager.html#awscertificatemanager-resources-for-iam-policies,
read 2026-11)."""

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

ALB_IDLE_TIMEOUT_RANGE = (1, 4000)
"""Seconds an ALB accepts for ``idle_timeout.timeout_seconds`` (default 60): Elastic Load
Balancing API reference, ``LoadBalancerAttribute``
(https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_LoadBalancerAttribute.html,
read 2026-11)."""

DEFAULT_IDLE_TIMEOUT_SECS = 1800
"""The load balancer's idle timeout: the router's own ``--request-timeout-secs`` default (1800 s
in sglang-router 0.3.2 and smg 1.13.0, ``--help``), so the load balancer never cuts a request
the router would still serve: a non-streamed completion sends no byte until it is done."""


class EndpointKeys(Keys):
    """How clients reach the router: directly, or through an Application Load Balancer."""

    endpoint: EndpointKind = Field(
        "http",
        description="http: clients call the router node itself (router_public_ip decides public or "
        "private); https: an internet-facing Application Load Balancer with an HTTPS listener on "
        "certificate_arn in front of a private router (no public IP); private: an internal load "
        "balancer for clients inside the VPC (HTTPS when certificate_arn is set, else HTTP).",
    )
    certificate_arn: str = Field(
        "",
        description="ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/UUID) in the stack's "
        "region for the HTTPS listener; required with endpoint https, optional with private.",
    )
    endpoint_domain: str = Field(
        "",
        description="DNS name clients use, covered by the certificate (point a CNAME or alias at the "
        "load_balancer_dns_name output); empty = URLs use the load balancer's own DNS name.",
    )
    load_balancer_subnet_ids: list[str] = Field(
        default_factory=list,
        description="With vpc_id and endpoint https or private: subnets of the load balancer in at "
        "least two AZs (public for https), one in the AZ of subnet_id. Empty when the project "
        "creates the VPC (it adds a second subnet in another AZ).",
    )
    load_balancer_idle_timeout_secs: int = Field(
        DEFAULT_IDLE_TIMEOUT_SECS,
        ge=ALB_IDLE_TIMEOUT_RANGE[0],
        le=ALB_IDLE_TIMEOUT_RANGE[1],
        description="Seconds a connection through the load balancer may carry no byte before it is "
        "closed (ALB: 1-4000); default 1800, the router's request timeout, so long non-streamed "
        "completions are not cut.",
    )

    @model_validator(mode="before")
    @classmethod
    def _endpoint_router_private(cls, data: Any) -> Any:
        """Behind a load balancer the router is private unless the file says otherwise (then
        :func:`check` refuses it, naming ``router_public_ip``)."""
        if isinstance(data, dict) and data.get("endpoint") in ("https", "private"):
            if "router_public_ip" not in data:
                return {**data, "router_public_ip": False}
        return data

    @field_validator("certificate_arn")
    @classmethod
    def _acm_arn(cls, v: str) -> str:
        if v and not ACM_ARN.match(v):
            raise ValueError(
                "must be an ACM certificate ARN: arn:aws:acm:REGION:ACCOUNT:certificate/UUID "
                "(aws acm list-certificates --region REGION); IAM server certificates are not taken"
            )
        return v

    @field_validator("endpoint_domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        labels = v.split(".")
        if v and (len(v) > 253 or len(labels) < 2 or not all(_LABEL.match(p) for p in labels)):
            raise ValueError("must be a lowercase DNS name such as llm.example.com (no scheme, no port)")
        return v

    @field_validator("load_balancer_subnet_ids")
    @classmethod
    def _lb_subnets(cls, v: list[str]) -> list[str]:
        for s in v:
            aws_id(s, "subnet")
        if len(set(v)) != len(v):
            raise ValueError("lists a subnet twice")
        return v


def acm_account(arn: str) -> str:
    """The account part of an ACM certificate ARN; ``""`` when ``arn`` is not one."""
    m = ACM_ARN.match(arn)
    return m.group("account") if m else ""


def check(spec: StackSpec) -> None:
    """Rules between the endpoint keys and the network and router keys.

    An Application Load Balancer needs subnets in at least two Availability Zones
    (CreateLoadBalancer, ``Subnets``: "[Application Load Balancers] You must specify subnets
    from at least two Availability Zones",
    https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html,
    read 2026-11).

    Raises:
        SpecError: ``certificate_arn`` missing with https or given with http; ``endpoint_domain``,
            ``load_balancer_subnet_ids`` or ``load_balancer_idle_timeout_secs`` given with http;
            ``router_public_ip`` true or ``router_subnet_id`` set behind a load balancer;
            ``load_balancer_subnet_ids`` with fewer than two subnets in a brought VPC, or given
            when the project creates the VPC.
    """
    kind = spec.endpoint
    if kind == "http":
        for key in ("certificate_arn", "endpoint_domain", "load_balancer_subnet_ids"):
            if getattr(spec, key):
                raise SpecError(
                    qualified(key), "is used only with endpoint https or private (endpoint is http)"
                )
        if "load_balancer_idle_timeout_secs" in spec.model_fields_set:
            raise SpecError(
                qualified("load_balancer_idle_timeout_secs"),
                "is used only with endpoint https or private (endpoint is http)",
            )
        return
    if kind == "https" and not spec.certificate_arn:
        raise SpecError(
            qualified("certificate_arn"),
            "required with endpoint https: the ARN of an issued ACM certificate in the stack's "
            "region for the name clients use (aws acm request-certificate --domain-name ...)",
        )
    if spec.router_public_ip:
        raise SpecError(
            qualified("router_public_ip"),
            f"must be false with endpoint {kind}: the router sits in the private subnet behind "
            "the load balancer (leave the key out)",
        )
    if spec.router_subnet_id:
        raise SpecError(
            qualified("router_subnet_id"),
            f"is not used with endpoint {kind}: the router runs in subnet_id behind the load "
            "balancer; give the load balancer's subnets in load_balancer_subnet_ids",
        )
    if spec.creates_vpc and spec.load_balancer_subnet_ids:
        raise SpecError(
            qualified("load_balancer_subnet_ids"),
            "is used only with vpc_id: the project creates the VPC and the load balancer's "
            "second subnet in another AZ itself",
        )
    if not spec.creates_vpc and len(spec.load_balancer_subnet_ids) < 2:
        where = "public subnets (route 0.0.0.0/0 to an internet gateway)" if kind == "https" else "subnets"
        raise SpecError(
            qualified("load_balancer_subnet_ids"),
            f"required with vpc_id and endpoint {kind}: at least two {where} of the VPC in "
            "different Availability Zones, one in the AZ of subnet_id (an Application Load "
            "Balancer needs two AZs)",
        )


def check_region(spec: StackSpec, region: str) -> None:
    """The certificate must be in the stack's region: ACM certificates are regional and a load
    balancer uses one from its own region only
    (https://docs.aws.amazon.com/acm/latest/userguide/acm-regions.html, read 2026-11).

    Raises:
        SpecError: ``certificate_arn`` of another region or partition.
    """
    arn = spec.certificate_arn
    if not arn:
        return
    m = ACM_ARN.match(arn)
    if m and (m.group("region") != region or m.group("partition") != "aws"):
        raise SpecError(
            qualified("certificate_arn"),
            f"is in {m.group('region')} ({m.group('partition')} partition), not in the stack's "
            f"region {region} (aws:region): a load balancer takes certificates of its own region "
            f"only; request or import one in {region}",
        )
