"""How the shipped server unit treats the exit status of its main process, under a real systemd.

The same real service manager as ``test_unit_recovery.py`` (``/lib/systemd/systemd --user`` in a
private mount and PID namespace) runs copies of the shipped ``sglang-node``, ``sglang-model`` and
``sglang-server@`` units and the real node scripts with the stand-ins of ``fake_node.py``; the
copies differ only in paths, ``Environment=``, ``ExecStop=`` and ``RestartSec=1``.

- A clean exit (status 0) must restart the server. SGLang 0.5.23 returns normally on a node rank
  >= 1 once its schedulers end (``Engine._launch_subprocesses`` blocks in
  ``block_until_scheduler_exits`` and ``launch_server`` returns for ``node_rank >= 1``;
  ``sglang/srt/entrypoints/engine.py`` and ``http_server.py`` of the pinned release): that is
  what a rank >= 1 does after rank 0's ShutdownReq broadcast, or when a scheduler dies from an
  NCCL watchdog abort or the OOM killer without signalling its parent. With
  ``Restart=on-failure`` such a rank stayed stopped; its ``ExecStopPost`` had cleared the joined
  generation, so the group watcher did not restart it either, and rank 0 waited for it forever.
- The require_efa watcher that ``sglang-server-run`` starts in the background before it
  ``exec``s ``docker run`` lives in the unit: when the container ends, systemd ends it too, so
  a restarted server has exactly one watcher, never one left from the previous start that
  could ``docker kill`` the new container.
- Exit status 78 (require_efa refusal, ``sglang-server-run``) stays final whatever ``Restart=``
  says (``RestartPreventExitStatus=78``).

The serving container is the fake ``docker run`` (a real SGLang needs GPUs).
"""

from __future__ import annotations

from pathlib import Path

from tests.conformance.fake_node import USERDATA, make_node
from tests.conformance.test_boot_rehearsal import FSX_ENV
from tests.conformance.test_unit_recovery import UNITS, _copy_unit
from tests.conformance.usersystemd import systemctl_shim, user_manager

DRIVER = r"""
sc start --no-block sglang-server@0.service
# Bounded wait for a settled state: the server ran its container twice, or it is inactive or
# failed with no job queued and no restart pending (auto-restart) for 5 s in a row.
settled=0
for _ in $(seq 600); do
  runs=$(grep -c '^docker run .*sglang-server-0' "${FAKE_STATE}/calls.log" 2>/dev/null || true)
  st=$(sc show -P SubState sglang-server@0.service)
  if [ "${runs:-0}" -ge 2 ] && [ "${st}" = running ]; then break; fi
  case "${st}" in
    dead | failed) [ "$(sc list-jobs --no-legend | grep -c .)" = 0 ] && settled=$((settled + 1)) ;;
    *) settled=0 ;;
  esac
  [ "${settled}" -ge 25 ] && break
  sleep 0.2
done
echo "substate $(sc show -P SubState sglang-server@0.service)"
echo "result $(sc show -P Result sglang-server@0.service)"
echo "status $(sc show -P ExecMainStatus sglang-server@0.service)"
echo "restarts $(sc show -P NRestarts sglang-server@0.service)"
# Watchers, not counting a watcher's own subshells (a pipeline or $(...) inside it forks a copy
# with the same command line for a moment): processes whose parent is not a watcher.
echo "watchers $(ps -eo pid=,ppid=,args= | awk '$3 == "bash" && $4 ~ /\/usr\/local\/bin\/sglang-transport-check$/ && $5 == "0" { w[$1] = $2 } END { n = 0; for (p in w) if (!(w[p] in w)) n++; print n }')"
"""


GROUP_RECORDER = """#!/bin/sh
# stand-in sglang-group: records each hook in the unit's log, in the order systemd runs them
echo "group-hook $* SERVICE_RESULT=${SERVICE_RESULT:-} EXIT_STATUS=${EXIT_STATUS:-}"
[ "$1" = serve ] && exec sleep 600
exit 0
"""


