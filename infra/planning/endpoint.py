"""The client endpoint as data: which load balancer, listener, health check and URLs a stack
gets, the plan's ``endpoint`` object and its warnings. Pure code: no Pulumi import.

``endpoint: http`` keeps today's shape (clients call the router node). ``https`` and
``private`` put an Application Load Balancer (ALB) in front of the router, which moves to the
private subnet with no public IPv4:

- ``https``: internet-facing ALB in two public subnets, one HTTPS listener on 443 with the ACM
  certificate; no plain-HTTP listener at all (a redirect from port 80 would still receive the
  client's first request, API key included, in clear).
- ``private``: internal ALB (private addresses only) for clients inside the VPC, HTTPS on 443
  when ``certificate_arn`` is set, else HTTP on 80.

Facts used here, each checked 2026-11:

- An ALB needs subnets in at least two Availability Zones (CreateLoadBalancer ``Subnets``,
  https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html).
- ``idle_timeout.timeout_seconds``: 1-4000 s, default 60
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_LoadBalancerAttribute.html).
  It bounds the time a connection carries no byte: a streamed response keeps it alive while
  tokens flow, a non-streamed one sends nothing until it is complete.
- smg 1.13.0 (``smg launch --help``) closes a keep-alive connection idle for
  ``--idle-connection-timeout-secs`` (default 90 s, measured on loopback: closed after 89.5 s)
  and says to keep it above the idle timeout of a load balancer in front of it, else a request
  can be sent on a connection the gateway is closing (the ALB answers 502). sglang-router 0.3.2
  has no such flag and kept an idle connection open for the 150 s measured.
  :func:`gateway_keepalive_args` gives the flag the gateway argv needs behind an ALB.
- Both routers answer ``GET /readiness`` without the API key: 503 ``{"status":"not ready",
  "reason":"insufficient healthy workers"}`` until a worker is healthy, then 200
  (sglang-router 0.3.2 and smg 1.13.0 run on loopback, 2026-11-21); ``/health`` and
  ``/liveness`` answer 200 whatever the workers. The target group checks ``/readiness``.
- When every target of a target group is unhealthy, an ALB routes to all of them ("fail
  open", https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html):
  while the model loads, clients get the router's own 503, not the ALB's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from infra.spec import StackSpec, qualified
from infra.spec.endpoint import acm_account

SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
"""TLS policy of the HTTPS listener: TLS 1.3 and 1.2 with forward-secret ciphers and
post-quantum key exchange, the console's default for new HTTPS listeners; the API's own default,
``ELBSecurityPolicy-2016-08``, still accepts TLS 1.0
(https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html,
read 2026-11)."""

DOCUMENTATION_ACCOUNT = "123456789012"
"""The account id AWS's documentation uses in example ARNs; the shipped stack files too."""

READINESS_PATH = "/readiness"
"""Router path whose status says whether at least one worker is healthy (see module doc)."""

GATEWAY_IDLE_MARGIN_SECS = 60
"""How much longer than the load balancer's idle timeout the gateway keeps an idle keep-alive
connection, so the load balancer always closes first."""


@dataclass(frozen=True)
class HealthCheck:
    """Target-group health check of the router (seconds; thresholds in consecutive checks).

    ALB limits: interval 5-300 s, timeout 2-120 s and below the interval, thresholds 2-10
    (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html).
    """

    path: str = READINESS_PATH
    matcher: str = "200"
    interval_secs: int = 15
    timeout_secs: int = 5
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3


@dataclass(frozen=True)
class EndpointPlan:
    """What the endpoint of a stack is made of.

    Attributes:
        kind: ``http``, ``https`` or ``private``.
        load_balancer: True when an ALB is created (``https``, ``private``).
        internal: True for an internal ALB (``private``).
        protocol: ``HTTPS`` or ``HTTP``: what clients speak to the endpoint.
        port: the port clients call (443, 80, or the router port for ``http``).
        certificate_arn: the listener's certificate (``""`` without TLS).
        ssl_policy: the listener's TLS policy (``""`` without TLS).
        idle_timeout_secs: the ALB's idle timeout (0 without an ALB).
        domain: the DNS name the URLs use (``""``: the load balancer's or router's address).
        router_port: the port the ALB forwards to (the router's).
        health_check: the target group's health check (None without an ALB).
    """

    kind: str
    load_balancer: bool
    internal: bool
    protocol: str
    port: int
    certificate_arn: str
    ssl_policy: str
    idle_timeout_secs: int
    domain: str
    router_port: int
    health_check: HealthCheck | None

    @property
    def scheme(self) -> str:
        """``https`` or ``http``: the scheme of the client URLs."""
        return self.protocol.lower()

    def url(self, host: str) -> str:
        """The base URL clients use, given the load balancer's (or router's) address.

        ``endpoint_domain`` replaces ``host`` when set; the default port of the scheme is left
        out (``https://llm.example.com``).
        """
        name = self.domain or host
        default = {"https": 443, "http": 80}[self.scheme]
        return f"{self.scheme}://{name}" if self.port == default else f"{self.scheme}://{name}:{self.port}"


