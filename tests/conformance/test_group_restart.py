"""Rehearsal of group restart on loopback: kill one rank of a multi-node server and the whole
group serves again within a stated bound.

What is real: ``userdata/sglang-group`` (coordinator, watcher, start and stop hooks) run as the
units in ``userdata/`` name them (``sglang-group@.service`` and the ``sglang-group.conf`` drop-in
of ``sglang-server@.service``, parsed here), with the ``node.env`` the planner writes
(:func:`server_node_env`, :func:`env_file`) and each rank's argv from :func:`server_argv`,
``--dist-timeout`` included.

What stands in, and why:
- the SGLang server: ``group_standin.py`` replaces ``python -m sglang.launch_server`` (and the
  docker run of ``sglang-server-run``) because a real server needs GPUs. It rendezvouses with rank
  0 like torch's TCPStore, and like the real thing on EFA it hangs (until ``--dist-timeout``) on a
  stale rendezvous and when a peer vanishes;
- systemd: ``minisystemd.py`` plays its role (``Restart=``, ``ExecStartPre``/``ExecStopPost``, a
  fake ``systemctl``) because no systemd runs here. The server unit's own ``ExecStartPre`` lines
  (image pull, GPU check) are left out; ``RestartSec`` is 1 s instead of 15 s, except in
  :func:`test_production_timings`;
- timings in ``node.env`` are scaled down (poll 0.2 s, silence 3 s, backoff 1 to 4 s instead of
  2 s, 30 s, 15 to 300 s) so the test takes seconds, except in :func:`test_production_timings`.

Bound: every scenario must serve again within ``BOUND_SECS`` = 60 s of the kill (generous on
purpose: no timed assertion may flake). Measured on the 2-core development machine (2026-11-21,
printed with ``-s``): 2-6 s with the scaled timings, about 18 s with the production ones (where
the 15 s ``RestartSec`` dominates). Everything binds 127.0.0.1 only, and every process is killed
at the end of each test.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from infra.planning.argv import server_argv
from infra.planning.cluster import plan_cluster, server_node_env
from infra.planning.group import DIST_TIMEOUT_SECS, GROUP_PORT_OFFSET, group_env, regroup_bound_secs
from infra.planning.userdata import env_file
from infra.spec import parse_config
from tests.conformance.minisystemd import Manager, Node, Unit, command, unit_lines
from tests.conftest import ROOT, base_config

USERDATA = ROOT / "userdata"
STANDIN = Path(__file__).resolve().parent / "group_standin.py"
BOUND_SECS = 60.0
TIMINGS = {
    "SGLANG_GROUP_POLL_SECS": "0.2",
    "SGLANG_GROUP_LOST_SECS": "3",
    "SGLANG_GROUP_BACKOFF_SECS": "1 4",
}
BINARIES = {"/usr/local/bin/sglang-group": [sys.executable, str(USERDATA / "sglang-group")]}


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports() -> tuple[int, int]:
    """A free dist-init block (port .. port + 19) and a free HTTP port, below the ephemeral range."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(20000, 31000, 40)
        if all(_free(p) for p in range(base, base + GROUP_PORT_OFFSET + 1)) and _free(base + 30):
            return base, base + 30
    raise RuntimeError("no free loopback ports")


