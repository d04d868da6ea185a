"""Every systemd unit shipped to nodes passes ``systemd-analyze verify`` (Debian's systemd 252),
enabled as cloud-init enables them, next to cloud-init's own units.

The units are installed into a scratch root with this machine's unit library, cloud-init's real
units (from the Debian package tools/setup-conformance.sh unpacks: its ``cloud-final.service``
runs After=multi-user.target, which is how an ordering cycle would show) and the project's
scripts as executables. ``docker.service`` and the ``docker``/``python3`` binaries come from
packages the DLAMI and Ubuntu carry but this machine does not, so minimal stand-ins take their
place (and only there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.planning.userdata import ROUTER_ENABLED
from tests.conformance.conftest import TOOLS, require
from tests.conftest import ROOT

USERDATA = ROOT / "userdata"
CLOUD_INIT_UNITS = TOOLS / "cloud-init" / "lib" / "systemd" / "system"
UNITS = sorted(p.name for p in USERDATA.glob("*.service"))
HOST_UNITS = Path("/lib/systemd/system")


def _root(tmp_path: Path) -> Path:
    if not shutil.which("systemd-analyze") or not HOST_UNITS.is_dir():
        pytest.fail("systemd-analyze or /lib/systemd/system missing (Debian package systemd)")
    root = tmp_path / "root"
    lib = root / "usr" / "lib" / "systemd" / "system"
    shutil.copytree(HOST_UNITS, lib, symlinks=True)
    for unit in require(CLOUD_INIT_UNITS).iterdir():
        shutil.copy(unit, lib / unit.name)
    stub = "[Unit]\nDescription=stand-in\n[Service]\nType=oneshot\nExecStart=/usr/bin/docker\n"
    (lib / "docker.service").write_text(stub)
    usr_bin = root / "usr" / "bin"
    usr_bin.mkdir(parents=True, exist_ok=True)
    (root / "bin").symlink_to("usr/bin")  # merged /usr, as on Ubuntu
    for exe in ("docker", "python3"):
        shutil.copy(shutil.which("true") or "/bin/true", usr_bin / exe)
    for exe in ("rm", "cloud-init"):
        shutil.copy(shutil.which("rm") or "/bin/rm", usr_bin / exe)
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
    # What `systemctl enable` leaves behind: cloud-init's chain, a rank-0 GPU node's units
    # (the server and its ready check) and the router's units.
    wants = {
        "multi-user.target": ["cloud-init.target", "sglang-server@0.service", *ROUTER_ENABLED],
        "cloud-init.target": [
            "cloud-init-local.service",
            "cloud-init.service",
            "cloud-config.service",
            "cloud-final.service",
        ],
        "sglang-server@0.service": ["sglang-ready@0.service"],
    }
    for unit, wanted in wants.items():
        d = etc / f"{unit}.wants"
        d.mkdir(parents=True, exist_ok=True)
        for w in wanted:
            src = w.replace("@0.service", "@.service")
            (d / w).symlink_to(etc / src if (etc / src).exists() else lib / src)
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
    proc = _verify(root, [*names, "multi-user.target"])
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_verify_finds_the_cloud_final_cycle(tmp_path: Path) -> None:
    """Ordering a multi-user.target unit After=cloud-final.service (which is After=
    multi-user.target) is a cycle systemd breaks by dropping jobs at every reboot."""
    root = _root(tmp_path)
    unit = root / "etc" / "systemd" / "system" / "sglang-server@.service"
    unit.write_text(unit.read_text().replace("After=", "After=cloud-final.service ", 1))
    proc = _verify(root, ["sglang-server@0.service", "multi-user.target"])
    assert "cycle" in proc.stderr


def test_verify_really_checks(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "etc" / "systemd" / "system" / "bad.service").write_text(
        "[Service]\nExecStart=/usr/local/bin/missing\nBogus=1\n"
    )
    proc = _verify(root, ["bad.service"])
    assert proc.returncode != 0 and "Bogus" in proc.stderr
