"""The benchmark argv of ``python -m infra bench`` against SGLang 0.5.23's own benchmark source
(``.tools/sglang-venv``, installed by tools/setup-conformance.sh).

The module cannot be imported here (its import chain needs transformers, datasets and
torchvision, which the parser-only venv leaves out), so its parser is read from the source:
every option string of every ``add_argument`` call in ``cli_main``, the literal ``choices`` of
``--dataset-name``, the keys of ``ASYNC_REQUEST_FUNCS`` (``--backend``) and the key set of the
result line it writes. Every flag ``infra bench`` renders must be an exact option string (the
module's parser allows abbreviations, so a prefix would pass at run time and hide a typo)."""

from __future__ import annotations

import ast
import json
from functools import cache

from infra.ops.bench import BENCH_MODULE, TYPES, bench_argv, matrix
from tests.conformance.conftest import TOOLS, require
from tests.conftest import ROOT

SITE = TOOLS / "sglang-venv" / "lib" / "python3.11" / "site-packages"


@cache
def _source() -> ast.Module:
    module = require(SITE / "sglang" / "benchmark" / "serving.py")
    return ast.parse(module.read_text(encoding="utf-8"))


def _cli_main() -> ast.FunctionDef:
    return next(n for n in _source().body if isinstance(n, ast.FunctionDef) and n.name == "cli_main")


def _options() -> dict[str, ast.Call]:
    out: dict[str, ast.Call] = {}
    for node in ast.walk(_cli_main()):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            for a in node.args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("-"):
                    out[a.value] = node
    return out


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_module_path_of_the_pinned_version() -> None:
    """0.5.23 moved the benchmark to sglang.benchmark.serving; the old path re-exports it."""
    old = require(SITE / "sglang" / "bench_serving.py").read_text(encoding="utf-8")
    assert "from sglang.benchmark.serving import cli_main" in old
    assert BENCH_MODULE == "sglang.benchmark.serving"
    assert len(_options()) > 80


def test_every_rendered_flag_is_an_exact_option_string() -> None:
    options = _options()
    runs = matrix(list(TYPES), sharegpt="/fsx/datasets/ShareGPT_V3_unfiltered_cleaned_split.json")
    runs += matrix(["throughput"])  # random-ids without a ShareGPT file
    datasets = _kw(options["--dataset-name"], "choices")
    assert isinstance(datasets, ast.List)
    dataset_choices = {e.value for e in datasets.elts if isinstance(e, ast.Constant)}
    for r in runs:
        argv = bench_argv(
            r, "http://127.0.0.1:8000", "Qwen/Qwen3-0.6B", "/fsx/models/Qwen/Qwen3-0.6B", "o.jsonl"
        )
        for a in argv:
            if a.startswith("--"):
                assert a in options, f"{a} is not an option of {BENCH_MODULE} 0.5.23"
        assert argv[argv.index("--dataset-name") + 1] in dataset_choices


def test_backend_and_range_ratio_default() -> None:
    funcs = next(
        n.value
        for n in _source().body
        if isinstance(n, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(t, ast.Name) and t.id == "ASYNC_REQUEST_FUNCS"
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        )
    )
    assert isinstance(funcs, ast.Dict)
    assert "sglang" in {k.value for k in funcs.keys if isinstance(k, ast.Constant)}
    # The seed's pitfall: 0.0 by default, so lengths are drawn from 1..N unless we pass 1.
    default = _kw(_options()["--random-range-ratio"], "default")
    assert isinstance(default, ast.Constant) and default.value == 0.0


def test_recorded_fixture_has_the_result_keys_of_the_module() -> None:
    result = next(
        n.value
        for n in ast.walk(_source())
        if isinstance(n, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "result" for t in n.targets)
        and isinstance(n.value, ast.Dict)
    )
    keys = [k.value for k in result.keys if isinstance(k, ast.Constant)]
    for f in sorted((ROOT / "tests" / "fixtures" / "bench").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            assert list(json.loads(line)) == keys, f