def endpoint_plan(spec: StackSpec) -> EndpointPlan:
    """The endpoint of ``spec`` (validated: ``certificate_arn`` is there for ``https``)."""
    if spec.endpoint == "http":
        return EndpointPlan(
            kind="http",
            load_balancer=False,
            internal=not spec.router_public_ip,
            protocol="HTTP",
            port=spec.router_port,
            certificate_arn="",
            ssl_policy="",
            idle_timeout_secs=0,
            domain="",
            router_port=spec.router_port,
            health_check=None,
        )
    tls = bool(spec.certificate_arn)
    return EndpointPlan(
        kind=spec.endpoint,
        load_balancer=True,
        internal=spec.endpoint == "private",
        protocol="HTTPS" if tls else "HTTP",
        port=443 if tls else 80,
        certificate_arn=spec.certificate_arn,
        ssl_policy=SSL_POLICY if tls else "",
        idle_timeout_secs=spec.load_balancer_idle_timeout_secs,
        domain=spec.endpoint_domain,
        router_port=spec.router_port,
        health_check=HealthCheck(),
    )


def second_availability_zone(names: Sequence[str], first: str) -> str:
    """The AZ of the load balancer's second subnet when the project creates the VPC: the first
    of ``names`` (sorted) other than ``first``.

    Args:
        names: the region's available Availability Zones (zone type ``availability-zone``).
        first: the stack's ``availability_zone`` (GPU nodes, router, first subnet).

    Raises:
        ValueError: when the region offers no other AZ (an ALB cannot be created then).
    """
    others = sorted(n for n in names if n != first)
    if not others:
        raise ValueError(
            f"{qualified('endpoint')}: the region offers no Availability Zone besides {first}; "
            "an Application Load Balancer needs two"
        )
    return others[0]


def load_balancer_subnet_cidr(vpc_cidr: str) -> str:
    """CIDR of the load balancer's second subnet in a created VPC: the third /24 of the VPC
    (the public and private subnets take the first two). ALB subnets need at least a /27 with
    8 free addresses (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#subnets-load-balancer)."""
    subnets = ipaddress.ip_network(vpc_cidr).subnets(new_prefix=24)
    next(subnets)
    next(subnets)
    return str(next(subnets))


def gateway_keepalive_args(spec: StackSpec, gateway: str = "smg") -> list[str]:
    """Extra gateway flags behind a load balancer: smg's idle keep-alive bound above the ALB's.

    Args:
        spec: the stack spec.
        gateway: ``smg`` or ``sglang-router``.

    Returns:
        ``["--idle-connection-timeout-secs", N]`` for smg behind an ALB
        (N = ALB idle timeout + :data:`GATEWAY_IDLE_MARGIN_SECS`); ``[]`` otherwise
        (sglang-router 0.3.2 has no such flag and does not close idle connections itself).
    """
    if spec.endpoint == "http" or gateway != "smg":
        return []
    return [
        "--idle-connection-timeout-secs",
        str(spec.load_balancer_idle_timeout_secs + GATEWAY_IDLE_MARGIN_SECS),
    ]


NON_INTERNET_V4: tuple[ipaddress.IPv4Network, ...] = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # RFC 6598 shared (carrier-grade NAT) space
        "127.0.0.0/8",
        "169.254.0.0/16",
        "198.18.0.0/15",  # RFC 2544 benchmarking
    )
)
NON_INTERNET_V6: tuple[ipaddress.IPv6Network, ...] = tuple(
    ipaddress.IPv6Network(n)
    for n in ("fc00::/7", "fe80::/10", "::1/128")  # RFC 4193 ULA, link-local
)
"""Ranges never routed on the internet: a client CIDR wholly inside one is not an internet
client. (``ipaddress``'s ``is_private`` is not used: it calls ``0.0.0.0/0`` private.)"""


