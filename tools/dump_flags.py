"""Print the option strings of the real SGLang server and router parsers as JSON.

Run it in an environment that has ``sglang==0.5.23`` (importable ``sglang.srt.server_args``)
and ``sglang-router==0.3.2``; each half can be run on its own with ``--only server|router``::

    python tools/dump_flags.py --only server > /tmp/server.json

``infra/planning/data/sglang_flags.json`` is the merge of both; the conformance tests compare it
with the live parsers. Besides the option strings (``server``, ``router``), the server half
records, for each option string, its argparse ``dest`` (``server_dests``: ``--ep`` and
``--expert-parallel-size`` both write ``ep_size``) and the ``choices`` of every option that has
them (``server_choices``), so the spec can refuse aliases of the flags it owns and check parser
names offline.
"""

# pyright: reportMissingImports=false
# (torch, transformers, sglang, sglang_router live in the tool venvs under .tools/, not in .venv)
from __future__ import annotations

import argparse
import json
import sys


def server_option_strings() -> list[str]:
    """Every ``--flag`` of ``sglang.launch_server`` (its own ``ServerArgs.add_cli_args``)."""
    # Installed in .tools/sglang-venv only (tools/setup-conformance.sh), not in .venv.
    from sglang.srt.server_args import ServerArgs  # pyright: ignore[reportMissingImports]

    parser = argparse.ArgumentParser(allow_abbrev=False)
    ServerArgs.add_cli_args(parser)
    return sorted(o for o in parser._option_string_actions if o.startswith("--"))


def _server_parser() -> argparse.ArgumentParser:
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser(allow_abbrev=False)
    ServerArgs.add_cli_args(parser)
    return parser


def server_option_dests() -> dict[str, str]:
    """``{option string: argparse dest}`` of every ``--flag`` of ``sglang.launch_server``."""
    actions = _server_parser()._option_string_actions
    return {o: actions[o].dest for o in sorted(actions) if o.startswith("--")}


def server_option_choices() -> dict[str, list[str]]:
    """``{option string: choices}`` of every ``--flag`` of ``sglang.launch_server`` that has them.

    Choices are kept in the parser's order; a set of choices is sorted.
    """
    actions = _server_parser()._option_string_actions
    out: dict[str, list[str]] = {}
    for o in sorted(actions):
        choices = actions[o].choices
        if not o.startswith("--") or choices is None:
            continue
        values = [str(c) for c in choices]
        out[o] = sorted(values) if isinstance(choices, (set, frozenset)) else values
    return out


def router_option_strings() -> list[str]:
    """Every ``--flag`` of ``sglang_router.launch_router`` (its own ``RouterArgs.add_cli_args``)."""
    # Installed in .tools/router-venv only (tools/setup-conformance.sh), not in .venv.
    from sglang_router.router_args import RouterArgs  # pyright: ignore[reportMissingImports]

    parser = argparse.ArgumentParser(allow_abbrev=False)
    RouterArgs.add_cli_args(parser, use_router_prefix=False)
    return sorted(o for o in parser._option_string_actions if o.startswith("--"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("server", "router"))
    args = ap.parse_args()
    out: dict[str, object] = {}
    if args.only in (None, "server"):
        out["server"] = server_option_strings()
        out["server_dests"] = server_option_dests()
        out["server_choices"] = server_option_choices()
    if args.only in (None, "router"):
        out["router"] = router_option_strings()
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
