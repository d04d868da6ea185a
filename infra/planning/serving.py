"""Serving defaults the project adds to every server argv: metrics, reasoning and tool-call
parsers. Pure code.

What SGLang 0.5.23 chooses by itself (``--mem-fraction-static``, chunked prefill, CUDA graph
sizes) is left unset; see :mod:`infra.planning.memory`. A flag the user writes in
``extra_server_args`` wins: the default for the same setting (same argparse dest, whatever the
alias) is then not rendered, so no flag appears twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.planning import flags

if TYPE_CHECKING:
    from infra.spec import StackSpec

METRICS_FLAG = "--enable-metrics"
"""Prometheus metrics on the server's own port (``/metrics``), as SGLang documents for
production (https://docs.sglang.io/docs/references/production_metrics, read 2026-11)."""

REASONING_FLAG = "--reasoning-parser"
TOOL_CALL_FLAG = "--tool-call-parser"

# (model id prefix, reasoning parser or "", tool-call parser or ""), first match wins. Names
# are choices of SGLang 0.5.23's parser (recorded in data/sglang_flags.json, checked by
# tests/unit/test_serving.py), as SGLang's docs pair them with model families
# (https://docs.sglang.io/docs/advanced_features/separate_reasoning.md and
# .../tool_parser.md, read 2026-11):
# - Qwen3 writes <think> blocks (reasoning "qwen3") and Hermes-style <tool_call> JSON, the
#   format of the Qwen2.5 detector, named "qwen" (SGLang 0.5.23 deprecates the older name
#   "qwen25" and rewrites it to "qwen", arg_groups/serving_hook.py); Qwen3-Coder has its own
#   XML calls ("qwen3_coder"); the Qwen3 "-Instruct-2507" models do not think.
# - Qwen2.5 Instruct: <tool_call> JSON ("qwen"), no reasoning.
# - DeepSeek-R1: <think> ("deepseek-r1") and DeepSeek-V3 tool-call tokens ("deepseekv3");
#   DeepSeek-V3: "deepseekv3".
# DeepSeek-V2 (-Lite) and Qwen1.5 have neither a reasoning format nor a tool-call format that
# SGLang parses: no parser is set for them.
MODEL_PARSERS: tuple[tuple[str, str, str], ...] = (
    ("Qwen/Qwen3-Coder", "", "qwen3_coder"),
    ("Qwen/Qwen3-", "qwen3", "qwen"),
    ("Qwen/Qwen2.5-Coder", "", ""),
    ("Qwen/Qwen2.5-", "", "qwen"),
    ("deepseek-ai/DeepSeek-R1", "deepseek-r1", "deepseekv3"),
    ("deepseek-ai/DeepSeek-V3-", "", "deepseekv3"),
)


def model_parsers(model: str) -> dict[str, str]:
    """The reasoning and tool-call parsers for a Hugging Face model id.

    Args:
        model: the spec's ``model`` (a hub id; a local path gets no parser).

    Returns:
        ``{"--reasoning-parser": name, "--tool-call-parser": name}``, only the ones the family has.
    """
    out: dict[str, str] = {}
    for prefix, reasoning, tool in MODEL_PARSERS:
        if not model.startswith(prefix):
            continue
        if prefix == "Qwen/Qwen3-" and "-Instruct-2507" in model:
            reasoning = ""
        if prefix == "Qwen/Qwen2.5-" and "Instruct" not in model:
            tool = ""
        if reasoning:
            out[REASONING_FLAG] = reasoning
        if tool:
            out[TOOL_CALL_FLAG] = tool
        break
    return out


def _user_dests(extra_server_args: list[str]) -> set[str]:
    dests = flags.server_dests()
    return {dests[a.split("=", 1)[0]] for a in extra_server_args if a.split("=", 1)[0] in dests}


def serving_default_args(spec: StackSpec) -> list[str]:
    """Flags the project adds to every server argv, minus those ``extra_server_args`` sets.

    Returns:
        e.g. ``["--enable-metrics", "--reasoning-parser", "qwen3", "--tool-call-parser",
        "qwen"]`` for Qwen/Qwen3-0.6B; a setting the user gives in ``extra_server_args``
        (under any alias) is left out here.
    """
    dests = flags.server_dests()
    taken = _user_dests(spec.extra_server_args)
    out: list[str] = []
    if dests[METRICS_FLAG] not in taken:
        out.append(METRICS_FLAG)
    for flag, value in model_parsers(spec.model).items():
        if dests[flag] not in taken:
            out += [flag, value]
    # Faster weight loading where the checkpoint and layout allow it (issue 10).
    from infra.planning.fastload import PREFETCH_FLAG, fast_load_args

    load = fast_load_args(spec)
    if PREFETCH_FLAG in load and dests[PREFETCH_FLAG] in taken:
        load.remove(PREFETCH_FLAG)
    return out + load
