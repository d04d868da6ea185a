"""infra/planning/gateway.py: argv per gateway, PD mode, the discovery manifest, refusals."""

from __future__ import annotations

import json

import pytest

from infra.planning.gateway import (
    DISCOVERY_FILE,
    Worker,
    check_gateway,
    discovery_manifest,
    discovery_manifest_text,
    gateway_argv,
    gateway_processes,
)
from infra.spec import SpecError, parse_config
from tests.conftest import base_config

ONE = [Worker("http://10.0.1.10:30000")]
TWO = [Worker("http://10.0.1.10:30000"), Worker("http://10.0.1.11:30000")]
PD = [
    Worker("http://10.0.1.10:30000", "prefill", 8998),
    Worker("http://10.0.1.11:30000", "prefill", 8999),
    Worker("http://10.0.1.12:30000", "decode"),
]


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_smg_is_the_default_and_reads_its_workers_from_the_manifest() -> None:
    spec = parse_config(base_config())
    assert spec.gateway == "smg"
    argv = gateway_argv(spec, TWO, 1980)
    assert argv[:2] == ["smg", "launch"]
    assert (
        _value(argv, "--discovery-provider") == "file" and _value(argv, "--discovery-file") == DISCOVERY_FILE
    )
    assert "--remove-unhealthy-workers" in argv and "--worker-urls" not in argv
    assert not any(a.startswith("http://") for a in argv)
    assert _value(argv, "--worker-startup-timeout-secs") == "1980"
    assert gateway_processes(spec, argv) == [argv]


def test_sglang_router_lists_workers_and_keeps_the_sync() -> None:
    spec = parse_config(base_config(gateway="sglang-router"))
    argv = gateway_argv(spec, TWO, 1980)
    assert argv[:3] == ["python3", "-m", "sglang_router.launch_router"]
    i = argv.index("--worker-urls")
    assert argv[i + 1 : i + 3] == [w.url for w in TWO] and argv[i + 3].startswith("--")
    procs = gateway_processes(spec, argv)
    assert len(procs) == 2 and procs[1][1] == "/usr/local/bin/sglang-router-sync"


@pytest.mark.parametrize("gateway", ["smg", "sglang-router"])
def test_router_mode_keys_are_rendered(gateway: str) -> None:
    spec = parse_config(
        base_config(
            gateway=gateway,
            router_policy="round_robin",
            router_cache_threshold="0.5",
            router_balance_abs_threshold=32,
            router_balance_rel_threshold="1.2",
            router_health_check_interval_secs=15,
            router_health_check_timeout_secs=45,
            router_health_failure_threshold=5,
            router_max_retries=2,
            router_prometheus_host="127.0.0.1",
            router_prometheus_port=29100,
        )
    )
    argv = gateway_argv(spec, TWO, 1980)
    expect = {
        "--policy": "round_robin",
        "--cache-threshold": "0.5",
        "--balance-abs-threshold": "32",
        "--balance-rel-threshold": "1.2",
        "--health-check-interval-secs": "15",
        "--health-check-timeout-secs": "45",
        "--health-failure-threshold": "5",
        "--retry-max-retries": "2",
        "--prometheus-host": "127.0.0.1",
        "--prometheus-port": "29100",
    }
    assert {f: _value(argv, f) for f in expect} == expect
    assert "--api-key" not in argv  # appended on the node from the secret, never in the plan


def test_health_check_defaults_cover_sglangs_health() -> None:
    """SGLang's /health runs a one-token generation (up to 20 s); the gateways' 5 s default
    would mark busy workers down."""
    argv = gateway_argv(parse_config(base_config()), ONE, 1980)
    assert int(_value(argv, "--health-check-timeout-secs")) >= 30


def test_pd_sglang_router_prefill_bootstrap_ports_and_decode() -> None:
    spec = parse_config(base_config(gateway="sglang-router", router_decode_policy="round_robin"))
    argv = gateway_argv(spec, PD, 1980)
    assert "--pd-disaggregation" in argv and "--worker-urls" not in argv
    i = argv.index("--pd-disaggregation")
    assert argv[i + 1 : i + 9] == [
        "--prefill", "http://10.0.1.10:30000", "8998",
        "--prefill", "http://10.0.1.11:30000", "8999",
        "--decode", "http://10.0.1.12:30000",
    ]  # fmt: skip
    assert _value(argv, "--decode-policy") == "round_robin" and "--prefill-policy" not in argv


def test_pd_smg_manifest_carries_roles_and_bootstrap_ports() -> None:
    spec = parse_config(base_config(router_prefill_policy="cache_aware"))
    argv = gateway_argv(spec, PD, 1980)
    assert "--pd-disaggregation" in argv and _value(argv, "--prefill-policy") == "cache_aware"
    assert discovery_manifest(PD) == {
        "version": 1,
        "workers": [
            {"url": "http://10.0.1.10:30000", "worker_type": "prefill", "bootstrap_port": 8998},
            {"url": "http://10.0.1.11:30000", "worker_type": "prefill", "bootstrap_port": 8999},
            {"url": "http://10.0.1.12:30000", "worker_type": "decode"},
        ],
    }
    assert json.loads(discovery_manifest_text(PD)) == discovery_manifest(PD)
    assert discovery_manifest_text(PD).endswith("}\n")


@pytest.mark.parametrize(
    ("overrides", "workers", "key"),
    [
        ({"router_policy": "power_of_two"}, ONE, "sglang-cluster:router_policy"),
        ({"router_decode_policy": "power_of_two"}, PD, "sglang-cluster:router_decode_policy"),
        ({"router_prefill_policy": "power_of_two"}, PD[:1] + PD[2:], "sglang-cluster:router_prefill_policy"),
        ({"router_prefill_policy": "round_robin"}, TWO, "sglang-cluster:router_prefill_policy"),
        ({}, PD[:2], ""),
    ],
)
def test_refusals_the_gateways_would_make(overrides: dict, workers: list[Worker], key: str) -> None:
    spec = parse_config(base_config(**overrides))
    with pytest.raises(SpecError) as e:
        check_gateway(spec, workers)
    assert e.value.key == key


def test_what_the_gateways_accept_passes() -> None:
    check_gateway(parse_config(base_config(router_policy="power_of_two")), TWO)
    check_gateway(parse_config(base_config(router_prefill_policy="power_of_two")), PD)
    # A plain --policy power_of_two in PD mode with one decode worker: both gateways start.
    check_gateway(parse_config(base_config(router_policy="power_of_two")), PD)
