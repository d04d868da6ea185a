"""Shared by check_server_argv.py and check_router_argv.py (each runs in its tool's venv).

Parses argvs with a real argparse parser, after refusing any ``--flag`` that is not an exact
option string of that parser (the tools' own launchers allow prefix abbreviations).
"""

import argparse
import contextlib
import io
import json
import sys

PLAIN = (str, int, float, bool, list, type(None))


def check_all(parser: argparse.ArgumentParser, parse) -> None:
    """Read a JSON list of argvs on stdin; write ``[{"ok", "error", "args"}]`` on stdout.

    ``parse(argv)`` returns an object whose ``vars()`` are the parsed values.
    """
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
                parsed = parse(list(argv))
        except SystemExit:
            results.append({"ok": False, "error": err.getvalue().strip()[-500:], "args": {}})
            continue
        args = {k: v for k, v in vars(parsed).items() if isinstance(v, PLAIN)}
        results.append({"ok": True, "error": "", "args": args})
    json.dump(results, sys.stdout)
