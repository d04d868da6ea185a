"""Run inside .tools/sglang-venv: parse argvs with SGLang 0.5.23's own launch_server parser.

stdin: JSON list of argvs (each without ``python3 -m sglang.launch_server``).
stdout: JSON list of ``{"ok": bool, "error": str, "args": {dest: value}}``. Every ``--flag``
must be an exact option string (``--tp`` would otherwise pass as a prefix of ``--tp-size``).
"""

import argparse

from exact_argv import check_all

# Installed in .tools/sglang-venv only (tools/setup-conformance.sh), not in .venv.
from sglang.srt.server_args import ServerArgs  # pyright: ignore[reportMissingImports]

parser = argparse.ArgumentParser(allow_abbrev=False)
ServerArgs.add_cli_args(parser)
check_all(parser, parser.parse_args)
