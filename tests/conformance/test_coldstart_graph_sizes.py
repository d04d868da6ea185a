"""The cold-start model counts the CUDA graphs SGLang captures at start-up (``server_start``):
its mirror of SGLang 0.5.23's batch-size lists is checked against SGLang's own generators in
``.tools/sglang-resolve-venv`` (real package code; no GPU is needed to build the lists)."""

from __future__ import annotations

from infra.planning.coldstart import _decode_graph_sizes
from infra.planning.memory import _prefill_graph_sizes
from tests.conformance.conftest import TOOLS, run_json

PYTHON = TOOLS / "sglang-resolve-venv" / "bin" / "python"
DECODE = [8, 32, 48, 160, 256, 300, 512]
PREFILL = [2048, 4096, 8192, 16384]


def test_graph_counts_match_sglang() -> None:
    got = run_json(PYTHON, "cuda_graph_sizes.py", {"decode_max_bs": DECODE, "prefill_max_bs": PREFILL})
    assert {int(k): v for k, v in got["decode"].items()} == {b: _decode_graph_sizes(b) for b in DECODE}
    assert {int(k): v for k, v in got["prefill"].items()} == {
        b: len(_prefill_graph_sizes(b)) for b in PREFILL
    }
