"""Run inside .tools/router-venv: parse argvs with sglang-router's own parser.

stdin: JSON list of argvs (each without the leading ``python3 -m sglang_router.launch_router``).
stdout: JSON list of ``{"ok": bool, "error": str, "args": {...}}``. Every ``--flag`` must be an
exact option string (the launcher's parser allows prefix abbreviations; we never render them).
"""

import argparse
import contextlib
import io
import json
import sys

from sglang_router.launch_router import parse_router_args
from sglang_router.router_args import RouterArgs

exact = argparse.ArgumentParser(allow_abbrev=False)
RouterArgs.add_cli_args(exact, use_router_prefix=False)
options = set(exact._option_string_actions)
results = []
for argv in json.load(sys.stdin):
    bad = [a for a in argv if a.startswith("--") and a.split("=", 1)[0] not in options]
    if bad:
        results.append({"ok": False, "error": f"not exact options: {bad}", "args": {}})
        continue
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parsed = parse_router_args(list(argv))
        results.append(
            {
                "ok": True,
                "error": "",
                "args": {
                    k: v
                    for k, v in vars(parsed).items()
                    if isinstance(v, (str, int, float, bool, list, type(None)))
                },
            }
        )
    except SystemExit:
        results.append({"ok": False, "error": err.getvalue().strip()[-500:], "args": {}})
json.dump(results, sys.stdout)
