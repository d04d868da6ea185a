"""Run inside .tools/sglang-venv: parse argvs with SGLang 0.5.23's own launch_server parser.

stdin: JSON list of argvs (each without ``python3 -m sglang.launch_server``).
stdout: JSON list of ``{"ok": bool, "error": str, "args": {dest: value}}``. Every ``--flag``
must be an exact option string (``allow_abbrev=False``: ``--tp`` would otherwise pass as a
prefix of ``--tp-size``).
"""

import argparse
import contextlib
import io
import json
import sys

from sglang.srt.server_args import ServerArgs

parser = argparse.ArgumentParser(allow_abbrev=False)
ServerArgs.add_cli_args(parser)
options = set(parser._option_string_actions)
results = []
for argv in json.load(sys.stdin):
    bad = [a for a in argv if a.startswith("--") and a.split("=", 1)[0] not in options]
    if bad:
        results.append({"ok": False, "error": f"not exact options: {bad}", "args": {}})
        continue
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = parser.parse_args(list(argv))
        args = {k: v for k, v in vars(ns).items() if isinstance(v, (str, int, float, bool, type(None)))}
        results.append({"ok": True, "error": "", "args": args})
    except SystemExit:
        results.append({"ok": False, "error": err.getvalue().strip()[-500:], "args": {}})
json.dump(results, sys.stdout)