def _is_internet(cidr: str) -> bool:
    net = ipaddress.ip_network(cidr, strict=False)
    if isinstance(net, ipaddress.IPv4Network):
        return not any(net.subnet_of(n) for n in NON_INTERNET_V4)
    return not any(net.subnet_of(n) for n in NON_INTERNET_V6)


def endpoint_warnings(spec: StackSpec, api_key_set: bool) -> list[str]:
    """Plain warnings about the endpoint, shown by the plan and ``pulumi up``'s preview.

    Args:
        spec: the stack spec.
        api_key_set: whether the stack sets ``router_api_key``.

    Returns:
        one line per problem: the API key sent in clear to a public router over plain HTTP;
        IPv6 client CIDRs in front of an IPv4-only load balancer; a certificate ARN of AWS's
        documentation account; an HTTPS endpoint whose URLs use the load balancer's own DNS
        name, which no ACM certificate covers (clients then fail the TLS name check).
    """
    out: list[str] = []
    public = [c for c in spec.client_cidrs if _is_internet(c)]
    if spec.endpoint == "http" and spec.router_public_ip and api_key_set and public:
        out.append(
            f"{qualified('endpoint')}: http with router_api_key set: clients send the API key "
            f"(and every prompt) in clear over the internet to the router's public address "
            f"(client_cidrs {', '.join(public)}). Set endpoint https with certificate_arn, or "
            "endpoint private for clients inside the VPC"
        )
    v6 = [c for c in spec.client_cidrs if ipaddress.ip_network(c, strict=False).version == 6]
    if spec.endpoint != "http" and v6:
        out.append(
            f"{qualified('client_cidrs')}: {', '.join(v6)} is IPv6, but the load balancer listens on "
            "IPv4 only (ip_address_type ipv4): clients from these ranges cannot reach it"
        )
    if acm_account(spec.certificate_arn) == DOCUMENTATION_ACCOUNT:
        out.append(
            f"{qualified('certificate_arn')}: account {DOCUMENTATION_ACCOUNT} is AWS's documentation "
            "placeholder: creating the HTTPS listener would fail (CertificateNotFound) after the "
            "load balancer exists. Set the ARN of an issued certificate of your account "
            "(aws acm list-certificates --certificate-statuses ISSUED)"
        )
    if spec.endpoint != "http" and spec.certificate_arn and not spec.endpoint_domain:
        out.append(
            f"{qualified('endpoint_domain')}: empty, so the https:// URLs use the load balancer's "
            "DNS name (*.elb.amazonaws.com), which your certificate does not name: clients fail "
            "TLS verification. Set endpoint_domain to a name the certificate covers and point a "
            "CNAME (or Route 53 alias) at the load_balancer_dns_name output"
        )
    return out


def load_balancer_subnets(spec: StackSpec) -> str:
    """Where the load balancer's subnets come from, in words (``""`` without one)."""
    if spec.endpoint == "http":
        return ""
    if spec.creates_vpc:
        return (
            f"the created public subnet ({spec.availability_zone}) and a second subnet "
            f"{load_balancer_subnet_cidr(spec.vpc_cidr)} in another available AZ of the region"
        )
    return ", ".join(spec.load_balancer_subnet_ids)


def endpoint_document(spec: StackSpec, subnets: str) -> dict[str, object]:
    """The plan JSON's ``endpoint`` object.

    Args:
        spec: the stack spec.
        subnets: where the load balancer's subnets come from, in words.
    """
    ep = endpoint_plan(spec)
    doc: dict[str, object] = {
        "kind": ep.kind,
        "load_balancer": (
            {
                "type": "application",
                "scheme": "internal" if ep.internal else "internet-facing",
                "idle_timeout_secs": ep.idle_timeout_secs,
                "subnets": subnets,
                "listener": {
                    "protocol": ep.protocol,
                    "port": ep.port,
                    "certificate_arn": ep.certificate_arn or None,
                    "ssl_policy": ep.ssl_policy or None,
                },
                "target": {"port": ep.router_port, "protocol": "HTTP"},
                "health_check": asdict(ep.health_check) if ep.health_check else None,
            }
            if ep.load_balancer
            else None
        ),
        "protocol": ep.protocol,
        "port": ep.port,
        "domain": ep.domain or None,
        "router_public_ip": spec.router_public_ip,
    }
    return doc
