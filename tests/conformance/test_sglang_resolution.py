"""Every rendered server argv of every stack survives SGLang 0.5.23's FULL argument resolution
(``ServerArgs.resolve_once()`` and ``check_server_args()``), not only its argparse parser, and
resolves to the layout the plan promises.

Inputs are real: the stacks' argvs as ``python -m infra plan`` renders them, the models' own
Hugging Face ``config.json`` files (``tests/fixtures/model-configs/``, sources in its README) in
a temporary model directory that replaces ``--model-path``, and SGLang's own code in
``.tools/sglang-resolve-venv``. The GPU is EMULATED: no GPU exists here, so
``resolve_server_args.py`` patches torch's device probes and puts a stand-in ``nvidia-smi`` on
PATH with the figures below (H100 80GB HBM3 for p5, L40S for g6e; nvidia-smi ``memory.total``
from the public logs :mod:`infra.planning.catalog` cites). ``sgl_kernel`` and ``torchvision``
are stand-in modules there (they cannot load without CUDA); the model directory holds only
``config.json`` (no tokenizer or weights: resolution does not read them for these models).
What this does not prove: that the kernels SGLang picks run, or the memory a real GPU has free.
``SGLANG_RESOLVE_PYTHON`` points at another interpreter with the same packages (development only).
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from infra.mockrun import load_stack_config, stack_file
from infra.planning.catalog import lookup
from infra.planning.memory import (
    MLA_MODEL_PREFIXES,
    effective_mem_fraction_static,
    gpu_total_mib,
    sglang_mem_fraction_static,
)
from infra.planning.serving import model_parsers
from infra.spec import StackSpec, parse_config
from tests.conformance.conftest import TOOLS, plan_json, run_json
from tests.conftest import ROOT, STACKS

RESOLVE_PYTHON = Path(
    os.environ.get("SGLANG_RESOLVE_PYTHON", str(TOOLS / "sglang-resolve-venv" / "bin" / "python"))
)
MODEL_CONFIGS = ROOT / "tests" / "fixtures" / "model-configs"

GPUS: dict[str, dict[str, Any]] = {
    # name as torch reports it, nvidia-smi memory.total (MiB), compute capability, SMs
    "H100": {"name": "NVIDIA H100 80GB HBM3", "capability": [9, 0], "sm_count": 132},
    "L40S": {"name": "NVIDIA L40S", "capability": [8, 9], "sm_count": 142},
}


def _gpu(instance_type: str) -> dict[str, Any]:
    node = lookup(instance_type)
    return {**GPUS[node.gpu_model], "total_mib": gpu_total_mib(node), "count": node.gpus}


@cache
def _model_root() -> Path:
    """A temp dir of ``<model id>/config.json`` copies (a model dir holds nothing else)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="sglang-models-"))
    for cfg in MODEL_CONFIGS.rglob("config.json"):
        dest = root / cfg.parent.relative_to(MODEL_CONFIGS)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(cfg, dest / "config.json")
    return root


def _model_dir(model: str) -> str:
    path = _model_root() / model
    assert (path / "config.json").is_file(), f"no config.json for {model} in {MODEL_CONFIGS}"
    return str(path)


def _spec(stack: str) -> StackSpec:
    return parse_config(load_stack_config(stack_file(stack)[1]))


def _server_cases(stack: str) -> list[tuple[str, list[str]]]:
    out = []
    for node in plan_json(stack)["nodes"]:
        if node["role"] == "server":
            out += [(node["name"], p["argv"][3:]) for p in node["processes"]]
    return out


def _resolve(instance_type: str, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not RESOLVE_PYTHON.exists():
        pytest.fail(f"{RESOLVE_PYTHON} is missing: run tools/setup-conformance.sh")
    return run_json(
        RESOLVE_PYTHON, "resolve_server_args.py", {"gpu": _gpu(instance_type), "cases": cases}, 900
    )


@cache
def _resolved_stacks() -> dict[str, list[dict[str, Any]]]:
    """One resolver process per GPU kind for every stack's argvs (importing SGLang takes seconds)."""
    by_type: dict[str, list[tuple[str, int]]] = {}
    cases: dict[str, list[dict[str, Any]]] = {}
    for stack in STACKS:
        spec = _spec(stack)
        for i, (_node, argv) in enumerate(_server_cases(stack)):
            by_type.setdefault(spec.instance_type, []).append((stack, i))
            cases.setdefault(spec.instance_type, []).append(
                {"argv": argv, "model_dir": _model_dir(spec.model)}
            )
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in STACKS}
    for instance_type, refs in by_type.items():
        results = _resolve(instance_type, cases[instance_type])
        for (stack, _i), res in zip(refs, results, strict=True):
            out[stack].append(res)
    return out


