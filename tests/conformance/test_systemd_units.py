"""Every systemd unit shipped to nodes passes ``systemd-analyze verify`` (Debian's systemd 252).

The units are installed into a scratch root with this machine's own unit library and the
project's scripts as the executables. ``docker.service``, ``cloud-final.service`` and the
``docker``/``python3`` binaries come from packages the DLAMI and Ubuntu carry but this machine
does not, so minimal stand-ins take their place there (and only there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

USERDATA = ROOT / "userdata"
UNITS = sorted(p.name for p in USERDATA.glob("*.service"))
HOST_UNITS = Path("/lib/systemd/system")


def _root(tmp_path: Path) -> Path:
    if not shutil.which("systemd-analyze") or not HOST_UNITS.is_dir():
        pytest.fail("systemd-analyze or /lib/systemd/system missing (Debian package systemd)")
    root = tmp_path / "root"
    lib = root / "usr" / "lib" / "systemd" / "system"
    shutil.copytree(HOST_UNITS, lib, symlinks=True)
    stub = "[Unit]\nDescription=stand-in\n[Service]\nType=oneshot\nExecStart=/usr/bin/docker\n"
    for name in ("docker.service", "cloud-final.service"):
        (lib / name).write_text(stub)
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    for exe in ("docker", "python3"):
        shutil.copy(shutil.which("true") or "/bin/true", root / "usr" / "bin" / exe)
    bin_dir = root / "usr" / "local" / "bin"
    etc = root / "etc" / "systemd" / "system"
    bin_dir.mkdir(parents=True)
    etc.mkdir(parents=True)
    for f in USERDATA.iterdir():
        if f.suffix == ".service":
            shutil.copy(f, etc / f.name)
        elif f.is_file():
            shutil.copy(f, bin_dir / f.name)
            os.chmod(bin_dir / f.name, 0o755)
    return root


def _verify(root: Path, units: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *units],
        capture_output=True,
        text=True,
        cwd=root / "etc" / "systemd" / "system",
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
        timeout=60,
        check=False,
    )


def test_units_found() -> None:
    assert {"sglang-server@.service", "sglang-router.service", "sglang-node.service"} <= set(UNITS)


def test_units_verify(tmp_path: Path) -> None:
    root = _root(tmp_path)
    names = [u.replace("@.service", "@0.service") for u in UNITS]
    proc = _verify(root, names)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_verify_really_checks(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "etc" / "systemd" / "system" / "bad.service").write_text(
        "[Service]\nExecStart=/usr/local/bin/missing\nBogus=1\n"
    )
    proc = _verify(root, ["bad.service"])
    assert proc.returncode != 0 and "Bogus" in proc.stderr
