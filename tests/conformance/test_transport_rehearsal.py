"""Rehearsal of require_efa on a node: the real scripts, stand-in docker/curl/logger/systemctl.

What runs for real: the user data the plan renders for ``prod-tp16`` (its ``node.env``,
``server-0.argv``, ``container.env``, ``sglang-lib.sh`` and every script, taken from the
cloud-config ``write_files``), ``sglang-server-run`` (which starts ``sglang-transport-check`` in
the background and ``exec``s docker), ``sglang-nccl-transport`` and ``sglang-wait-ready``, in a
private mount namespace (``unshare -m``) where ``/etc/sglang``, ``/usr/local/lib/sglang`` and
``/run/sglang`` are this test's directories (empty mount points are created on the host when
missing).

What stands in: ``docker`` (``run`` prints a fixture NCCL log and blocks until ``kill``/``stop``;
``logs`` prints the same log; a real SGLang server needs GPUs), ``curl`` (IMDS and ``/health``),
``logger`` and ``systemctl`` (records calls: the scripts must not call it). systemd itself is
played by :class:`Unit`, which reads ``sglang-server@.service`` and applies its ``Restart=`` and
``RestartPreventExitStatus=`` to the exit status, as systemd 249's ``service_shall_restart``
does; like systemd it kills what is left of the unit's processes when the main process ends.
``sglang-server-prepare`` (docker/GPU wait, image pull: the boot part's script) is not run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from infra.planning.bundle import installed_files
from infra.planning.cluster import plan_cluster, server_node_boot
from infra.spec import parse_config
from tests.conftest import ROOT, base_config
from tests.fixtures.nccl.constructed import make_logs

FIXTURES = ROOT / "tests" / "fixtures" / "nccl"
UNIT = ROOT / "userdata" / "sglang-server@.service"
MOUNTS = ("/etc/sglang", "/usr/local/lib/sglang", "/run/sglang")

DOCKER = r"""#!/usr/bin/env bash
# stand-in docker: one container per --name; state files in $FAKE_DOCKER
d="${FAKE_DOCKER:?}"
printf '%s\n' "$*" >>"$d/calls"
cmd="$1"
shift
case "$cmd" in
  info | image | rm) exit 0 ;;
  run)
    prev=""
    for a in "$@"; do
      [ "$prev" = --name ] && name="$a"
      prev="$a"
    done
    rm -f "$d/$name.exit"
    : >"$d/$name.running"
    cat "$d/log"
    while [ -e "$d/$name.running" ]; do sleep 0.05; done
    exit "$(cat "$d/$name.exit")"
    ;;
  logs)
    [ -e "$d/$1.running" ] || { echo "Error: No such container: $1" >&2; exit 1; }
    cat "$d/log"
    ;;
  kill | stop)
    name="${!#}"
    if [ "$cmd" = kill ]; then echo 137 >"$d/$name.exit"; else echo 0 >"$d/$name.exit"; fi
    rm -f "$d/$name.running"
    ;;
  *) echo "stand-in docker: unexpected $cmd" >&2; exit 99 ;;
esac
"""

CURL = r"""#!/usr/bin/env bash
# stand-in curl: IMDSv2 and the server's /health and /v1/models
url=""
for a in "$@"; do case "$a" in http*) url="$a" ;; esac; done
case "$url" in
  */latest/api/token) echo token ;;
  */meta-data/local-ipv4) echo 10.0.1.10 ;;
  */health | */v1/models)
    [ -e "$FAKE_DOCKER/sglang-server-0.running" ] && [ -e "$FAKE_DOCKER/healthy" ] && exit 0
    exit 7
    ;;
  *) exit 6 ;;
