"""The endpoint keys (``endpoint``, ``certificate_arn``, ``endpoint_domain``,
``load_balancer_subnet_ids``, ``load_balancer_idle_timeout_secs``) and the pure endpoint plan.

Refusals go through ``python -m infra plan FILE`` (exit 2, one line naming the key), as a user
meets them; the pure functions are checked directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import main
from infra.planning.endpoint import (
    SSL_POLICY,
    endpoint_document,
    endpoint_plan,
    endpoint_warnings,
    gateway_keepalive_args,
    load_balancer_subnet_cidr,
    second_availability_zone,
)
from infra.spec import parse_config
from tests.conftest import base_config

CERT = "arn:aws:acm:us-east-1:210987654321:certificate/0f2b6c1e-3d4a-4b5c-8d7e-9f0a1b2c3d4e"
BYO = {"vpc_id": "vpc-0123456789abcdef0", "subnet_id": "subnet-0123456789abcdef0", "availability_zone": None}
LB_SUBNETS = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]


def https(**more: Any) -> dict[str, Any]:
    return base_config(**{"endpoint": "https", "certificate_arn": CERT, **more})


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("unknown endpoint", base_config(endpoint="tls"), "sglang-cluster:endpoint"),
    ("https without a certificate", base_config(endpoint="https"), "sglang-cluster:certificate_arn"),
    (
        "certificate that is not an ACM ARN",
        https(certificate_arn="arn:aws:iam::210987654321:server-certificate/llm"),
        "sglang-cluster:certificate_arn",
    ),
    (
        "certificate id not a UUID",
        https(certificate_arn="arn:aws:acm:us-east-1:210987654321:certificate/llm-example"),
        "sglang-cluster:certificate_arn",
    ),
    (
        "certificate of another region",
        https(certificate_arn=CERT.replace("us-east-1", "eu-west-1")),
        "sglang-cluster:certificate_arn",
    ),
    ("certificate with endpoint http", base_config(certificate_arn=CERT), "sglang-cluster:certificate_arn"),
    (
        "domain with endpoint http",
        base_config(endpoint_domain="llm.example.com"),
        "sglang-cluster:endpoint_domain",
    ),
    (
        "idle timeout with endpoint http",
        base_config(load_balancer_idle_timeout_secs=900),
        "sglang-cluster:load_balancer_idle_timeout_secs",
    ),
    (
        "domain with a scheme",
        https(endpoint_domain="https://llm.example.com"),
        "sglang-cluster:endpoint_domain",
    ),
    (
        "idle timeout above the ALB's 4000 s",
        https(load_balancer_idle_timeout_secs=4001),
        "sglang-cluster:load_balancer_idle_timeout_secs",
    ),
    (
        "public router behind the load balancer",
        https(router_public_ip=True),
        "sglang-cluster:router_public_ip",
    ),
    (
        "brought VPC without the load balancer's subnets",
        https(**BYO),
        "sglang-cluster:load_balancer_subnet_ids",
    ),
    (
        "brought VPC with one load balancer subnet (ALBs need two AZs)",
        https(**BYO, load_balancer_subnet_ids=LB_SUBNETS[:1]),
        "sglang-cluster:load_balancer_subnet_ids",
    ),
    (
        "private endpoint in a brought VPC without its subnets",
        base_config(endpoint="private", **BYO),
        "sglang-cluster:load_balancer_subnet_ids",
    ),
    (
        "load balancer subnets when the project creates the VPC",
        https(load_balancer_subnet_ids=LB_SUBNETS),
        "sglang-cluster:load_balancer_subnet_ids",
    ),
    (
        "router subnet behind the load balancer",
        https(**BYO, router_subnet_id="subnet-0ccccccccccccccc3", load_balancer_subnet_ids=LB_SUBNETS),
        "sglang-cluster:router_subnet_id",
    ),
    (
        "a subnet listed twice",
        https(**BYO, load_balancer_subnet_ids=[LB_SUBNETS[0], LB_SUBNETS[0]]),
        "sglang-cluster:load_balancer_subnet_ids",
    ),
]


def _write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.endpoint.yaml"
    qualified = {(k if ":" in k else f"sglang-cluster:{k}"): v for k, v in cfg.items()}
    path.write_text(yaml.safe_dump({"config": qualified}), encoding="utf-8")
    return path


@pytest.mark.parametrize(("what", "cfg", "key"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, cfg: dict[str, Any], key: str
) -> None:
    rc = main(["plan", str(_write(tmp_path, cfg))])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "", what
    assert err.startswith(f"error: invalid stack config: {key}:"), f"{what}: {err!r}"
    assert len(err.strip().splitlines()) == 1


def _spec(cfg: dict[str, Any]) -> Any:
    return parse_config({k: v for k, v in cfg.items() if k != "aws:region"})


def test_https_moves_the_router_private_by_default() -> None:
    assert _spec(base_config()).router_public_ip is True
    spec = _spec(https())
    assert spec.router_public_ip is False
    assert _spec(base_config(endpoint="private")).router_public_ip is False


def test_https_plan_listener_health_check_and_idle_timeout() -> None:
    ep = endpoint_plan(_spec(https()))
    assert (ep.load_balancer, ep.internal, ep.protocol, ep.port) == (True, False, "HTTPS", 443)
    assert ep.certificate_arn == CERT and ep.ssl_policy == SSL_POLICY
    assert ep.idle_timeout_secs == 1800  # the routers' --request-timeout-secs default
    assert ep.health_check is not None and ep.health_check.path == "/readiness"
    assert ep.health_check.timeout_secs < ep.health_check.interval_secs  # ALB rule
    assert ep.url("x.elb.amazonaws.com") == "https://x.elb.amazonaws.com"
    assert (
        endpoint_plan(_spec(https(endpoint_domain="llm.example.com"))).url("x") == "https://llm.example.com"
    )


def test_private_is_internal_http_80_without_a_certificate_https_with_one() -> None:
    plain = endpoint_plan(_spec(base_config(endpoint="private")))
    assert (plain.internal, plain.protocol, plain.port, plain.ssl_policy) == (True, "HTTP", 80, "")
    assert plain.url("internal-a.elb.amazonaws.com") == "http://internal-a.elb.amazonaws.com"
    tls = endpoint_plan(_spec(base_config(endpoint="private", certificate_arn=CERT)))
    assert (tls.internal, tls.protocol, tls.port) == (True, "HTTPS", 443)


def test_http_keeps_the_router_as_the_endpoint() -> None:
    ep = endpoint_plan(_spec(base_config()))
    assert not ep.load_balancer and ep.health_check is None
    assert ep.url("198.51.100.7") == "http://198.51.100.7:8000"
    doc = endpoint_document(_spec(base_config()), "")
    assert doc["kind"] == "http" and doc["load_balancer"] is None


def test_second_az_differs_from_the_nodes_az() -> None:
    assert second_availability_zone(["us-east-1c", "us-east-1a", "us-east-1b"], "us-east-1a") == "us-east-1b"
    assert second_availability_zone(["us-west-1b", "us-west-1c"], "us-west-1c") == "us-west-1b"
    with pytest.raises(ValueError, match="sglang-cluster:endpoint"):
        second_availability_zone(["us-east-1a"], "us-east-1a")


def test_second_subnet_is_the_third_24_of_the_vpc() -> None:
    assert load_balancer_subnet_cidr("10.0.0.0/16") == "10.0.2.0/24"
    assert load_balancer_subnet_cidr("172.31.8.0/22") == "172.31.10.0/24"


def test_warning_when_the_api_key_would_cross_the_internet_in_clear() -> None:
    public = _spec(base_config(client_cidrs=["10.0.0.0/8", "0.0.0.0/0", "2001:db8::/32"]))
    (line,) = endpoint_warnings(public, api_key_set=True)
    assert line.startswith("sglang-cluster:endpoint: http with router_api_key set")
    assert "(client_cidrs 0.0.0.0/0, 2001:db8::/32)" in line
    assert endpoint_warnings(public, api_key_set=False) == []
    # Clients inside private ranges only, a private router, or TLS: no clear text on the internet.
    inside = ["10.0.0.0/8", "100.64.0.0/10", "fd00::/8"]
    assert endpoint_warnings(_spec(base_config(client_cidrs=inside)), api_key_set=True) == []
    assert endpoint_warnings(_spec(base_config(router_public_ip=False)), api_key_set=True) == []
    tls = _spec(https(endpoint_domain="llm.example.com"))
    assert endpoint_warnings(tls, api_key_set=True) == []


def test_warnings_for_a_certificate_the_urls_cannot_use() -> None:
    (line,) = endpoint_warnings(_spec(https()), api_key_set=False)
    assert line.startswith("sglang-cluster:endpoint_domain:")
    placeholder = CERT.replace("210987654321", "123456789012")
    lines = endpoint_warnings(
        _spec(https(certificate_arn=placeholder, endpoint_domain="a.example.com")), False
    )
    assert [x.split(":", 2)[1] for x in lines] == ["certificate_arn"]


def test_smg_keeps_idle_connections_longer_than_the_load_balancer() -> None:
    spec = _spec(https(load_balancer_idle_timeout_secs=900))
    assert gateway_keepalive_args(spec, "smg") == ["--idle-connection-timeout-secs", "960"]
    assert gateway_keepalive_args(spec, "sglang-router") == []
    assert gateway_keepalive_args(_spec(base_config()), "smg") == []


def test_warning_for_ipv6_clients_of_an_ipv4_load_balancer() -> None:
    spec = _spec(https(endpoint_domain="llm.example.com", client_cidrs=["198.51.100.0/24", "2001:db8::/32"]))
    (line,) = endpoint_warnings(spec, api_key_set=False)
    assert line.startswith("sglang-cluster:client_cidrs: 2001:db8::/32 is IPv6")
    assert endpoint_warnings(_spec(base_config(client_cidrs=["2001:db8::/32"])), api_key_set=False) == []
