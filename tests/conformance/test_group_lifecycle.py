"""Group restart under the node's lifecycle: an operator's ``systemctl stop``, clean reboots of
rank 0, rank 1 and both, and the shipped ``sglang-group`` on the node's Python 3.10.

Same rehearsal as ``test_group_restart.py`` (its :class:`Cluster`: ``minisystemd.py`` stands in
for systemd, ``group_standin.py`` for the SGLang server, which needs GPUs; loopback only, scaled
timings: poll 0.2 s, silence 3 s). What is added here:

- an operator's stop: with ``Restart=always`` on the server and a coordinator that forces
  restarts, a rank stopped by hand must stay stopped (its ``ExecStopPost`` clears the joined
  generation, so neither its watcher nor ``Restart=`` brings it back), and starting it by hand
  must bring the group back;
- a clean reboot (``systemctl reboot``, or the ACPI shutdown EC2 sends on stop): unlike
  ``test_node_reboot`` (power loss), systemd stops the server first (it is ``After=`` the group
  unit, so it stops before it), its ``ExecStopPost`` reaches rank 0, then the group unit stops;
  ``/run`` is a tmpfs and is empty on the next boot;
- the program the node runs: the shipped text (comments stripped by
  :func:`infra.planning.minify.shipped`) under a real CPython 3.10, Ubuntu 22.04's
  ``/usr/bin/python3``, instead of the repository's source under the test's Python.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from infra.planning.userdata import shipped_file
from tests.conformance.minisystemd import Node
from tests.conformance.test_group_restart import (
    BOUND_SECS,
    TIMINGS,
    Cluster,
    _serving_group,
    cluster_factory,  # noqa: F401 (pytest fixture used by name)
)
from tests.conformance.test_minify_interpreters import _interpreter

SERVER = "sglang-server@0.service"
GROUP = "sglang-group@0.service"
POLL = float(TIMINGS["SGLANG_GROUP_POLL_SECS"])


def _until(what: str, cond: Any, c: Cluster) -> None:
    deadline = time.monotonic() + BOUND_SECS
    while not cond():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n.name}\n{(n.root / 'node.log').read_text()[-3000:]}" for n in c.nodes)
            pytest.fail(f"not reached within {BOUND_SECS} s: {what}\n{logs}")
        time.sleep(0.05)


def _state(c: Cluster) -> dict[str, Any]:
    try:
        return c.state()
    except OSError:
        return {"gen": "", "phase": "unreachable", "joined": []}


@pytest.mark.parametrize("rank", [1, 0])
def test_a_rank_stopped_by_its_operator_stays_stopped(cluster_factory: Any, rank: int) -> None:  # noqa: F811
    """``systemctl stop sglang-server@0`` on one node: that rank stays stopped while the rest of
    the group reacts (rank 0 restarts and gathers when rank 1 was stopped; rank 1 restarts and
    waits when rank 0 was stopped), through 25 watcher polls; ``systemctl start`` brings the
    group back in a new generation."""
    c, gen = _serving_group(cluster_factory)
    other = 1 - rank
    stopped = c.nodes[rank].service(SERVER)
    survivor = c.nodes[other].service(SERVER)
    starts, survivor_starts = stopped.starts, survivor.starts
    stopped.stop()  # what `systemctl stop` does: SIGTERM, ExecStopPost, no Restart=
    assert stopped.state == "inactive"
    if rank == 1:
        _until("rank 0 restarted and gathers", lambda: _state(c)["gen"] not in ("", gen), c)
        assert _state(c)["phase"] == "gathering"
    else:
        _until("rank 0's generation ended", lambda: _state(c)["phase"] == "ended", c)
        _until("rank 1 restarted to wait for rank 0", lambda: survivor.starts > survivor_starts, c)
    time.sleep(25 * POLL)  # every watcher polls rank 0 about 25 times; none may start the stopped rank
    assert stopped.state == "inactive" and stopped.starts == starts
    assert not c.healthy()
    if rank == 0:
        assert _state(c)["phase"] == "ended" and _state(c)["gen"] == gen  # no generation without rank 0
    t0 = time.monotonic()
    stopped.start()  # `systemctl start`
    c.wait_serving(f"rank {rank} started again by hand", t0, gen)


def _clean_shutdown(node: Node) -> None:
    """systemd's shutdown order on one node: the server (ExecStop, ExecStopPost), then the group
    unit it is ``After=``; then /run is gone (tmpfs) and nothing runs."""
    node.service(SERVER).stop()
    node.service(GROUP).stop()
    node.crash()  # nothing is left to kill; drops the services and wipes /run like a reboot


@pytest.mark.parametrize("ranks", [(0,), (1,), (0, 1)], ids=["rank0", "rank1", "both"])
def test_clean_reboot_brings_the_group_back(cluster_factory: Any, ranks: tuple[int, ...]) -> None:  # noqa: F811
    """``systemctl reboot`` of rank 0's node, rank 1's node, or both at once: each node boots
    again 2 s later with an empty /run (rank 0's coordinator starts from generation 0 again)
    and the group serves in a new generation."""
    c, gen = _serving_group(cluster_factory)
    t0 = time.monotonic()
    threads = [threading.Thread(target=_clean_shutdown, args=(c.nodes[r],)) for r in ranks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in ranks:
        assert not (c.nodes[r].run_dir / "group-0.joined").exists()
    time.sleep(2)
    for r in ranks:
        c.nodes[r].boot()
    c.wait_serving(f"clean reboot of rank(s) {ranks}", t0, gen)
    st = c.state()
    assert st["phase"] == "launched" and st["joined"] == [1]
    if 0 in ranks:
        assert st["gen"].startswith("1-")  # a fresh coordinator: /run did not survive the reboot


def test_shipped_group_program_runs_on_python_3_10(cluster_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    """The node runs ``/usr/local/bin/sglang-group`` as shipped (comments stripped) with Ubuntu
    22.04's Python 3.10: cold start, kill rank 1, the group serves again."""
    py310 = _interpreter("3.10")
    if py310 is None:
        pytest.fail("needs a CPython 3.10 (python3.10 on PATH or under ~/.pyenv/versions/3.10.*)")
    prog = tmp_path / "sglang-group"
    prog.write_text(shipped_file("sglang-group"))
    c, gen = _serving_group(cluster_factory, binaries={"/usr/local/bin/sglang-group": [py310, str(prog)]})
    for node in c.nodes:
        assert node.units[GROUP].main[:2] == [py310, str(prog)]
    t0 = time.monotonic()
    c.kill_main(1)
    c.wait_serving("shipped sglang-group on Python 3.10, rank 1 killed", t0, gen)
