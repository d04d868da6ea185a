"""Print the option strings of the real SGLang server and router parsers as JSON.

Run it in an environment that has ``sglang==0.5.23`` (importable ``sglang.srt.server_args``)
and ``sglang-router==0.3.2``; each half can be run on its own with ``--only server|router``::

    python tools/dump_flags.py --only server > /tmp/server.json

``infra/planning/data/sglang_flags.json`` is the merge of both; the conformance tests compare it
with the live parsers.
"""

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
    out: dict[str, list[str]] = {}
    if args.only in (None, "server"):
        out["server"] = server_option_strings()
    if args.only in (None, "router"):
        out["router"] = router_option_strings()
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
