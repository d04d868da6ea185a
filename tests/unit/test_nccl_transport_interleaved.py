"""``sglang-nccl-transport`` on a ``docker logs`` where other processes' output runs into NCCL's
lines: tqdm progress bars (weight loading, CUDA graph capture) end with ``\\r`` or nothing, so
the next process's NCCL line can start right after ``...it/s]`` on the same line. The rank key
(``host:pid``, NCCL ``src/debug.cc`` prefix) must still be the NCCL process's, or a
phantom rank without aws-ofi-nccl's provider line turns a healthy EFA server into ``unknown``.

The base log is the constructed aws-ofi-nccl 1.17 p5 log (``tests/fixtures/nccl/constructed/``,
eight ranks on EFA); the script runs as a subprocess, as on a node.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "userdata" / "sglang-nccl-transport"
EFA_LOG = ROOT / "tests" / "fixtures" / "nccl" / "constructed" / "efa-ofi-1.17-p5.log"

PREFIXES = [
    "Loading safetensors checkpoint shards: 100% Completed | 8/8 [00:03<00:00,  2.31it/s]",
    "Capturing batches (bs=512 avail_mem=10.2 GB): 100%|##########| 52/52 [00:05<00:00,  9.8it/s]",
    "[2026-11-21 09:50:01 TP3] Load weight end.",
    "\x1b[2K",
]


def run(text: str, *args: str) -> tuple[str, str]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--why", *args, "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return proc.stdout.strip(), proc.stderr


@pytest.mark.parametrize("prefix", PREFIXES)
def test_output_run_into_nccl_lines_keeps_the_ranks(prefix: str) -> None:
    lines = EFA_LOG.read_text().splitlines()
    nets = [i for i, s in enumerate(lines) if "NCCL INFO Using network" in s]
    assert len(nets) >= 8
    for i in nets[::2]:
        lines[i] = prefix + lines[i]
    word, why = run("\n".join(lines) + "\n", "--ranks", "8")
    assert word == "efa", why
    assert why.startswith("8 rank(s): 8 efa"), why


def test_the_base_log_is_efa() -> None:
    assert run(EFA_LOG.read_text(), "--ranks", "8")[0] == "efa"