esac
"""

RECORD = """#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$FAKE_DOCKER/{name}.calls"
"""


class Node:
    """One GPU node's files and stand-ins, and a way to run a command as systemd would."""

    def __init__(self, tmp: Path, node_rank: int, **overrides: Any) -> None:
        if not shutil.which("unshare"):
            pytest.fail("unshare (util-linux) is missing")
        self.tmp = tmp
        self.fake = tmp / "docker"
        self.fake.mkdir()
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for name, body in {"docker": DOCKER, "curl": CURL}.items():
            self._exe(self.bin / name, body)
        for name in ("logger", "systemctl"):
            self._exe(self.bin / name, RECORD.replace("{name}", name))
        self.root = tmp / "root"
        plan = plan_cluster(parse_config(base_config(**overrides)), "prod-tp16")
        boot = server_node_boot(plan, plan.layout.nodes[node_rank], "10.0.1.10")
        # What the node has once sglang-bootstrap has unpacked its bundle next to write_files.
        for f in installed_files(boot.user_data).values():
            path = self.root / f["path"].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f["content"], encoding="utf-8")
            path.chmod(int(f["permissions"], 8))
        for m in MOUNTS:
            (self.root / m.lstrip("/")).mkdir(parents=True, exist_ok=True)
            Path(m).mkdir(parents=True, exist_ok=True)  # an empty mount point on the host
        self.log = tmp / "server-0.log"
        self.ready_log = tmp / "ready-0.log"
        self.marker = self.root / "run/sglang/server-0.transport-failed"

    @staticmethod
    def _exe(path: Path, body: str) -> None:
        path.write_text(body, encoding="utf-8")
        path.chmod(0o755)

    def nccl_log(self, text: str) -> None:
        """What the container prints (its docker log)."""
        (self.fake / "log").write_text(text, encoding="utf-8")

    def start(self, argv: list[str], out: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the node's mount namespace, output appended to ``out``."""
        binds = "; ".join(f"mount --bind {self.root}{m} {m}" for m in MOUNTS)
        env = {
            "PATH": f"{self.bin}:{self.root}/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "FAKE_DOCKER": str(self.fake),
            "SGLANG_NCCL_POLL_SECS": "0.1",
            "HOME": str(self.tmp),
        }
        with out.open("ab") as f:
            return subprocess.Popen(
                [
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "bash",
                    "-c",
                    f'{binds} && exec "$@"',
                    "_",
                    *argv,
                ],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def run(self, argv: list[str], out: Path, timeout: float = 120) -> int:
        """Run to the end; then kill what is left of its process group, as systemd does with a
        unit's cgroup when the main process exits."""
        proc = self.start(argv, out)
        try:
            return proc.wait(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def calls(self, name: str) -> list[str]:
        path = self.fake / ("calls" if name == "docker" else f"{name}.calls")
        return path.read_text().splitlines() if path.exists() else []

    def errors(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "ERROR:" in line]


class Unit:
    """systemd's handling of ``sglang-server@.service`` exits, read from the unit file."""

    def __init__(self) -> None:
        service: dict[str, list[str]] = {}
        for line in UNIT.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                service.setdefault(key, []).append(value)
        self.service = service
        assert service["Restart"] == ["always"]
        self.prevent = {int(v) for vs in service.get("RestartPreventExitStatus", []) for v in vs.split()}

    def restarts_after(self, status: int) -> bool:
        """``Restart=always``: restart on any exit unless the status is prevented."""
        return status not in self.prevent

    def serve(self, node: Node, max_starts: int = 5) -> list[int]:
        """Start the server slot 0 and restart it as systemd would; the main process exits."""
        assert self.service["ExecStart"] == ["/usr/local/bin/sglang-server-run %i"]
        statuses: list[int] = []
        while len(statuses) < max_starts:
            (node.root / "run/sglang/server-0.ready").unlink(missing_ok=True)  # ExecStartPre=rm
            statuses.append(node.run(["sglang-server-run", "0"], node.log))
            if not self.restarts_after(statuses[-1]):
                break
        return statuses


def wait_for(predicate: Any, what: str, bound: float = 60) -> None:
    """Poll until ``predicate()``; fail after ``bound`` seconds (a hang, not a speed check)."""
    end = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("log", "word"),
    [
        (FIXTURES / "nccl-ofi-missing.log", "socket"),
        (FIXTURES / "nccl-ofi-broken.log", "socket"),
        (FIXTURES / "constructed" / "trap-ofi-initializing-then-socket.log", "socket"),
        (FIXTURES / "constructed" / "libfabric-tcp.log", "libfabric-other"),
    ],
    ids=["real-ofi-missing", "real-ofi-broken", "trap-initializing", "libfabric-tcp"],
)
def test_rank1_off_efa_fails_once_with_one_line_and_no_restart_loop(
    tmp_path: Path, log: Path, word: str
) -> None:
    node = Node(tmp_path, node_rank=1)
    node.nccl_log(log.read_text())
    statuses = Unit().serve(node)
    # Killed by the watcher (docker kill: 137), restarted once by Restart=always, then the
    # run script refuses with 78, which RestartPreventExitStatus makes final.
    assert statuses == [137, 78]
    errors = node.errors()
    assert len(errors) == 1, errors
    line = errors[0]
    assert f"NCCL transport is {word}, not EFA" in line
    assert "/var/log/sglang/server-0.log" in line and "/etc/sglang/container.env" in line
    assert node.marker.read_text().strip() == line
    assert "not starting: NCCL was not on EFA" in node.log.read_text()
    assert [c for c in node.calls("docker") if c.startswith("kill")] == ["kill sglang-server-0"]
    assert node.calls("systemctl") == []
    assert any(line in c for c in node.calls("logger"))  # also in the journal (tag sglang)


def test_rank1_on_efa_keeps_serving(tmp_path: Path) -> None:
    node = Node(tmp_path, node_rank=1)
    node.nccl_log((FIXTURES / "constructed" / "efa-ofi-1.17-p5.log").read_text())
    proc = node.start(["sglang-server-run", "0"], node.log)
    try:
        wait_for(lambda: "NCCL transport: efa" in node.log.read_text(), "the efa line")
        assert proc.poll() is None  # the container still runs
        assert "8 rank(s): 8 efa" in node.log.read_text()
    finally:
        node.run(["docker", "stop", "--time", "30", "sglang-server-0"], tmp_path / "stop.log")
        status = proc.wait(timeout=60)
    assert status == 0
    assert node.errors() == [] and not node.marker.exists()


def test_undecidable_lines_fail_as_unknown_after_the_bound(tmp_path: Path) -> None:
    """NCCL chose Libfabric but no provider line ever shows (bounded wait, then final)."""
    node = Node(tmp_path, node_rank=1)
    node.nccl_log(
        "h:7:7 [0] NCCL INFO NET/OFI Initializing aws-ofi-nccl 1.17.2\nh:7:7 [0] NCCL INFO Using network Libfabric\n"
    )
    with (node.root / "etc/sglang/node.env").open("a") as f:
        f.write("SGLANG_NCCL_WAIT_SECS=1\n")
    assert Unit().serve(node) == [137, 78]
    (line,) = node.errors()
    assert "NCCL transport is unknown" in line and "Using network Libfabric" in line


def test_no_nccl_line_yet_only_warns_then_keeps_watching(tmp_path: Path) -> None:
    """No rank initialized NCCL within the bound (a peer node still pulling its image): one
    WARNING, the server keeps running, and a later socket fallback is still caught."""
    node = Node(tmp_path, node_rank=1)
    node.nccl_log(make_logs.SGLANG_START + "\n")
    with (node.root / "etc/sglang/node.env").open("a") as f:
        f.write("SGLANG_NCCL_WAIT_SECS=1\n")
    proc = node.start(["sglang-server-run", "0"], node.log)
    try:
        wait_for(lambda: "no NCCL network line after 1 s" in node.log.read_text(), "the warning")
        assert proc.poll() is None and node.errors() == [] and not node.marker.exists()
        node.nccl_log((FIXTURES / "nccl-ofi-missing.log").read_text())
        assert proc.wait(timeout=60) == 137
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (line,) = node.errors()
    assert "NCCL transport is socket" in line and node.marker.exists()
    assert node.log.read_text().count("WARNING") == 1


def test_rank0_ready_check_reports_efa_and_marks_ready(tmp_path: Path) -> None:
    node = Node(tmp_path, node_rank=0)
    node.nccl_log((FIXTURES / "constructed" / "efa-ofi-1.9-p4d.log").read_text())
    (node.fake / "healthy").touch()
    server = node.start(["sglang-server-run", "0"], node.log)
    try:
        assert node.run(["sglang-wait-ready", "0", "100", "0.1"], node.ready_log) == 0
        assert (node.root / "run/sglang/server-0.ready").read_text() == "ready\n"
        assert "NCCL transport: efa" in node.ready_log.read_text()
    finally:
        node.run(["docker", "kill", "sglang-server-0"], tmp_path / "stop.log")
        server.wait(timeout=60)
    argv = next(c for c in node.calls("docker") if c.startswith("run"))
    assert "--dist-init-addr 10.0.1.10:20000" in argv  # rank 0 read its own IP from IMDS


def test_rank0_off_efa_is_never_ready(tmp_path: Path) -> None:
    """The watcher kills the server; the ready check (restarted with it through PartOf=) sees
    the marker and fails: no ready file, so nothing reports the server as fine."""
    node = Node(tmp_path, node_rank=0)
    node.nccl_log((FIXTURES / "nccl-default.log").read_text())
    (node.fake / "healthy").touch()
    assert Unit().serve(node) == [137, 78]
    assert node.run(["sglang-wait-ready", "0", "100", "0.1"], node.ready_log) == 1
    assert "not ready: NCCL is not on EFA" in node.ready_log.read_text()
    assert not (node.root / "run/sglang/server-0.ready").exists()


def test_rank0_ready_check_catches_what_the_watcher_did_not(tmp_path: Path) -> None:
    """The server answers and only then a rank logs a socket init: the final reading of the
    ready check stops it (same ERROR line, in the ready log) and never marks it ready."""
    node = Node(tmp_path, node_rank=0)
    efa = (FIXTURES / "constructed" / "efa-ofi-1.17-p5.log").read_text()
    node.nccl_log(efa)
    server = node.start(["sglang-server-run", "0"], node.log)
    try:
        wait_for(lambda: "NCCL transport: efa" in node.log.read_text(), "the watcher's efa line")
        node.nccl_log(efa + "ip-10-0-1-10:1205:1205 [4] NCCL INFO Using network Socket\n")
        (node.fake / "healthy").touch()
        assert node.run(["sglang-wait-ready", "0", "100", "0.1"], node.ready_log) == 1
        assert server.wait(timeout=60) == 137
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert "NCCL transport is socket, not EFA" in node.ready_log.read_text()
    assert node.marker.exists() and not (node.root / "run/sglang/server-0.ready").exists()


def test_without_require_efa_the_ready_check_only_warns(tmp_path: Path) -> None:
    node = Node(tmp_path, node_rank=0, require_efa=False)
    assert "SGLANG_REQUIRE_EFA=0" in (node.root / "etc/sglang/node.env").read_text()
    node.nccl_log((FIXTURES / "nccl-ofi-missing.log").read_text())
    (node.fake / "healthy").touch()
    server = node.start(["sglang-server-run", "0"], node.log)
    try:
        assert node.run(["sglang-wait-ready", "0", "100", "0.1"], node.ready_log) == 0
    finally:
        node.run(["docker", "kill", "sglang-server-0"], tmp_path / "stop.log")
        server.wait(timeout=60)
    assert "WARNING: server 0: NCCL transport is socket, not EFA" in node.ready_log.read_text()
    assert not node.marker.exists()


def test_a_classifier_that_does_not_run_is_reported_not_taken_for_a_fallback(tmp_path: Path) -> None:
    """``sglang-nccl-transport`` itself fails (here: a copy that is a SyntaxError on the node's
    Python, what an ``ast.unparse`` minifier on a 3.12 deployer shipped): the watcher prints no
    transport word. That says nothing about NCCL, so the watcher reports the broken check with
    one ERROR line and leaves the server running, with no marker (before: "NCCL transport is ,
    not EFA", the container killed and every later start refused)."""
    node = Node(tmp_path, node_rank=1)
    node.nccl_log((FIXTURES / "constructed" / "efa-ofi-1.17-p5.log").read_text())
    Node._exe(
        node.root / "usr/local/bin/sglang-nccl-transport",
        "#!/bin/sh\necho '  File \"sglang-nccl-transport\", line 29' >&2\n"
        "echo 'SyntaxError: f-string: unmatched (' >&2\nexit 1\n",
    )
    proc = node.start(["sglang-server-run", "0"], node.log)
    try:
        wait_for(lambda: node.errors() != [], "the ERROR line")
        time.sleep(0.5)  # a kill would come right after the line
        assert proc.poll() is None  # the container still runs
    finally:
        node.run(["docker", "stop", "--time", "30", "sglang-server-0"], tmp_path / "stop.log")
        proc.wait(timeout=60)
    (line,) = node.errors()
    assert "sglang-nccl-transport did not run (SyntaxError: f-string: unmatched ()" in line, line
    assert "NOT checked" in line
    assert not node.marker.exists() and [c for c in node.calls("docker") if c.startswith("kill")] == []


def test_final_reading_without_a_container_gives_no_verdict(tmp_path: Path) -> None:
    """Rank 0's ready check takes its final reading just as the container goes away (it crashed,
    or a group restart removed it, right after it answered): ``docker logs`` finds no container.
    That is no evidence about NCCL: one ERROR line, exit 1, and no marker that would refuse the
    next start of a server that may be on EFA (before: "NCCL transport is unknown", marker)."""
    node = Node(tmp_path, node_rank=0)
    node.nccl_log((FIXTURES / "constructed" / "efa-ofi-1.17-p5.log").read_text())
    out = tmp_path / "once.log"
    assert node.run(["sglang-transport-check", "0", "--once"], out) == 1
    (line,) = [x for x in out.read_text().splitlines() if "ERROR:" in x]
    assert "no NCCL transport verdict: cannot read the log of sglang-server-0" in line, line
    assert "No such container" in line
    assert not node.marker.exists() and [c for c in node.calls("docker") if c.startswith("kill")] == []
