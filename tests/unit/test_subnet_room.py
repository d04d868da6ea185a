"""A created VPC's /24 private subnet addresses at most 251 GPU nodes (AWS reserves 5 of every
subnet's addresses: https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.planning.cluster import check_private_subnet_room
from infra.planning.layout import plan_layout
from infra.spec import SpecError, parse_config
from tests.conftest import base_config


def _check(**overrides: Any) -> None:
    spec = parse_config(base_config(**overrides))
    check_private_subnet_room(spec, plan_layout(spec))


def test_251_nodes_fit_with_a_public_router() -> None:
    _check(tp_size=8, replicas=251)


def test_a_private_router_takes_one_address() -> None:
    _check(tp_size=8, replicas=250, router_public_ip=False)
    with pytest.raises(SpecError) as e:
        _check(tp_size=8, replicas=251, router_public_ip=False)
    assert e.value.key == "sglang-cluster:replicas"
    assert "252 addresses" in e.value.message and "251 usable" in e.value.message


def test_256_nodes_are_refused_naming_replicas() -> None:
    with pytest.raises(SpecError) as e:
        _check(tp_size=16, replicas=128)
    assert e.value.key == "sglang-cluster:replicas" and "vpc_id and subnet_id" in e.value.message


def test_a_brought_subnet_is_not_checked_offline() -> None:
    _check(
        tp_size=16,
        replicas=128,
        vpc_id="vpc-0a1b2c3d4e5f60718",
        subnet_id="subnet-0a1b2c3d4e5f60718",
        router_public_ip=False,
        availability_zone=None,
    )