@pytest.mark.parametrize("stack", [s for s in STACKS if not _spec(s).pd_disaggregation])
def test_every_server_argv_resolves_to_the_planned_layout(stack: str) -> None:
    """Stacks of regular servers; prefill/decode pools: ``test_pd_conformance.py``."""
    spec = _spec(stack)
    argvs = _server_cases(stack)
    results = _resolved_stacks()[stack]
    assert argvs and len(results) == len(argvs)
    parsers = model_parsers(spec.model)
    for (node, argv), res in zip(argvs, results, strict=True):
        assert res["ok"], f"{stack}/{node}: SGLang refused {argv}: {res['error']}"
        r = res["resolved"]
        assert r["device"] == "cuda", f"{stack}/{node}: GPU emulation not in effect"
        assert (r["tp_size"], r["pp_size"], r["ep_size"]) == (spec.tp_size, spec.pp_size, spec.ep_size)
        assert r["attn_dp_size"] == (spec.dp_size if spec.attention_dp else 1)
        assert r["dp_size"] == spec.dp_size
        assert r["moe_a2a_backend"] == "none"
        # SGLang chose mem_fraction_static itself, and the memory-fit check used the same figure.
        assert "--mem-fraction-static" not in argv
        assert r["mem_fraction_static"] == effective_mem_fraction_static(spec, spec.node_type), (
            f"{stack}/{node}: SGLang chose {r['mem_fraction_static']}, infra/planning/memory.py "
            f"says {effective_mem_fraction_static(spec, spec.node_type)}"
        )
        assert r["enable_metrics"] is True
        assert r["reasoning_parser"] == parsers.get("--reasoning-parser")
        assert r["tool_call_parser"] == parsers.get("--tool-call-parser")
        assert r["served_model_name"] == spec.served_name
        if spec.pp_size > 1:
            # arg_groups/overrides.py: pipeline parallelism turns the overlap scheduler off.
            assert r["disable_overlap_schedule"] is True
        if "--nnodes" in argv:
            i = argv.index("--node-rank")
            assert r["nnodes"] == plan_json(stack)["layout"]["nodes_per_server"] > 1
            assert r["node_rank"] == int(argv[i + 1])
            assert r["dist_init_addr"] == argv[argv.index("--dist-init-addr") + 1]


def test_every_stack_is_covered_on_an_emulated_gpu() -> None:
    kinds = {lookup(_spec(s).instance_type).gpu_model for s in STACKS}
    assert kinds <= set(GPUS) and {"H100", "L40S"} <= kinds


