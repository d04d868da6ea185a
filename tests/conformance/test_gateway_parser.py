"""Every stack's gateway argv, rendered for smg and for sglang-router, parses with that
package's own parser (exact option strings, no abbreviation): smg 1.13.0 in
``.tools/smg-venv``, sglang-router 0.3.2 in ``.tools/router-venv``. PD argv (prefill with a
bootstrap port, decode, per-pool policies) too.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from infra.cli import plan_document
from infra.mockrun import load_stack_config, run_program, stack_file
from infra.planning.gateway import DISCOVERY_FILE, Worker, gateway_argv
from infra.spec import parse_config
from tests.conformance.conftest import ROUTER_PYTHON, run_json
from tests.conformance.gateway_harness import SMG_PYTHON
from tests.conftest import STACKS, base_config

GATEWAYS = ("smg", "sglang-router")


@cache
def _plan(stack: str, gateway: str) -> dict[str, Any]:
    name, path = stack_file(stack)
    cfg = load_stack_config(path) | {"sglang-cluster:gateway": gateway}
    return plan_document(run_program(name, cfg))


def _gateway_argv(doc: dict[str, Any]) -> list[str]:
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    return router["processes"][0]["argv"]


def _parse(gateway: str, argvs: list[list[str]]) -> list[dict[str, Any]]:
    if gateway == "smg":
        assert all(a[:2] == ["smg", "launch"] for a in argvs)
        return run_json(SMG_PYTHON, "check_smg_argv.py", [a[2:] for a in argvs])
    assert all(a[:3] == ["python3", "-m", "sglang_router.launch_router"] for a in argvs)
    return run_json(ROUTER_PYTHON, "check_router_argv.py", [a[3:] for a in argvs])


@cache
def _parsed(gateway: str) -> dict[str, dict[str, Any]]:
    argvs = [_gateway_argv(_plan(s, gateway)) for s in STACKS]
    return dict(zip(STACKS, _parse(gateway, argvs), strict=True))


@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize("stack", STACKS)
def test_stack_gateway_argv_parses(stack: str, gateway: str) -> None:
    res = _parsed(gateway)[stack]
    assert res["ok"], res["error"]
    args = res["args"]
    doc = _plan(stack, gateway)
    if gateway == "smg":
        assert args["discovery_provider"] == "file" and args["discovery_file"] == DISCOVERY_FILE
        assert args["remove_unhealthy_workers"] is True
    elif doc.get("pd"):  # PD: --prefill URL BOOTSTRAP_PORT / --decode URL, no --worker-urls
        workers = doc["pd"]["workers"]
        assert args["pd_disaggregation"] is True and not args["worker_urls"]
        prefill = [[w["url"], w["bootstrap_port"]] for w in workers if w["role"] == "prefill"]
        assert [list(p) for p in args["prefill_urls"]] == prefill
        assert args["decode_urls"] == [w["url"] for w in workers if w["role"] == "decode"]
    else:
        assert args["worker_urls"] == list(doc["outputs"]["server_urls"].values())
    assert args["port"] == 8000 and args["prometheus_port"] == 29000
    assert args["policy"] == "cache_aware"
    assert args["health_check_timeout_secs"] >= 30  # SGLang's /health can take 20 s
    assert args["health_failure_threshold"] == 3 and args["health_check_interval_secs"] == 10
    assert args["retry_max_retries"] == 3 and args["cache_threshold"] == pytest.approx(0.3)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_pd_argv_parses_with_per_pool_policies(gateway: str) -> None:
    spec = parse_config(
        base_config(gateway=gateway, router_prefill_policy="round_robin", router_decode_policy="power_of_two")
    )
    workers = [
        Worker("http://10.0.1.10:30000", "prefill", 8998),
        Worker("http://10.0.1.11:30000", "decode"),
        Worker("http://10.0.1.12:30000", "decode"),
    ]
    (res,) = _parse(gateway, [gateway_argv(spec, workers, 1800)])
    assert res["ok"], res["error"]
    args = res["args"]
    assert args["pd_disaggregation"] is True
    assert args["prefill_policy"] == "round_robin" and args["decode_policy"] == "power_of_two"
    if gateway == "sglang-router":
        assert args["decode_urls"] == ["http://10.0.1.11:30000", "http://10.0.1.12:30000"]


def test_smg_extra_policies_parse_with_smg_only() -> None:
    spec = parse_config(base_config(router_policy="prefix_hash"))
    argv = gateway_argv(spec, [Worker("http://10.0.1.10:30000")], 1800)
    (res,) = _parse("smg", [argv])
    assert res["ok"] and res["args"]["policy"] == "prefix_hash"
    # The same policy on sglang-router's parser fails: that is why the spec refuses the pair.
    router = ["--worker-urls", "http://10.0.1.10:30000", "--policy", "prefix_hash"]
    (bad,) = run_json(ROUTER_PYTHON, "check_router_argv.py", [router])
    assert not bad["ok"]


def test_smg_parser_really_rejects() -> None:
    """The check is live: an abbreviation, an unknown flag and a bad choice all fail."""
    res = run_json(
        SMG_PYTHON,
        "check_smg_argv.py",
        [["--worker-startup-timeout", "7"], ["--bogus"], ["--policy", "fastest"], ["--port", "8000"]],
    )
    assert [r["ok"] for r in res] == [False, False, False, True]
