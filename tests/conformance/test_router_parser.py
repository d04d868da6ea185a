"""Every rendered router argv parses with the real sglang-router 0.3.2 parser, exact flags."""

from __future__ import annotations

from functools import cache

import pytest

from tests.conformance.conftest import ROUTER_PYTHON, plan_json, run_json
from tests.conftest import STACKS


def _router_argvs(stack: str) -> list[list[str]]:
    doc = plan_json(stack)
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    return [p["argv"] for p in router["processes"] if "sglang_router.launch_router" in p["argv"]]


@cache
def _parsed_all() -> dict[str, dict]:
    argvs = [_router_argvs(s)[0][3:] for s in STACKS]
    return dict(zip(STACKS, run_json(ROUTER_PYTHON, "check_router_argv.py", argvs), strict=True))


@pytest.mark.parametrize("stack", STACKS)
def test_router_argv_parses(stack: str) -> None:
    argvs = _router_argvs(stack)
    assert all(a[:3] == ["python3", "-m", "sglang_router.launch_router"] for a in argvs)
    res = _parsed_all()[stack]
    assert res["ok"], res["error"]
    doc = plan_json(stack)
    assert res["args"]["worker_urls"] == list(doc["outputs"]["server_urls"].values())
    assert res["args"]["policy"] == "cache_aware" or stack not in ("prod-tp16", "tp8-dp2")
    assert res["args"]["port"] == 8000
    assert res["args"]["health_check_timeout_secs"] >= 30  # SGLang's /health can take 20 s


def test_parser_really_rejects() -> None:
    """The check is live: an abbreviation, an unknown flag and a bad choice all fail."""
    res = run_json(
        ROUTER_PYTHON,
        "check_router_argv.py",
        [["--worker-startup-timeout", "7"], ["--bogus"], ["--policy", "least_load"], ["--port", "8000"]],
    )
    assert [r["ok"] for r in res] == [False, False, False, True]
