"""A real systemd service manager for the unit tests, with nothing leaking onto this machine.

Debian's ``/lib/systemd/systemd --user`` (systemd 252) runs in a private mount and PID namespace
made by ``unshare``, with a private ``/run`` and its own ``XDG_RUNTIME_DIR``/``XDG_CONFIG_HOME``:
the units under test are written to ``<config>/systemd/user``, a driver script (bash, run inside
the namespace after :data:`PREAMBLE`) starts them with ``sc`` (``systemctl --user``) and prints
what the test asserts. The DLAMI runs systemd 249; each test says which behaviour it relies on
and that it is the same there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SYSTEMD = Path("/lib/systemd/systemd")

PREAMBLE = r"""
set -u
# A private /run (this mount namespace only): systemd --user wants /run/systemd/system.
mount --bind "${FAKERUN}" /run
mkdir -p /run/systemd/system
/lib/systemd/systemd --user > "${MGRLOG}" 2>&1 &
for _ in $(seq 200); do [ -S "${XDG_RUNTIME_DIR}/systemd/private" ] && break; sleep 0.05; done
sc() { systemctl --user "$@"; }
"""
"""Start the user manager and wait (bounded) for its socket; ``sc`` is ``systemctl --user``."""


def require_user_systemd() -> None:
    """Fail (never skip) when this machine cannot run the manager: these checks are the point."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not SYSTEMD.exists():
        pytest.fail("needs root, unshare (util-linux) and /lib/systemd/systemd (Debian package systemd)")
    probe = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.fail(f"unshare cannot make a mount and PID namespace here (CAP_SYS_ADMIN): {probe.stderr}")


@dataclass(frozen=True)
class UserManager:
    """Scratch directories of one manager under ``tmp``."""

    tmp: Path

    @property
    def runtime(self) -> Path:
        return self.tmp / "xdg-run"

    @property
    def config(self) -> Path:
        return self.tmp / "xdg-config"

    @property
    def units(self) -> Path:
        """Where the units under test go (``systemctl --user`` reads them from here)."""
        return self.config / "systemd" / "user"

    def run(self, driver: str, timeout: int = 300, **env: str) -> subprocess.CompletedProcess[str]:
        """Run :data:`PREAMBLE` + ``driver`` in a fresh namespace; ``env`` adds variables."""
        return subprocess.run(
            ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "bash", "-c", PREAMBLE + driver],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={
                **os.environ,
                "XDG_RUNTIME_DIR": str(self.runtime),
                "XDG_CONFIG_HOME": str(self.config),
                "FAKERUN": str(self.tmp / "fakerun"),
                "MGRLOG": str(self.tmp / "manager.log"),
                **env,
            },
        )


def user_manager(tmp: Path) -> UserManager:
    """Check the machine can run a manager, make its directories under ``tmp``."""
    require_user_systemd()
    mgr = UserManager(tmp)
    mgr.runtime.mkdir(mode=0o700)
    (tmp / "fakerun").mkdir()
    mgr.units.mkdir(parents=True)
    return mgr


def systemctl_shim(tmp: Path) -> Path:
    """A directory with a ``systemctl`` that talks to the user manager (for the units' own
    ``systemctl`` calls); put it first on the units' PATH."""
    wrap = tmp / "wrap"
    wrap.mkdir()
    (wrap / "systemctl").write_text('#!/bin/sh\nexec /usr/bin/systemctl --user "$@"\n')
    (wrap / "systemctl").chmod(0o755)
    return wrap
