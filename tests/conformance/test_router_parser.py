"""sglang-router 0.3.2's parser check is live. Every stack's argv, for both gateways, is parsed
in ``test_gateway_parser.py``."""

from __future__ import annotations

from tests.conformance.conftest import ROUTER_PYTHON, run_json


def test_parser_really_rejects() -> None:
    """The check is live: an abbreviation, an unknown flag and a bad choice all fail."""
    res = run_json(
        ROUTER_PYTHON,
        "check_router_argv.py",
        [["--worker-startup-timeout", "7"], ["--bogus"], ["--policy", "least_load"], ["--port", "8000"]],
    )
    assert [r["ok"] for r in res] == [False, False, False, True]
