"""Serving defaults on every server argv: --enable-metrics, model-family parsers, and
--mem-fraction-static left to SGLang unless the stack sets it."""

from __future__ import annotations

import pytest

from infra.planning import flags
from infra.planning.argv import server_argv
from infra.planning.layout import plan_layout
from infra.planning.serving import MODEL_PARSERS, model_parsers, serving_default_args
from infra.spec import parse_config
from tests.conftest import base_config


def _argv(**overrides: object) -> list[str]:
    spec = parse_config(base_config(**overrides))
    layout = plan_layout(spec)
    return server_argv(spec, layout.servers[0], 0, "10.0.0.5")


def _qwen3(**overrides: object) -> list[str]:
    return _argv(model="Qwen/Qwen3-0.6B", instance_type="g6e.xlarge", tp_size=1, **overrides)


def test_every_parser_name_is_a_choice_of_the_real_parser() -> None:
    reasoning = flags.server_choices("--reasoning-parser")
    tool = flags.server_choices("--tool-call-parser")
    for _prefix, r, t in MODEL_PARSERS:
        assert not r or r in reasoning, r
        assert not t or t in tool, t


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("Qwen/Qwen3-0.6B", {"--reasoning-parser": "qwen3", "--tool-call-parser": "qwen"}),
        ("Qwen/Qwen3-235B-A22B", {"--reasoning-parser": "qwen3", "--tool-call-parser": "qwen"}),
        ("Qwen/Qwen3-30B-A3B-Instruct-2507", {"--tool-call-parser": "qwen"}),
        ("Qwen/Qwen3-Coder-480B-A35B-Instruct", {"--tool-call-parser": "qwen3_coder"}),
        ("Qwen/Qwen2.5-72B-Instruct", {"--tool-call-parser": "qwen"}),
        ("Qwen/Qwen2.5-14B", {}),
        (
            "deepseek-ai/DeepSeek-R1",
            {"--reasoning-parser": "deepseek-r1", "--tool-call-parser": "deepseekv3"},
        ),
        ("deepseek-ai/DeepSeek-V3-0324", {"--tool-call-parser": "deepseekv3"}),
        ("deepseek-ai/DeepSeek-V2-Lite", {}),
        ("Qwen/Qwen1.5-MoE-A2.7B", {}),
        ("/fsx/models/my-model", {}),
    ],
)
def test_parsers_by_family(model: str, expected: dict[str, str]) -> None:
    assert model_parsers(model) == expected


def test_qwen3_server_gets_metrics_and_both_parsers() -> None:
    argv = _qwen3()
    assert argv.count("--enable-metrics") == 1
    assert argv[argv.index("--reasoning-parser") + 1] == "qwen3"
    assert argv[argv.index("--tool-call-parser") + 1] == "qwen"


def test_user_parser_wins_and_is_not_rendered_twice() -> None:
    argv = _qwen3(extra_server_args=["--reasoning-parser", "deepseek-r1", "--tool-call-parser=hermes"])
    assert argv.count("--reasoning-parser") == 1
    assert argv[argv.index("--reasoning-parser") + 1] == "deepseek-r1"
    assert "--tool-call-parser" not in argv and argv.count("--tool-call-parser=hermes") == 1


def test_user_metrics_flag_is_not_rendered_twice() -> None:
    assert _qwen3(extra_server_args=["--enable-metrics"]).count("--enable-metrics") == 1


def test_defaults_skip_only_what_the_user_set() -> None:
    spec = parse_config(base_config(extra_server_args=["--tool-call-parser", "hermes"]))
    # Weights on FSx: prefetch into the page cache (infra/planning/fastload.py).
    assert serving_default_args(spec) == ["--enable-metrics", "--weight-loader-prefetch-checkpoints"]


def test_user_prefetch_flag_is_not_rendered_twice() -> None:
    spec = parse_config(base_config(extra_server_args=["--weight-loader-prefetch-checkpoints"]))
    assert "--weight-loader-prefetch-checkpoints" not in serving_default_args(spec)
    no_store = parse_config(base_config(model_store=False))
    assert "--weight-loader-prefetch-checkpoints" not in serving_default_args(no_store)


def test_mem_fraction_left_to_sglang_by_default() -> None:
    assert not any(a.startswith("--mem-fraction-static") for a in _argv())


def test_mem_fraction_rendered_when_the_stack_sets_it() -> None:
    argv = _argv(mem_fraction_static="0.85")
    assert argv[argv.index("--mem-fraction-static") + 1] == "0.85"


def test_mem_fraction_zero_means_unset_and_out_of_range_is_refused() -> None:
    from infra.spec import SpecError

    assert parse_config(base_config(mem_fraction_static="0")).mem_fraction_static == 0
    for bad in ("0.05", "0.99", "-0.1"):
        with pytest.raises(SpecError) as e:
            parse_config(base_config(mem_fraction_static=bad))
        assert e.value.key == "sglang-cluster:mem_fraction_static"
