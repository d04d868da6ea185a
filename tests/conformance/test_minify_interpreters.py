"""The Python programs a node receives do not depend on the deployer's Python, and run on the
node's Python 3.10 (Ubuntu 22.04, the DLAMI's ``/usr/bin/python3``).

Real interpreters: ``infra.planning.minify.shipped`` runs under every CPython 3.11-3.13 found
(``pythonX.Y`` on PATH or under pyenv; the project allows any Python >= 3.11 for ``pulumi up``),
and each shipped program is compiled by a real CPython 3.10. Before this test, the shipped text
came from ``ast.unparse``, which on 3.12+ writes ``f'{s['n']}'`` (PEP 701): a SyntaxError on
3.10, so ``sglang-group``, ``sglang-nccl-transport`` and ``sglang-router-sync`` did not start.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.planning.minify import shipped
from infra.planning.userdata import USERDATA_DIR, static_file
from tests.conftest import ROOT

PYTHON = [
    p.name
    for p in sorted(USERDATA_DIR.iterdir())
    if p.is_file()
    and static_file(p.name).split("\n", 1)[0].startswith("#!")
    and "python" in static_file(p.name).split("\n", 1)[0]
]


def _interpreter(version: str) -> str | None:
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-V"], capture_output=True, check=False).returncode == 0:
        return found
    for cand in sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}")):
        return str(cand)
    return None


def _shipped_by(python: str) -> dict[str, str]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import minify; "
        "print(json.dumps({n: minify.shipped(open(sys.argv[2] + '/' + n).read()) for n in sys.argv[3:]}))"
    )
    out = subprocess.run(
        [python, "-c", code, str(ROOT / "infra" / "planning"), str(USERDATA_DIR), *PYTHON],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def test_shipped_python_is_the_same_on_every_deployer_python_and_runs_on_3_10(tmp_path: Path) -> None:
    py310 = _interpreter("3.10")
    if py310 is None:
        pytest.fail("needs a CPython 3.10 (python3.10 on PATH or under ~/.pyenv/versions/3.10.*)")
    deployers = {v: p for v in ("3.11", "3.12", "3.13") if (p := _interpreter(v))}
    assert deployers, "no CPython 3.11-3.13 found"
    expected = {n: shipped(static_file(n)) for n in PYTHON}
    for version, python in deployers.items():
        assert _shipped_by(python) == expected, f"shipped files differ when deployed from Python {version}"
    for name, text in expected.items():
        path = tmp_path / name
        path.write_text(text)
        proc = subprocess.run(
            [py310, "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"{name} as shipped does not compile on Python 3.10: {proc.stderr}"
