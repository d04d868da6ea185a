"""The router's worker sync runs whenever the router runs, under a real systemd.

A real service manager (``/lib/systemd/systemd --user`` in a private mount and PID namespace, as
in ``test_unit_recovery.py``) loads the shipped ``sglang-router.service`` and
``sglang-router-sync.service``. Their ``[Unit]`` sections (the dependency graph under test) are
kept as shipped; only the commands are stand-ins (a router needs its venv and the network):
the router's ``ExecStartPre`` fails on its first run (pip could not reach PyPI), the router
itself exits 1 two seconds after each start (a crash), ``RestartSec=1`` instead of 10 so the
test waits less; the sync is ``sleep``.

With ``BindsTo=sglang-router.service`` the sync never came back: its start job failed with the
router's first failed start ("dependency"), and a later router crash stopped it as a bound
unit, which ``Restart=always`` does not undo. The re-adding of workers the router dropped was
then gone for the life of the node.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conformance.fake_node import USERDATA
from tests.conformance.usersystemd import user_manager

DRIVER = r"""
sc start --no-block sglang-router.service sglang-router-sync.service
# Bounded waits: the router has crashed and come back twice, then the sync runs (or not).
for _ in $(seq 300); do [ "$(sc show -P NRestarts sglang-router.service)" -ge 2 ] && break; sleep 0.1; done
for _ in $(seq 100); do [ "$(sc is-active sglang-router-sync.service)" = active ] && break; sleep 0.1; done
echo "router_restarts $(sc show -P NRestarts sglang-router.service)"
echo "sync $(sc is-active sglang-router-sync.service)"
"""


def _stand_in(name: str, tmp: Path) -> str:
    text = (USERDATA / name).read_text()
    text = re.sub(r"^(EnvironmentFile|StandardOutput|StandardError)=.*\n", "", text, flags=re.M)
    if name == "sglang-router.service":
        count = tmp / "installs"
        text = re.sub(
            r"^ExecStartPre=.*$",
            f"ExecStartPre=/bin/sh -c 'echo x >> {count}; [ $(wc -l < {count}) -ge 2 ]'",
            text,
            flags=re.M,
        )
        text = re.sub(r"^ExecStart=.*$", "ExecStart=/bin/sh -c 'sleep 2; exit 1'", text, flags=re.M)
        text = re.sub(r"^RestartSec=.*$", "RestartSec=1", text, flags=re.M)
        text = re.sub(r"^(Wants|After)=.*$", "", text, flags=re.M)  # no network/node units here
    else:
        text = re.sub(r"^ExecStart=.*$", "ExecStart=/bin/sleep 600", text, flags=re.M)
    return text


def test_sync_runs_after_router_failures(tmp_path: Path) -> None:
    mgr = user_manager(tmp_path)
    units = mgr.units
    shipped_sync = (USERDATA / "sglang-router-sync.service").read_text()
    assert "After=sglang-router.service" in shipped_sync
    for name in ("sglang-router.service", "sglang-router-sync.service"):
        (units / name).write_text(_stand_in(name, tmp_path))
    sync_unit = (units / "sglang-router-sync.service").read_text()
    assert sync_unit.split("[Service]")[0] == shipped_sync.split("[Service]")[0]  # graph as shipped
    proc = mgr.run(DRIVER, timeout=120)
    out = proc.stdout + proc.stderr
    restarts = re.search(r"router_restarts (\d+)", out)
    assert restarts and int(restarts.group(1)) >= 2, out
    assert "sync active" in out, out
