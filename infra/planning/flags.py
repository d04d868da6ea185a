"""Option strings of the pinned SGLang server and router, as data.

``data/sglang_flags.json`` is written by ``tools/dump_flags.py`` from the real argparse parsers
of ``sglang==SGLANG_VERSION`` and ``sglang-router==ROUTER_VERSION`` (their own ``add_cli_args``),
and ``tests/conformance/test_sglang_parser.py`` checks it against those parsers on every
CI run. The spec uses it to refuse a misspelt or abbreviated ``extra_server_args`` flag before
any resource exists (argparse would otherwise accept ``--enable-ep`` as an abbreviation of
``--enable-eplb``, a different feature).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SGLANG_VERSION = "0.5.23"
ROUTER_VERSION = "0.3.2"

DATA_FILE = Path(__file__).with_name("data") / "sglang_flags.json"


@cache
def _data() -> dict[str, Any]:
    with DATA_FILE.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def server_flags() -> frozenset[str]:
    """Every option string of ``sglang.launch_server`` at ``SGLANG_VERSION`` (``--tp-size``...)."""
    return frozenset(_data()["server"])


def router_flags() -> frozenset[str]:
    """Every option string of ``sglang_router.launch_router`` at ``ROUTER_VERSION``."""
    return frozenset(_data()["router"])


def server_dests() -> dict[str, str]:
    """``{option string: argparse dest}`` of ``sglang.launch_server`` at ``SGLANG_VERSION``.

    Aliases share a dest: ``--tp-size`` and ``--tensor-parallel-size`` both write ``tp_size``;
    ``--ep``, ``--ep-size`` and ``--expert-parallel-size`` write ``ep_size``.
    """
    return dict(_data()["server_dests"])


def server_options_for(dests: frozenset[str]) -> frozenset[str]:
    """Every option string of ``sglang.launch_server`` that writes one of ``dests``."""
    return frozenset(o for o, d in server_dests().items() if d in dests)


def server_choices(flag: str) -> tuple[str, ...]:
    """The ``choices`` the real parser gives ``flag`` (``--reasoning-parser``...).

    Raises:
        KeyError: when the flag takes no fixed choices (or is not a flag).
    """
    return tuple(_data()["server_choices"][flag])
