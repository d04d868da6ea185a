"""The shipped Python programs behave on the node's interpreter as the sources do on the test's.

GPU nodes (DLAMI Ubuntu 22.04) and the router (Ubuntu 22.04) run ``/usr/bin/python3``, CPython
3.10; the tests elsewhere run the repository's sources under the development Python (3.11+).
``test_minify_interpreters.py`` proves the shipped text compiles on 3.10; here it runs:

- ``sglang-nccl-transport``: the shipped text on a real CPython 3.10 prints the same word and
  exits with the same status as the source under the test's Python, for every real NCCL 2.28.9
  log of ``tests/fixtures/nccl`` and every constructed one (EFA, libfabric tcp, IB);
- ``sglang-router-sync``: the shipped text on 3.10 in front of the real sglang-router 0.3.2
  binary (``test_router_sync_live.py``'s dropped-worker scenario, unchanged);
- ``sglang-group`` on 3.10 is rehearsed in ``test_group_lifecycle.py``.

``sglang-model-download`` is left out on purpose: it runs inside the serving image (Python
3.11+, ``docker run --entrypoint python3``), never on the host's 3.10.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.planning.userdata import USERDATA_DIR, shipped_file
from tests.conformance import test_router_sync_live
from tests.conformance.test_minify_interpreters import _interpreter
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "nccl"
LOGS = sorted(FIXTURES.glob("nccl-*.log")) + sorted((FIXTURES / "constructed").glob("*.log"))


def _py310() -> str:
    py = _interpreter("3.10")
    if py is None:
        pytest.fail("needs a CPython 3.10 (python3.10 on PATH or under ~/.pyenv/versions/3.10.*)")
    return py


def _shipped(name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    path.write_text(shipped_file(name))
    return path


def test_fixtures_found() -> None:
    assert len(LOGS) >= 6, LOGS


def test_transport_classifier_as_shipped_on_python_3_10(tmp_path: Path) -> None:
    py310, prog = _py310(), _shipped("sglang-nccl-transport", tmp_path)
    words = set()
    for log in LOGS:
        for extra in ([], ["--why"]):
            src = subprocess.run(
                [sys.executable, str(USERDATA_DIR / "sglang-nccl-transport"), *extra, str(log)],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            node = subprocess.run(
                [py310, str(prog), *extra, str(log)], capture_output=True, text=True, check=False, timeout=60
            )
            assert (node.returncode, node.stdout) == (src.returncode, src.stdout), (
                log.name,
                extra,
                node.stderr,
            )
            assert "Traceback" not in node.stderr, node.stderr
            words.add(src.stdout.split()[0] if src.stdout.split() else "")
    assert {"efa", "socket"} <= words, words  # the fixtures really cover both verdicts


def test_router_sync_as_shipped_on_python_3_10(
    tmp_path: Path,
    procs: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    py310, prog = _py310(), _shipped("sglang-router-sync", tmp_path)
    monkeypatch.setattr(test_router_sync_live, "SYNC_COMMAND", [py310, str(prog)])
    test_router_sync_live.test_a_dropped_worker_gets_one_add_job_that_is_not_repeated_while_pending(
        tmp_path, procs
    )
    assert "Traceback" not in (tmp_path / "sync.log").read_text()
