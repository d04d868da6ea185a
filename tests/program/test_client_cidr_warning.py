"""A router left behind the stack files' placeholder ``client_cidrs`` is flagged before it bills.

Every shipped stack file carries ``203.0.113.0/24`` (RFC 5737 TEST-NET-3, reserved for
documentation; no client calls from it). Deployed as is, the GPU nodes run and the router's
security group admits nobody. The offline plan (table and JSON ``warnings``) and the program's
``pulumi.log.warn`` (shown in ``pulumi up``'s preview) say so. Run under the SDK's mocks: the
mock engine receives the program's log calls as the real engine would.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from infra.mockrun import ENGINE_LOG, run_program
from infra.planning.reachability import documentation_cidrs
from tests.conftest import engine_config

ROOT = Path(__file__).resolve().parents[2]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}:{record.getMessage()}")


def _engine_warnings(**overrides: object) -> list[str]:
    handler = _Collect()
    ENGINE_LOG.addHandler(handler)
    try:
        run_program("cidr-test", engine_config(**overrides))
    finally:
        ENGINE_LOG.removeHandler(handler)
    return [m for m in handler.messages if "client_cidrs" in m]


def test_documentation_ranges() -> None:
    assert documentation_cidrs(["203.0.113.0/24", "198.51.100.7/32", "192.0.2.0/25"]) == [
        "203.0.113.0/24",
        "198.51.100.7/32",
        "192.0.2.0/25",
    ]
    # A wider range that merely contains a documentation range is a real one.
    assert documentation_cidrs(["203.0.0.0/16", "10.0.0.0/8", "2001:db8::/32"]) == []


def test_placeholder_cidr_warns_through_the_engine() -> None:
    (msg,) = _engine_warnings(client_cidrs=["203.0.113.0/24"])
    assert msg.startswith("WARNING:sglang-cluster:client_cidrs: 203.0.113.0/24 is a documentation range")


@pytest.mark.parametrize("cidrs", [["198.18.7.0/24"], ["203.0.113.0/24", "198.18.7.0/24"]])
def test_a_real_client_range_is_quiet(cidrs: list[str]) -> None:
    assert _engine_warnings(client_cidrs=cidrs) == []


def test_plan_table_shows_the_warning_for_the_shipped_prod_stack() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "infra", "plan", "prod-tp16"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "WARNING: sglang-cluster:client_cidrs: 203.0.113.0/24 is a documentation range" in out