# Layouts beyond the stacks: the mirror in infra/planning/memory.py against SGLang's own choice.
GRID: list[tuple[str, str, list[str], dict[str, Any]]] = [
    # (instance type, model, extra argv, mirror kwargs)
    ("p5.48xlarge", "Qwen/Qwen2.5-14B-Instruct", ["--tp-size", "1"], {"tp": 1, "pp": 1}),
    ("p5.48xlarge", "Qwen/Qwen2.5-14B-Instruct", ["--tp-size", "4"], {"tp": 4, "pp": 1}),
    (
        "p5.48xlarge",
        "Qwen/Qwen2.5-14B-Instruct",
        ["--tp-size", "8", "--attn-dp-size", "8"],
        {"tp": 8, "pp": 1, "attn_dp_size": 8},
    ),
    (
        "p5.48xlarge",
        "Qwen/Qwen2.5-72B-Instruct",
        ["--tp-size", "4", "--pp-size", "2"],
        {"tp": 4, "pp": 2},
    ),
    (
        "p5.48xlarge",
        "Qwen/Qwen2.5-14B-Instruct",
        ["--tp-size", "8", "--chunked-prefill-size", "16384"],
        {"tp": 8, "pp": 1, "chunked_prefill_size": 16384},
    ),
    (
        "p5.48xlarge",
        "Qwen/Qwen2.5-14B-Instruct",
        ["--tp-size", "8", "--chunked-prefill-size", "-1"],
        {"tp": 8, "pp": 1, "chunked_prefill_size": -1},
    ),
    (
        "p5.48xlarge",
        "Qwen/Qwen2.5-14B-Instruct",
        ["--tp-size", "8", "--max-running-requests", "64"],
        {"tp": 8, "pp": 1, "max_running_requests": 64},
    ),
    ("p5.48xlarge", "Qwen/Qwen2.5-14B-Instruct", ["--tp-size", "2", "--dp-size", "4"], {"tp": 2, "pp": 1}),
    ("p5.48xlarge", "deepseek-ai/DeepSeek-V2-Lite", ["--tp-size", "8"], {"tp": 8, "pp": 1}),
    ("p5.48xlarge", "Qwen/Qwen1.5-MoE-A2.7B", ["--tp-size", "4", "--ep-size", "4"], {"tp": 4, "pp": 1}),
    ("g6e.48xlarge", "Qwen/Qwen3-0.6B", ["--tp-size", "4"], {"tp": 4, "pp": 1}),
    # Prefill/decode pools (infra/planning/pd.py): SGLang reserves per role.
    (
        "p5.48xlarge",
        "Qwen/Qwen2.5-14B-Instruct",
        ["--tp-size", "4", "--disaggregation-mode", "prefill"],
        {"tp": 4, "pp": 1, "disaggregation_mode": "prefill"},
    ),
    (
        "p5.48xlarge",
        "Qwen/Qwen2.5-14B-Instruct",
        ["--tp-size", "8", "--attn-dp-size", "4", "--disaggregation-mode", "decode"],
        {"tp": 8, "pp": 1, "attn_dp_size": 4, "disaggregation_mode": "decode"},
    ),
    (
        "p5.48xlarge",
        "deepseek-ai/DeepSeek-V2-Lite",
        ["--tp-size", "8", "--max-running-requests", "2048", "--disaggregation-mode", "decode"],
        {"tp": 8, "pp": 1, "max_running_requests": 2048, "disaggregation_mode": "decode"},
    ),
    ("g6e.48xlarge", "Qwen/Qwen2.5-14B-Instruct", ["--tp-size", "2"], {"tp": 2, "pp": 1}),
]


def test_mirror_equals_sglangs_own_fraction_beyond_the_stacks() -> None:
    by_type: dict[str, list[int]] = {}
    for i, (itype, *_rest) in enumerate(GRID):
        by_type.setdefault(itype, []).append(i)
    for itype, idxs in by_type.items():
        cases = [
            {"argv": ["--model-path", "m", *GRID[i][2]], "model_dir": _model_dir(GRID[i][1])} for i in idxs
        ]
        for i, res in zip(idxs, _resolve(itype, cases), strict=True):
            _itype, model, extra, kwargs = GRID[i]
            assert res["ok"], f"{model} {extra}: {res['error']}"
            mirror = sglang_mem_fraction_static(
                gpu_total_mib(lookup(itype)), mla=model.startswith(MLA_MODEL_PREFIXES), **kwargs
            )
            assert res["resolved"]["mem_fraction_static"] == mirror, f"{itype} {model} {extra}"


def test_resolution_really_refuses_a_bad_layout() -> None:
    """The harness is not a rubber stamp: SGLang's own resolution and checks fail what it cannot run."""
    model = _model_dir("Qwen/Qwen2.5-14B-Instruct")
    multi = ["--nnodes", "2", "--node-rank", "0", "--dist-init-addr", "10.0.0.1:20000"]
    bad = [
        # (tp_size * pp_size) % nnodes != 0
        ["--model-path", "m", "--tp-size", "3", *multi],
        # ':' in the served model name (arg_groups/validation_hook.py)
        ["--model-path", "m", "--served-model-name", "qwen:14b"],
        # a tool-call parser name outside the real parser's choices
        ["--model-path", "m", "--tool-call-parser", "qwen2"],
    ]
    good = ["--model-path", "m", "--tp-size", "8"]
    results = _resolve("p5.48xlarge", [{"argv": a, "model_dir": model} for a in [*bad, good]])
    assert [r["ok"] for r in results] == [False, False, False, True], [r["error"] for r in results]
