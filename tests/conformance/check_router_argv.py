"""Run inside .tools/router-venv: parse argvs with sglang-router's own parser.

stdin: JSON list of argvs (each without the leading ``python3 -m sglang_router.launch_router``).
stdout: JSON list of ``{"ok": bool, "error": str, "args": {...}}``: the launcher's own
``parse_router_args``, after the exact-option check.
"""

import argparse

from exact_argv import check_all

# Installed in .tools/router-venv only (tools/setup-conformance.sh), not in .venv.
from sglang_router.launch_router import parse_router_args  # pyright: ignore[reportMissingImports]
from sglang_router.router_args import RouterArgs  # pyright: ignore[reportMissingImports]

exact = argparse.ArgumentParser(allow_abbrev=False)
RouterArgs.add_cli_args(exact, use_router_prefix=False)
check_all(exact, parse_router_args)
