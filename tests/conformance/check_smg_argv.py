"""Run inside smg's venv (.tools/smg-venv): parse argvs with smg's own launcher parser.

stdin: JSON list of argvs (each without the leading ``smg launch``).
stdout: JSON list of ``{"ok": bool, "error": str, "args": {...}}``: ``smg launch`` hands its
arguments to ``smg.launch_router.parse_router_args``, which is what runs here, after the
exact-option check.
"""

import argparse

from exact_argv import check_all

# Installed in .tools/smg-venv only (tools/setup-conformance.sh), not in .venv.
from smg.launch_router import parse_router_args  # pyright: ignore[reportMissingImports]
from smg.router_args import RouterArgs  # pyright: ignore[reportMissingImports]

exact = argparse.ArgumentParser(allow_abbrev=False)
RouterArgs.add_cli_args(exact, use_router_prefix=False)
check_all(exact, parse_router_args)