class Cluster:
    """The nodes of server s0 of a stack, each with its units under a :class:`Manager`."""

    def __init__(
        self,
        tmp: Path,
        group: bool = True,
        node_env: dict[int, dict[str, str]] | None = None,
        timings: dict[str, str] | None = None,
        real_restart_sec: bool = False,
        binaries: dict[str, list[str]] | None = None,
        **overrides: Any,
    ) -> None:
        spec = parse_config(base_config(**overrides))
        plan = plan_cluster(spec, "rehearsal")
        dist_port, self.http_port = _ports()
        self.dist_port = dist_port
        self.manager = Manager(tmp / "bin")
        self.nodes: list[Node] = []
        self.status: list[Path] = []
        for node in [n for n in plan.layout.nodes if n.group == 0]:
            server = dataclasses.replace(node.servers[0], port=self.http_port, dist_init_port=dist_port)
            root = tmp / node.name
            etc, run = root / "etc", root / "run"
            etc.mkdir(parents=True)
            values = server_node_env(plan, node, "127.0.0.1", plan.runtime_for_plan())
            values.update(group_env(server), SGLANG_DIST_INIT_PORT=str(dist_port))
            values.update(TIMINGS if timings is None else timings)
            assert values["SGLANG_GROUP_PORT"] == str(dist_port + GROUP_PORT_OFFSET)
            (etc / "node.env").write_text(env_file(values))
            argv = server_argv(spec, server, node.rank, "127.0.0.1")
            assert argv[argv.index("--dist-timeout") + 1] == str(DIST_TIMEOUT_SECS)
            status = root / "standin.status"
            env = {
                **self.manager.node_env(node.name),
                "SGLANG_ETC": str(etc),
                "SGLANG_RUN_DIR": str(run),
                "SGLANG_GROUP_BIND": "127.0.0.1",
                "SGLANG_STANDIN_STATUS": str(status),
                **(node_env or {}).get(node.rank, {}),
            }
            self.status.append(status)
            self.nodes.append(
                self.manager.add(
                    Node(
                        node.name, root, env, self._units(argv, group, real_restart_sec, binaries or BINARIES)
                    )
                )
            )
        self.coordinator = f"http://127.0.0.1:{dist_port + GROUP_PORT_OFFSET}"

    @staticmethod
    def _units(
        argv: list[str], group: bool, real_restart_sec: bool, binaries: dict[str, list[str]]
    ) -> list[Unit]:
        server = unit_lines(USERDATA / "sglang-server@.service")
        main = [sys.executable, str(STANDIN), *argv[3:]]  # argv[:3] is python3 -m sglang.launch_server
        prevent = frozenset(int(v) for vs in server.get("RestartPreventExitStatus", []) for v in vs.split())
        srv = Unit("sglang-server@0.service", main, restart=server["Restart"][0], prevent=prevent)
        if real_restart_sec:
            srv.restart_sec = float(server["RestartSec"][0])
        if not group:
            return [srv]
        drop_in = unit_lines(USERDATA / "sglang-group.conf")
        srv.pre = [command(v, "0", binaries) for v in drop_in["ExecStartPre"]]
        srv.post = [command(v, "0", binaries) for v in drop_in["ExecStopPost"]]
        assert drop_in["Wants"] == ["sglang-group@%i.service"]
        unit = unit_lines(USERDATA / "sglang-group@.service")
        grp = Unit(
            "sglang-group@0.service",
            command(unit["ExecStart"][0], "0", binaries),
            restart=unit["Restart"][0],
            restart_sec=float(unit["RestartSec"][0]) if real_restart_sec else 0.5,
        )
        return [grp, srv]

    def boot(self) -> None:
        for n in self.nodes:
            n.boot()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.coordinator}/state", timeout=2) as r:
            return json.load(r)

    def status_of(self, rank: int) -> str:
        try:
            return self.status[rank].read_text().strip()
        except OSError:
            return ""

    def new_generation(self, old: str) -> bool:
        try:
            st = self.state()
        except OSError:
            return False
        return st["gen"] != old and st["phase"] == "launched"

    def wait_serving(self, what: str, since: float, old_gen: str | None = None) -> float:
        """Seconds from ``since`` until rank 0's /health answers 200 (in a generation other than
        ``old_gen`` when given); fails past BOUND_SECS."""
        while time.monotonic() - since < BOUND_SECS:
            if (old_gen is None or self.new_generation(old_gen)) and self.healthy():
                took = time.monotonic() - since
                print(f"\n{what}: the group serves again after {took:.1f} s (bound {BOUND_SECS:.0f} s)")
                return took
            time.sleep(0.05)
        logs = "\n".join(f"--- {n.name}\n{(n.root / 'node.log').read_text()[-3000:]}" for n in self.nodes)
        pytest.fail(f"{what}: not serving within {BOUND_SECS} s\n{logs}")

    def kill_main(self, rank: int) -> None:
        """SIGKILL the server process of ``rank`` (the container dies; the node stays up)."""
        svc = self.nodes[rank].service("sglang-server@0.service")
        pid = svc.main_pid
        assert pid, f"rank {rank} has no running server"
        os.killpg(pid, signal.SIGKILL)

    def close(self) -> None:
        self.manager.close()


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Cluster] = []

    def make(**kw: Any) -> Cluster:
        c = Cluster(tmp_path / f"c{len(made)}", **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _serving_group(make: Any, **kw: Any) -> tuple[Cluster, str]:
    c = make(**kw)
    c.boot()
    c.wait_serving("cold start", time.monotonic())
    st = c.state()
    assert st["phase"] == "launched" and st["joined"] == list(range(1, len(c.nodes)))
    return c, st["gen"]


@pytest.mark.parametrize("rank", [1, 0])
def test_killed_rank_restarts_the_group(cluster_factory: Any, rank: int) -> None:
    """prod-tp16's two ranks: SIGKILL rank ``rank``'s server; both restart into a new generation."""
    c, gen = _serving_group(cluster_factory)
    t0 = time.monotonic()
    c.kill_main(rank)
    c.wait_serving(f"TP16 on 2 nodes, rank {rank} killed", t0, gen)
    st = c.state()
    assert st["gen"] != gen and st["phase"] == "launched"
    # Both ranks run a new process: the survivor was restarted too, not left on the old world.
    for n in c.nodes:
        assert n.service("sglang-server@0.service").starts >= 2, n.name


def test_four_ranks_one_killed(cluster_factory: Any) -> None:
    """TP32 over four nodes: killing rank 2 restarts ranks 0, 1 and 3 as well."""
    c, gen = _serving_group(cluster_factory, tp_size=32)
    assert len(c.nodes) == 4
    t0 = time.monotonic()
    c.kill_main(2)
    c.wait_serving("TP32 on 4 nodes, rank 2 killed", t0, gen)
    assert c.state()["gen"] != gen
    assert all(n.service("sglang-server@0.service").starts >= 2 for n in c.nodes)


@pytest.mark.parametrize(("rank", "down_secs"), [(1, 1.0), (1, 5.0), (0, 1.0), (0, 5.0)])
def test_node_reboot(cluster_factory: Any, rank: int, down_secs: float) -> None:
    """A whole node vanishes (no ExecStopPost runs, its /run is wiped) and boots again after
    ``down_secs``. Back within the 3 s silence limit, its rank rejoins (or rank 0 opens a new
    generation) and the others follow; down longer, rank 0 restarts on a silent peer (or the
    peers stop to wait for a silent rank 0) before the node is back."""
    c, gen = _serving_group(cluster_factory)
    t0 = time.monotonic()
    c.nodes[rank].crash()
    time.sleep(down_secs)
    c.nodes[rank].boot()
    c.wait_serving(f"node of rank {rank} down {down_secs:.0f} s", t0, gen)
    survivor = c.nodes[1 - rank].root / "node.log"
    assert ("silent for" in survivor.read_text()) == (down_secs > float(TIMINGS["SGLANG_GROUP_LOST_SECS"]))


def test_lone_restart_hangs_without_group_restart(cluster_factory: Any) -> None:
    """Control: with systemd's Restart= alone (no group units), a restarted rank 1 reaches the
    stale store of the old rank 0, which is stuck in its collective: nobody serves. This is the
    failure the mechanism exists for, reproduced by the stand-in."""
    c = cluster_factory(group=False)
    c.boot()
    c.wait_serving("cold start without group restart", time.monotonic())
    c.kill_main(1)
    deadline = time.monotonic() + 20
    srv = c.nodes[1].service("sglang-server@0.service")
    while not (srv.starts >= 2 and c.status_of(1) == "rendezvous" and c.status_of(0) == "stuck"):
        assert time.monotonic() < deadline, (srv.starts, c.status_of(0), c.status_of(1))
        time.sleep(0.05)
    time.sleep(3)  # rank 1 is connected to the stale store by now; nothing changes
    assert not c.healthy()
    assert c.status_of(0) == "stuck" and c.status_of(1) == "rendezvous"


def test_restart_storm_is_bounded_by_backoff(cluster_factory: Any) -> None:
    """Rank 1 crashes 0.3 s after every start. Each crash ends the generation, but rank 0's
    forced restarts come no faster than the backoff allows (base 2 s, doubling, at most 8 s
    here; 15 s to 300 s in production), so the group never restarts in a tight loop."""
    timings = {**TIMINGS, "SGLANG_GROUP_BACKOFF_SECS": "2 8"}
    c, _ = _serving_group(cluster_factory, timings=timings)
    c.nodes[1].env["SGLANG_STANDIN_DIE_AFTER"] = "0.3"
    c.kill_main(1)  # restarts with the crash-looping environment
    time.sleep(22)
    log = (c.nodes[0].root / "node.log").read_text().splitlines()
    stamps = [
        datetime.fromisoformat(line.split()[0]).timestamp()
        for line in log
        if "restarting sglang-server@0.service" in line
    ]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    print(f"\nforced restarts of rank 0 in 22 s: {len(stamps)}, gaps {[round(g) for g in gaps]} s")
    assert len(stamps) >= 3, log[-20:]
    # Log stamps have 1 s resolution: each gap is at least the backoff step minus 1 s.
    for n, gap in enumerate(gaps, start=1):
        assert gap >= min(8, 2 * 2 ** (n - 1)) - 1, (n, gaps)
    assert len(stamps) <= 5  # 0, 2, 6, 14, 22 s at the earliest


def test_production_timings(cluster_factory: Any) -> None:
    """prod-tp16 with the production node.env timings (poll 2 s, silence 30 s) and the units'
    real RestartSec (15 s server, 5 s group): kill rank 1 and measure. Only ``docker stop`` is
    faster than in production (the stand-in exits on SIGTERM at once; a rank stuck in NCCL may
    need the 30 s SIGKILL), so the figure should sit under ``regroup_bound_secs()``."""
    c, gen = _serving_group(cluster_factory, timings={}, real_restart_sec=True)
    t0 = time.monotonic()
    c.kill_main(1)
    took = c.wait_serving("TP16, rank 1 killed, production timings", t0, gen)
    print(f"regroup_bound_secs() = {regroup_bound_secs()} s (with a 30 s docker stop)")
    assert c.nodes[1].units["sglang-server@0.service"].restart_sec == 15  # the unit's own
    assert took > 0


def test_coordinator_or_watcher_crash_restarts_nothing(cluster_factory: Any) -> None:
    """The group units themselves crash (SIGKILL) and come back through ``Restart=always``:
    rank 0's coordinator reloads its generation from /run, the peers' heartbeats resume within
    the silence limit, and no server restarts."""
    c, gen = _serving_group(cluster_factory)
    for node in c.nodes:
        svc = node.service("sglang-group@0.service")
        os.killpg(svc.main_pid, signal.SIGKILL)
    time.sleep(2 * float(TIMINGS["SGLANG_GROUP_LOST_SECS"]))
    assert c.state()["gen"] == gen and c.healthy()
    assert all(n.service("sglang-group@0.service").starts >= 2 for n in c.nodes)
    assert all(n.service("sglang-server@0.service").starts == 1 for n in c.nodes)


def test_rank0_waits_for_a_stale_store_to_go(cluster_factory: Any) -> None:
    """An old rank-0 store still listens on the dist-init port (a container that outlived its
    unit): rank 0 opens no generation, so no rank can rendezvous with the stale store, until
    the port is free."""
    c = cluster_factory()
    stale = socket.socket()
    stale.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    stale.bind(("127.0.0.1", c.dist_port))
    stale.listen(8)
    try:
        c.boot()
        seen: list[str] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                seen.append(c.state()["phase"])
            except OSError:
                pass
            time.sleep(0.1)
        assert seen and set(seen) == {"none"}, seen
    finally:
        stale.close()
    c.wait_serving("stale store gone", time.monotonic())


def test_a_rank_refused_for_its_transport_stops_the_group_without_a_storm(cluster_factory: Any) -> None:
    """require_efa: rank 1's run script refuses with exit 78 (its watcher found NCCL off EFA and
    left the marker) and ``RestartPreventExitStatus=78`` keeps it down. Rank 0 restarts once,
    then waits in its new generation; its log says which rank refused and why, so the node the
    router points at explains the outage; nothing restarts in a loop."""
    c, gen = _serving_group(cluster_factory)
    c.nodes[1].env["SGLANG_STANDIN_EXIT"] = "78"
    c.kill_main(1)  # the watcher's docker kill; systemd restarts it once; the run script refuses
    rank1 = c.nodes[1].service("sglang-server@0.service")
    deadline = time.monotonic() + BOUND_SECS
    while rank1.state != "failed":
        assert time.monotonic() < deadline, rank1.state
        time.sleep(0.05)
    time.sleep(4 * float(TIMINGS["SGLANG_GROUP_BACKOFF_SECS"].split()[1]))  # room for a storm
    st = c.state()
    assert st["gen"] != gen and st["phase"] == "gathering" and st["joined"] == []
    assert "rank 1 refused to start (exit 78)" in st["refused"]["1"]
    log = (c.nodes[0].root / "node.log").read_text()
    assert "rank 1 refused to start (exit 78): NCCL was not on EFA there" in log
    assert rank1.starts == 2 and c.nodes[0].service("sglang-server@0.service").starts <= 3
    assert not c.healthy()


def test_a_rank_that_exits_cleanly_comes_back(cluster_factory: Any, tmp_path: Path) -> None:
    """SGLang 0.5.23 on a node rank >= 1 returns from ``launch_server`` (exit 0) when its
    schedulers end, e.g. after an NCCL abort. The server unit's ``Restart=`` must bring such a
    rank back, or its ``ExecStopPost`` has cleared the joined generation, its watcher has
    nothing to restart, and rank 0 waits for it forever (``Restart=on-failure`` did that)."""
    c, gen = _serving_group(cluster_factory)
    once = tmp_path / "clean-exit-once"
    once.touch()
    c.nodes[1].env["SGLANG_STANDIN_CLEAN_EXIT_ONCE"] = str(once)
    t0 = time.monotonic()
    c.kill_main(1)  # the restarted rank 1 forms the world, then exits 0
    rank1 = c.nodes[1].service("sglang-server@0.service")
    deadline = t0 + BOUND_SECS
    while once.exists():
        assert time.monotonic() < deadline, "rank 1 never formed the world again"
        time.sleep(0.05)
    formed = c.state()["gen"]  # the generation rank 1 is about to leave with exit 0
    assert formed != gen
    c.wait_serving("rank 1 exited 0", t0, formed)
    assert rank1.starts >= 3  # boot, after the kill, after the clean exit
