"""The fast weight-load flags against SGLang 0.5.23 itself (issue 10 part 2).

- Every stack's server argv already goes through the real parser
  (``test_sglang_parser.py``); here the two flags' meaning is checked with it too.
- ``--startup-weight-load-mode overlap`` is refused by SGLang at model load (a failed server
  start) outside its matrix. That check needs a GPU and the model, so instead the matrix is
  read from the installed package's source (``startup_weight_load.py``, parsed with ``ast``;
  importing it needs transformers, which the parser venv does not carry) and the project's
  rule (:func:`infra.planning.fastload.overlap_allowed`) is held against it.
"""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

import pytest

from infra.planning.fastload import (
    MODEL_ARCHITECTURES,
    OVERLAP_ARCHITECTURES,
    OVERLAP_TP_SIZES,
    fast_load_args,
    overlap_allowed,
)
from infra.spec import parse_config
from tests.conformance.conftest import SGLANG_PYTHON, TOOLS, plan_json, require, run_json
from tests.conftest import ROOT, STACKS, base_config

MODEL_CONFIGS = ROOT / "tests/fixtures/model-configs"


@cache
def startup_source() -> ast.Module:
    (path,) = require(TOOLS / "sglang-venv").glob(
        "lib/python3*/site-packages/sglang/srt/model_executor/model_runner_components/startup_weight_load.py"
    )
    return ast.parse(Path(path).read_text(encoding="utf-8"))


def _assigned(name: str) -> ast.expr:
    for node in startup_source().body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return node.value
    raise AssertionError(f"{name} not found in SGLang's startup_weight_load.py")


def test_architecture_allowlist_is_sglangs() -> None:
    value = _assigned("_SUPPORTED_ARCHITECTURES")
    assert isinstance(value, ast.Call) and isinstance(value.args[0], ast.Set)
    theirs = {ast.literal_eval(e) for e in value.args[0].elts}
    assert theirs == OVERLAP_ARCHITECTURES


def test_layout_rules_are_sglangs() -> None:
    """The rules the planner mirrors are in SGLang's refusal list, word for word."""
    src = ast.unparse(startup_source())
    assert f"options.tp_size not in {OVERLAP_TP_SIZES}" in src
    for rule in (
        "options.pp_size != 1",
        "options.num_dp_ranks != 1",
        "options.ep_size != 1",
        "not options.cuda_graph_enabled",
        "load_config.load_format not in (LoadFormat.AUTO, LoadFormat.SAFETENSORS)",
        "model_config.quantization is not None",
    ):
        assert rule in src, rule
    dtypes = _assigned("_SUPPORTED_DTYPES")
    assert {ast.unparse(e) for e in dtypes.args[0].elts} == {"torch.float16", "torch.bfloat16"}  # type: ignore[attr-defined]  # a frozenset({...}) call


@pytest.mark.parametrize("model", sorted(MODEL_ARCHITECTURES))
def test_model_architectures_are_the_configs(model: str) -> None:
    cfg = json.loads((MODEL_CONFIGS / model / "config.json").read_text())
    assert (cfg["architectures"][0], cfg["torch_dtype"]) == MODEL_ARCHITECTURES[model]
    assert "quantization_config" not in cfg


@pytest.mark.parametrize(
    ("overrides", "allowed"),
    [
        ({"model": "Qwen/Qwen3-0.6B", "tp_size": 1, "instance_type": "g6e.xlarge"}, True),
        ({"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 2, "replicas": 8}, True),
        ({}, False),  # TP16
        ({"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 4, "replicas": 4}, False),
        ({"model": "Qwen/Qwen1.5-MoE-A2.7B", "tp_size": 2, "replicas": 8}, False),  # MoE
        (
            {
                "model": "Qwen/Qwen2.5-14B-Instruct",
                "tp_size": 2,
                "replicas": 8,
                "extra_server_args": ["--enable-torch-compile"],
            },
            False,
        ),
        ({"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 1, "dp_size": 2, "replicas": 8}, False),
    ],
    ids=["qwen3-tp1", "qwen25-tp2", "tp16", "tp4", "moe", "user-flags", "dp2"],
)
def test_overlap_only_inside_sglangs_matrix(overrides: dict[str, object], allowed: bool) -> None:
    spec = parse_config(base_config(**overrides))
    assert overlap_allowed(spec) is allowed
    assert ("overlap" in fast_load_args(spec)) is allowed


def test_the_real_parser_reads_both_flags() -> None:
    (res,) = run_json(
        SGLANG_PYTHON,
        "check_server_argv.py",
        [
            [
                "--model-path",
                "m",
                "--weight-loader-prefetch-checkpoints",
                "--startup-weight-load-mode",
                "overlap",
            ]
        ],
    )
    assert res["ok"], res["error"]
    assert res["args"]["weight_loader_prefetch_checkpoints"] is True
    assert res["args"]["startup_weight_load_mode"] == "overlap"


@pytest.mark.parametrize("stack", STACKS)
def test_stacks_on_fsx_prefetch(stack: str) -> None:
    doc = plan_json(stack)
    for node in doc["nodes"]:
        for p in node["processes"] if node["role"] == "server" else []:
            assert "--weight-loader-prefetch-checkpoints" in p["argv"]  # every stack has the store
            overlap = "--startup-weight-load-mode" in p["argv"]
            assert overlap == (stack in ("dev", "tp2-dp8")), stack