def _run(
    tmp_path: Path, marker: bool = False, require_efa: bool = False, group: bool = False, **fake: str
) -> tuple[dict[str, str], str]:
    mgr = user_manager(tmp_path)
    units = mgr.units
    node = make_node(
        tmp_path, {**FSX_ENV, "SGLANG_NNODES": "1", "SGLANG_REQUIRE_EFA": "1" if require_efa else "0"}
    )
    # sglang-server-run starts the watcher by name, from /usr/local/bin on a node.
    node.env["PATH"] = f"{node.root}/usr/local/bin:{node.env['PATH']}"
    if marker:
        run = node.root / "run" / "sglang"
        run.mkdir(parents=True, exist_ok=True)
        (run / "server-0.transport-failed").write_text("ERROR: NCCL transport is socket\n")
    wrap = systemctl_shim(tmp_path)
    env = {**node.env, "PATH": f"{wrap}:{node.env['PATH']}", "XDG_RUNTIME_DIR": str(mgr.runtime)}
    env.update({"FAKE_RUN_SLEEP": "600", **fake})
    for name in UNITS:
        (units / name).write_text(_copy_unit(name, node.root, env, old_graph=False))
    if group:
        # The shipped drop-in and group unit; sglang-group itself records its calls.
        recorder = node.root / "usr/local/bin/sglang-group"
        recorder.write_text(GROUP_RECORDER)
        recorder.chmod(0o755)
        (units / "sglang-group@.service").write_text(
            _copy_unit("sglang-group@.service", node.root, env, False)
        )
        drop = units / "sglang-server@.service.d"
        drop.mkdir()
        text = (
            (USERDATA / "sglang-group.conf")
            .read_text()
            .replace("/usr/local/bin/", f"{node.root}/usr/local/bin/")
        )
        (drop / "sglang-group.conf").write_text(text)
    proc = mgr.run(DRIVER, FAKE_STATE=str(node.state))
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        out[key] = value
    log = node.root / "var/log/sglang/server-0.log"
    return out, proc.stdout + proc.stderr + (log.read_text() if log.exists() else "")


def test_a_clean_exit_restarts_the_server(tmp_path: Path) -> None:
    states, output = _run(tmp_path, FAKE_RUN_CLEAN_EXITS="1")
    assert "terminated with -6" in output  # the first container ended on its own, status 0
    assert states.get("substate") == "running", output
    assert int(states["restarts"]) >= 1, output


def test_the_efa_refusal_stays_final(tmp_path: Path) -> None:
    states, output = _run(tmp_path, marker=True)
    assert states.get("substate") == "failed" and states["status"] == "78", output
    assert states["restarts"] == "0", output
    assert "NCCL was not on EFA on the last start" in output


def test_the_transport_watcher_ends_with_its_server(tmp_path: Path) -> None:
    """The stand-in docker has no ``logs``, so a watcher never decides and would poll forever:
    after one clean exit and a restart, only the new start's watcher runs."""
    states, output = _run(tmp_path, require_efa=True, FAKE_RUN_CLEAN_EXITS="1")
    assert states.get("substate") == "running" and int(states["restarts"]) >= 1, output
    assert states["watchers"] == "1", output


def test_group_hooks_run_after_the_units_own_steps_and_see_the_refusal(tmp_path: Path) -> None:
    """The shipped drop-in merged by a real systemd: ``sglang-group start`` runs after the unit's
    own ``ExecStartPre`` (preparation, image check), so a rank joins a generation only once it
    can start at once; ``sglang-group stopped`` runs after the run script's refusal with
    ``EXIT_STATUS=78``, which rank 0's coordinator reads; the refusal stays final."""
    states, output = _run(tmp_path, marker=True, group=True)
    assert states.get("substate") == "failed" and states["status"] == "78" and states["restarts"] == "0", (
        output
    )
    steps = [
        line
        for line in output.splitlines()
        if line.startswith(("group-hook start", "group-hook stopped", "server 0: "))
    ]
    assert steps == [
        "server 0: image lmsysorg/sglang:v0.5.23 already present",  # sglang-server-prepare
        "group-hook start 0 SERVICE_RESULT= EXIT_STATUS=",
        "server 0: not starting: NCCL was not on EFA on the last start "
        f"(why: {tmp_path}/root/run/sglang/server-0.transport-failed)",
        "group-hook stopped 0 SERVICE_RESULT=exit-code EXIT_STATUS=78",
    ], output
    assert "group-hook serve 0" in output  # the drop-in's Wants= started sglang-group@0
