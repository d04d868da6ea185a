"""The spec model: types, defaults, per-key rules; errors name the key."""

from __future__ import annotations

import pytest

from infra.spec import OWNED_SERVER_FLAGS, SpecError, parse_config
from tests.conftest import base_config


def test_valid_base_parses_with_defaults() -> None:
    spec = parse_config(base_config())
    assert spec.tp_size == 16 and spec.pp_size == 1 and spec.replicas == 1
    assert spec.served_name == "Qwen/Qwen2.5-72B-Instruct"
    assert spec.router_policy == "cache_aware" and spec.router_port == 8000
    assert spec.creates_vpc


def test_engine_strings_are_decoded() -> None:
    """At runtime Pulumi hands every value as a string (arrays as JSON)."""
    cfg = {
        "sglang-cluster:model": "Qwen/Qwen3-0.6B",
        "sglang-cluster:instance_type": "g6e.xlarge",
        "sglang-cluster:tp_size": "1",
        "sglang-cluster:attention_dp": "false",
        "sglang-cluster:mem_fraction_static": "0.8",
        "sglang-cluster:client_cidrs": '["10.0.0.0/8"]',
        "sglang-cluster:availability_zone": "us-east-1a",
        "aws:region": "us-east-1",
    }
    spec = parse_config(cfg)
    assert spec.tp_size == 1 and spec.mem_fraction_static == 0.8
    assert spec.client_cidrs == ["10.0.0.0/8"] and spec.attention_dp is False


def test_other_namespaces_are_ignored() -> None:
    spec = parse_config(base_config(**{"aws:profile": "x"}))
    assert spec.model


def test_served_model_name_overrides() -> None:
    assert parse_config(base_config(served_model_name="qwen72")).served_name == "qwen72"


@pytest.mark.parametrize(
    "flag", sorted(OWNED_SERVER_FLAGS & {"--tp-size", "--port", "--dist-init-addr", "--node-rank"})
)
def test_owned_flags_refused_in_extra_args(flag: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_config(base_config(extra_server_args=[flag, "1"]))
    assert e.value.key == "sglang-cluster:extra_server_args"
    assert flag in e.value.message


def test_owned_flag_in_equals_form_refused() -> None:
    with pytest.raises(SpecError, match="--tp-size"):
        parse_config(base_config(extra_server_args=["--tp-size=8"]))


@pytest.mark.parametrize("abbrev", ["--tp", "--enable-ep", "--context-len"])
def test_abbreviations_refused(abbrev: str) -> None:
    with pytest.raises(SpecError) as e:
        parse_config(base_config(extra_server_args=[abbrev, "2"]))
    assert "full flag names" in e.value.message or "set by the project" in e.value.message


def test_real_extra_flag_accepted() -> None:
    spec = parse_config(base_config(extra_server_args=["--context-length", "32768"]))
    assert spec.extra_server_args == ["--context-length", "32768"]


def test_unknown_model_needs_shape() -> None:
    with pytest.raises(SpecError) as e:
        parse_config(base_config(model="acme/secret-70b")).shape()
    assert e.value.key == "sglang-cluster:model_params_billion"
    shape = parse_config(
        base_config(model="acme/secret-70b", model_params_billion=70, model_dtype="bfloat16")
    ).shape()
    assert shape.weight_bytes == 70e9 * 2


def test_byo_network_needs_subnet_and_no_az() -> None:
    spec = parse_config(
        base_config(
            availability_zone=None,
            vpc_id="vpc-0a1b2c3d4e5f60718",
            subnet_id="subnet-0a1b2c3d",
            router_subnet_id="subnet-0a1b2c3e",
        )
    )
    assert not spec.creates_vpc


def test_tags_and_env_maps() -> None:
    spec = parse_config(base_config(tags=["team=ml", "cost=1"], server_env=["HF_HUB_OFFLINE=1"]))
    assert spec.tag_map == {"team": "ml", "cost": "1"}
    assert spec.env_map == {"HF_HUB_OFFLINE": "1"}
