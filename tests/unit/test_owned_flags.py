"""extra_server_args cannot reach a setting the layout owns, under any alias of the real parser."""

from __future__ import annotations

import pytest

from infra.planning import flags
from infra.spec import OWNED_SERVER_DESTS, OWNED_SERVER_FLAGS, SpecError, parse_config
from tests.conftest import base_config


def _refused(args: list[str]) -> SpecError:
    with pytest.raises(SpecError) as e:
        parse_config(base_config(extra_server_args=args))
    assert e.value.key == "sglang-cluster:extra_server_args"
    return e.value


def test_owned_set_is_derived_from_every_alias_in_the_parser_data() -> None:
    dests = flags.server_dests()
    # Every owned dest exists in SGLang 0.5.23's parser (a rename would otherwise go unnoticed).
    assert OWNED_SERVER_DESTS <= set(dests.values())
    assert {o for o, d in dests.items() if d in OWNED_SERVER_DESTS} == OWNED_SERVER_FLAGS
    # The aliases a hand-written list missed (shared/reference/sglang-serving.md, Checked 2026-11).
    for alias in (
        "--attention-data-parallel-size",
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
        "--data-parallel-size",
        "--expert-parallel-size",
        "--ep",
        "--model",
        "--nccl-init-addr",
    ):
        assert alias in OWNED_SERVER_FLAGS, alias


@pytest.mark.parametrize("flag", sorted(OWNED_SERVER_FLAGS))
def test_every_owned_option_string_is_refused(flag: str) -> None:
    err = _refused([flag, "2"])
    assert flag in err.message and flags.server_dests()[flag] in err.message


@pytest.mark.parametrize("arg", ["--attention-data-parallel-size=4", "--ep=2", "--model=/tmp/m"])
def test_owned_alias_with_inline_value_is_refused(arg: str) -> None:
    _refused([arg])


def test_config_file_is_refused() -> None:
    err = _refused(["--config", "/etc/sglang/extra.yaml"])
    assert "--config is refused" in err.message


@pytest.mark.parametrize(
    "args",
    [
        ["--moe-a2a-backend", "deepep"],
        ["--moe-a2a-backend=mooncake"],
        ["--moe-a2a-backend", "flashinfer"],
    ],
)
def test_a2a_backend_that_changes_ep_size_is_refused(args: list[str]) -> None:
    err = _refused(args)
    assert "ep_size = tp_size" in err.message


def test_a2a_backend_without_value_is_refused() -> None:
    assert "only none is allowed" in _refused(["--moe-a2a-backend"]).message


def test_every_a2a_backend_but_none_is_refused() -> None:
    choices = flags.server_choices("--moe-a2a-backend")
    assert "none" in choices and "deepep" in choices
    for value in choices:
        if value == "none":
            parse_config(base_config(extra_server_args=["--moe-a2a-backend", value]))
        else:
            _refused(["--moe-a2a-backend", value])


def test_flags_the_layout_does_not_own_pass() -> None:
    spec = parse_config(base_config(extra_server_args=["--context-length", "32768", "--enable-metrics"]))
    assert spec.extra_server_args == ["--context-length", "32768", "--enable-metrics"]
