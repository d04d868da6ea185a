"""The shipped unit graph recovers from a failed boot step under a real systemd.

A real systemd 252 service manager (``tests/conformance/usersystemd.py``: Debian's
``/lib/systemd/systemd --user`` in a private mount and PID namespace) loads copies of the
shipped ``sglang-node``, ``sglang-model`` and ``sglang-server@`` units and runs the real node
scripts against the stand-ins of ``fake_node.py``. SSM throttles the first 9 GetParameter calls,
so ``sglang-secrets`` gives up on the first run (8 attempts) and ``sglang-node`` fails: the
exact case that left nodes blocked for good. Copies differ from the shipped units only in
paths (scratch root), ``Environment=`` for the stand-ins, ``ExecStop=`` (no docker) and
``RestartSec=1`` instead of 15 (to wait less; the graph is unchanged). The DLAMI runs systemd 249;
the behaviour used here (a failed ``Requires=`` fails the dependent start job with no retry, a
restart job starts wanted units again) is the same in 249 and 252, and ``RestartMode=direct``
exists in neither (systemd.service(5): "Added in version 254").
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conformance.fake_node import USERDATA, make_node
from tests.conformance.test_boot_rehearsal import FSX_ENV
from tests.conformance.usersystemd import systemctl_shim, user_manager

UNITS = ("sglang-node.service", "sglang-model.service", "sglang-server@.service")

DRIVER = r"""
if [ "${MODE}" = blocking ]; then
  sc start sglang-server@0.service 2>&1; echo "start_rc=$?"
else
  sc start --no-block sglang-server@0.service
  # Wait (bounded) for the server to run; the assertions are on states, not on time.
  for _ in $(seq 900); do [ "$(sc is-active sglang-server@0.service)" = active ] && break; sleep 0.2; done
fi
for u in sglang-node.service sglang-model.service sglang-server@0.service; do
  echo "state ${u} $(sc is-active "${u}")"
done
echo "restarts $(sc show -P NRestarts sglang-server@0.service)"
echo "jobs $(sc list-jobs --no-legend | grep -c . || true)"
"""


def _copy_unit(name: str, root: Path, env: dict[str, str], old_graph: bool) -> str:
    text = (USERDATA / name).read_text()
    text = text.replace("/usr/local/bin/", f"{root}/usr/local/bin/")
    text = text.replace("EnvironmentFile=/etc/sglang/", f"EnvironmentFile={root}/etc/sglang/")
    text = text.replace("append:/var/log/sglang/", f"append:{root}/var/log/sglang/")
    text = re.sub(r"^ExecStop=.*$", "ExecStop=/bin/true", text, flags=re.M)
    text = re.sub(r"^RestartSec=.*$", "RestartSec=1", text, flags=re.M)
    if old_graph and name == "sglang-server@.service":
        # The graph before this change: the preparation Required, not Wanted.
        text = re.sub(
            r"^Wants=.*$", "Wants=network-online.target\nRequires=sglang-model.service", text, flags=re.M
        )
    lines = "".join(f'Environment="{k}={v}"\n' for k, v in env.items())
    return text.replace("[Service]\n", "[Service]\n" + lines, 1)


def _run(tmp_path: Path, old_graph: bool) -> tuple[dict[str, str], str, str]:
    mgr = user_manager(tmp_path)
    node = make_node(tmp_path, {**FSX_ENV, "SGLANG_NNODES": "1"})
    # systemctl inside the units must talk to this user manager.
    wrap = systemctl_shim(tmp_path)
    env = {
        **node.env,
        "PATH": f"{wrap}:{node.env['PATH']}",
        "XDG_RUNTIME_DIR": str(mgr.runtime),
        "FAKE_SSM_FAILS": "9",
        "FAKE_RUN_SLEEP": "600",
    }
    for name in UNITS:
        (mgr.units / name).write_text(_copy_unit(name, node.root, env, old_graph))
    proc = mgr.run(DRIVER, MODE="blocking" if old_graph else "wait")
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "state":
            out[parts[1]] = parts[2]
        elif parts and parts[0] in ("restarts", "jobs"):
            out[parts[0]] = parts[1]
        elif line.startswith("start_rc="):
            out["start_rc"] = line.split("=", 1)[1]
    boot = (
        (node.root / "var/log/sglang/boot.log").read_text()
        if (node.root / "var/log/sglang/boot.log").exists()
        else ""
    )
    return out, proc.stdout + proc.stderr, boot


def test_server_recovers_after_node_preparation_gave_up(tmp_path: Path) -> None:
    states, output, boot = _run(tmp_path, old_graph=False)
    assert states.get("sglang-server@0.service") == "active", output + boot
    assert states["sglang-node.service"] == "active" and states["sglang-model.service"] == "active"
    assert int(states["restarts"]) >= 1  # the server's own Restart= drove the retry
    # The first run gave up with one clear line; the second read the secrets.
    gave_up = [line for line in boot.splitlines() if line.startswith("ERROR:")]
    assert len(gave_up) == 1 and "ThrottlingException" in gave_up[0], boot
    assert "secrets: HF token read from /sglang/prod/hf-token" in boot


def test_the_old_requires_graph_stays_blocked(tmp_path: Path) -> None:
    """Control: with Requires= the start job fails with the dependency, the server never
    runs, and no job or restart is pending: nothing would ever retry it."""
    states, output, _ = _run(tmp_path, old_graph=True)
    assert states.get("start_rc") not in (None, "0"), output
    assert "dependency" in output
    assert states["sglang-server@0.service"] == "inactive"
    assert states["sglang-node.service"] == "failed"
    assert states["restarts"] == "0" and states["jobs"] == "0"


ONESHOT_DRIVER = r"""
systemctl --user start dependent.service 2>&1; echo "start_rc=$?"
# Wait (bounded) for the oneshot's own restart to succeed.
for _ in $(seq 300); do [ "$(systemctl --user is-active prep.service)" = active ] && break; sleep 0.1; done
for u in prep.service dependent.service; do echo "state ${u} $(systemctl --user is-active "${u}")"; done
echo "jobs $(systemctl --user list-jobs --no-legend | grep -c . || true)"
"""


def test_restart_on_a_oneshot_alone_does_not_save_its_dependent(tmp_path: Path) -> None:
    """Why the graph is not "Restart=on-failure on the oneshots, Requires= kept": the oneshot
    does restart and succeed, but the dependent's start job already failed with the dependency
    and nothing starts it again (systemd < 254 has no RestartMode=direct)."""
    mgr = user_manager(tmp_path)
    units = mgr.units
    counter = tmp_path / "runs"
    (units / "prep.service").write_text(
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nRestart=on-failure\nRestartSec=1\n"
        f"ExecStart=/bin/sh -c 'echo x >> {counter}; [ $(wc -l < {counter}) -ge 2 ]'\n"
    )
    (units / "dependent.service").write_text(
        "[Unit]\nRequires=prep.service\nAfter=prep.service\n[Service]\nExecStart=/bin/sleep 600\n"
    )
    proc = mgr.run(ONESHOT_DRIVER, timeout=120)
    out = proc.stdout
    assert "start_rc=1" in out and "dependency" in out, out + proc.stderr
    assert "state prep.service active" in out  # the oneshot recovered on its own ...
    assert "state dependent.service inactive" in out and "jobs 0" in out  # ... its dependent never will
