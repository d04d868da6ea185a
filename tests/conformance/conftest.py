"""Paths of the real tools `tools/setup-conformance.sh` installs (run by `make test` and CI).

A missing tool fails the test that needs it with the command that installs it: these checks are
the point of the suite, so they are never skipped.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from infra.cli import plan_document
from infra.mockrun import load_stack_config, run_program, run_stack, stack_file
from tests.conftest import ROOT

TOOLS = ROOT / ".tools"
CLOUD_INIT_TREE = TOOLS / "cloud-init" / "usr" / "lib" / "python3" / "dist-packages"
CLOUD_INIT_PYTHON = TOOLS / "civenv" / "bin" / "python"
ROUTER_PYTHON = TOOLS / "router-venv" / "bin" / "python"
SGLANG_PYTHON = TOOLS / "sglang-venv" / "bin" / "python"
HERE = Path(__file__).resolve().parent


def require(path: Path) -> Path:
    """Fail (not skip) when a tool is missing."""
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools` (tools/setup-conformance.sh)")
    return path


@cache
def plan_json(stack: str) -> dict[str, Any]:
    """The plan document of a stack (as `python -m infra plan --format json` prints it)."""
    return plan_document(run_stack(stack))


@cache
def gateway_plan_json(stack: str, gateway: str) -> dict[str, Any]:
    """The plan document of a stack with its ``gateway`` key set (``smg`` or ``sglang-router``)."""
    name, path = stack_file(stack)
    return plan_document(run_program(name, load_stack_config(path) | {"sglang-cluster:gateway": gateway}))


def run_json(python: Path, script: str, payload: Any, timeout: int = 300) -> Any:
    """Run ``tests/conformance/<script>`` under ``python`` with JSON on stdin; JSON back."""
    proc = subprocess.run(
        [str(require(python)), str(HERE / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    """Processes a loopback test starts (router, stand-in workers); killed when it ends."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        p.kill()
        p.wait(timeout=10)
