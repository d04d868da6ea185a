"""The rendered Slurm serving job, run by a real Slurm on this machine.

Real: Debian's slurmctld and two slurmd "nodes" (``localslurm.py``: one machine, node addresses
127.0.0.2 and 127.0.0.3), ``sbatch``/``srun``/``scontrol``/``scancel``, bash, curl, ``ip``, the
EC2 nodes' NCCL transport classifier (``userdata/sglang-nccl-transport``) and the real
sglang-router 0.3.2 binary that the job registers its rank-0 URLs with (``POST /workers``).

Stood in: ``docker`` (``slurm_standin/docker``, first on the job's PATH). An SGLang server needs
GPUs and the serving image, which this machine has neither of, so ``docker run`` records its
argv and starts, outside the job's process tracking (as dockerd's containers are), an HTTP server
that plays the rank the argv describes on its node's address and ``--port``: rank 0 answers
``/health`` 503 at first and then 200, and it prints an NCCL INFO log (the constructed EFA one,
or a real socket-fallback capture). ``aws`` is never called (the image is not in ECR).

Asserted: per task the rank, ``--nnodes``, the head address and ports; the whole argv equal to
the EC2 backend's for the same layout; ranks >= 1 started before rank 0; the readiness loop
(``/health`` refused, retried, then ``/v1/models``); the router learning the rank-0 URL; NCCL off
EFA ending the job without requeue; a crashed rank requeueing the job; a node failure requeueing
it; and after each job no stand-in container process left and no job in the queue. Every wait is
bounded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.mockrun import STACKS_DIR, load_stack_config
from infra.planning.cluster import ClusterPlan, plan_cluster, server_node_boot
from infra.planning.slurm_job import SlurmJobSettings, render_job_script
from infra.program import region_of
from infra.spec import parse_config
from tests.conformance.conftest import ROUTER_PYTHON, require
from tests.conformance.localslurm import NODES, LocalSlurm, require_slurm
from tests.conftest import ROOT, STACKS

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "slurm_standin"
NCCL = ROOT / "tests" / "fixtures" / "nccl"
EFA_LOG = NCCL / "constructed" / "efa-ofi-1.17-p5.log"
SOCKET_LOG = NCCL / "nccl-default.log"
ADDRS = list(NODES.values())


def _plan(stack: str) -> ClusterPlan:
    cfg = load_stack_config(STACKS_DIR / f"Pulumi.{stack}.yaml")
    return plan_cluster(parse_config(cfg), stack, region_of(cfg))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    require_slurm()
    for addr in ADDRS:  # the jobs' servers bind these; a leftover of a killed run would answer
        with socket.socket() as probe:
            try:
                probe.bind((addr, 30000))
            except OSError as e:
                pytest.fail(f"{addr}:30000 is taken ({e}): a process of an earlier, killed run?")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


SUBMITTED: list[Job] = []


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """After each test, pass or fail: cancel its jobs and kill their stand-in containers."""
    yield
    while SUBMITTED:
        SUBMITTED.pop().kill_leftovers()


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Job:
    """One submitted job and its stand-in state."""

    def __init__(self, slurm: LocalSlurm, work: Path, script: str, **env: str) -> None:
        self.slurm, self.work = slurm, work
        self.standin = work / "standin"
        (work / "job.sh").write_text(script)
        # The EC2 nodes' classifier, executable as cloud-init installs it (0755).
        bindir = work / "bin"
        bindir.mkdir()
        shutil.copy(ROOT / "userdata" / "sglang-nccl-transport", bindir)
        (bindir / "sglang-nccl-transport").chmod(0o755)
        path = f"{STANDIN}:{bindir}:{os.environ['PATH']}"
        self.env = {
            "PATH": path,
            "STANDIN_DIR": str(self.standin),
            "STANDIN_ADDRS": " ".join(f"{n}={a}" for n, a in NODES.items()),
            "STANDIN_NCCL_LOG": str(EFA_LOG),
            "STANDIN_UNREADY": "2",
            "SGLANG_READY_INTERVAL": "1",
            "SGLANG_READY_TRIES": "60",
            "SGLANG_NCCL_POLL_SECS": "1",
            "SGLANG_NODE_LOG_DIR": str(work),
            "SGLANG_CACHE_DIR": str(work / "cache"),
            **env,
        }
        out = slurm.run("sbatch", "--parsable", f"--chdir={work}", str(work / "job.sh"), env=self.env)
        self.id = out.strip().split(";")[0]
        SUBMITTED.append(self)

    @property
    def output(self) -> str:
        files = list(self.work.glob(f"sglang-*-{self.id}.out"))
        return files[0].read_text(errors="replace") if files else ""

    def wait_output(self, pattern: str, seconds: float = 90) -> None:
        self.slurm.wait_for(
            lambda: re.search(pattern, self.output) is not None,
            seconds,
            f"job {self.id}: no {pattern!r} in its output:\n{self.output[-4000:]}",
        )

    def runs(self) -> list[dict[str, Any]]:
        return _jsonl(self.standin / "runs.jsonl")

    def live_containers(self, job: str | None = None) -> list[str]:
        """This job's (or job ``job``'s) stand-in containers still running, on any node."""
        live = []
        for p in (self.standin / "containers").glob("*/*.json"):
            state = json.loads(p.read_text())
            if state["labels"].get("sglang.slurm-job") != (job or self.id):
                continue
            pid = state["pid"]
            try:
                os.kill(pid, 0)
            except OSError:
                continue
            stat = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
            if stat != "Z":
                live.append(p.stem)
        return live

    def kill_leftovers(self) -> None:
        """After a failed test: cancel the job and kill its stand-in containers."""
        try:
            self.slurm.run("scancel", self.id)
        except RuntimeError:
            pass
        for p in (self.standin / "containers").glob("*/*.json"):
            try:
                os.killpg(json.loads(p.read_text())["pid"], signal.SIGKILL)
            except OSError:
                pass

    def cancel_and_check_clean(self) -> None:
        self.slurm.run("scancel", self.id)
        self.wait_gone()

    def wait_gone(self) -> None:
        self.slurm.wait_for(
            lambda: self.slurm.job_state(self.id).get("JobState") not in ("RUNNING", "COMPLETING", "PENDING"),
            60,
            f"job {self.id} did not end",
        )
        self.slurm.wait_for(
            lambda: not self.live_containers(), 30, f"containers left: {self.live_containers()}"
        )
        assert self.slurm.run("squeue", "-h", "-j", self.id).strip() == ""


def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _rank_argv(run: dict[str, Any]) -> list[str]:
    return list(run["cmd"])


@pytest.mark.parametrize("stack", STACKS)
def test_job_script_passes_shellcheck(stack: str, tmp_path: Path) -> None:
    """Every stack's rendered job (both runtimes) is shellcheck-clean (style level)."""
    import shutil
    import sys

    exe = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    plan = _plan(stack)
    for runtime in ("docker", "pyxis"):
        path = tmp_path / f"{runtime}.sh"
        path.write_text(
            render_job_script(plan.spec, plan, SlurmJobSettings(container_runtime=runtime))  # type: ignore[arg-type] # a Literal from the loop
        )
        proc = subprocess.run(
            [exe, "--severity=style", str(path)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout


def test_tp16_job_two_nodes_ranks_readiness_router_cleanup(slurm: LocalSlurm, tmp_path: Path) -> None:
    """prod-tp16 (one TP16 server over two nodes) under Slurm, registering with the real router."""
    plan = _plan("prod-tp16")
    key = "sk-slurm-test"
    keyfile = tmp_path / "router.key"
    keyfile.write_text(key + "\n")
    port, prom = _free_port(), _free_port()
    router_log = (tmp_path / "router.log").open("w")
    router = subprocess.Popen(
        [str(require(ROUTER_PYTHON)), "-m", "sglang_router.launch_router", "--host", "127.0.0.1",
         "--port", str(port), "--prometheus-host", "127.0.0.1", "--prometheus-port", str(prom),
         "--api-key", key, "--policy", "round_robin"],
        stdout=router_log, stderr=router_log,
    )  # fmt: skip
    try:
        hook = tmp_path / "hook"
        hook.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/hook.args\n")
        hook.chmod(0o755)
        # Another job's container on n1 (label sglang.slurm-job=999): cleanup must leave it alone.
        foreign = {
            **os.environ,
            "STANDIN_DIR": str(tmp_path / "standin"),
            "SLURMD_NODENAME": "n1",
            "STANDIN_ADDRS": "n1=127.0.0.2",
        }
        subprocess.run(
            [str(STANDIN / "docker"), "run", "--detach", "--name", "sglang-job999-s0",
             "--label", "sglang.slurm-job=999", "--entrypoint", "python3", "img", "-m",
             "sglang.launch_server", "--port", "31999"],
            env=foreign, check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        job = Job(
            slurm,
            tmp_path,
            render_job_script(plan.spec, plan),
            SGLANG_ROUTER_URL=f"http://127.0.0.1:{port}",
            SGLANG_ROUTER_API_KEY_FILE=str(keyfile),
            SGLANG_WORKERS_HOOK=str(hook),
        )
        job.wait_output(r"registered http://127\.0\.0\.2:30000")
        out = job.output
        runs = [r for r in job.runs() if r["labels"].get("sglang.slurm-job") == job.id]
        assert len(runs) == 2, runs
        by_node = {r["node"]: r for r in runs}
        # Rank 1 (second node) is started before rank 0 (first node).
        assert [r["node"] for r in runs] == ["n2", "n1"]
        for rank, (name, node) in enumerate(zip(NODES, plan.layout.nodes, strict=True)):
            argv = _rank_argv(by_node[name])
            assert argv[argv.index("--node-rank") + 1] == str(rank)
            assert argv[argv.index("--nnodes") + 1] == "2"
            assert argv[argv.index("--dist-init-addr") + 1] == "127.0.0.2:20000"
            assert argv[argv.index("--port") + 1] == "30000"
            # One source of truth: exactly the EC2 backend's argv with the head at 127.0.0.2.
            assert argv == server_node_boot(plan, node, "127.0.0.2").processes[0]
            opts = by_node[name]["opts"]
            for var in (
                "FI_PROVIDER=efa",
                "NCCL_NET_PLUGIN=ofi",
                "FI_EFA_USE_DEVICE_RDMA=1",
                "NCCL_DEBUG=INFO",
            ):
                assert var in opts
            assert "GLOO_SOCKET_IFNAME=lo" in opts and "NCCL_SOCKET_IFNAME=lo" in opts
            assert by_node[name]["labels"] == {"sglang.slurm-job": job.id}
            assert by_node[name]["addr"] == NODES[name]
        # The readiness loop: rank 0's /health refused twice, polled again, then /v1/models.
        paths = [
            r["path"]
            for r in _jsonl(job.standin / "requests.jsonl")
            if r["addr"] == "127.0.0.2" and r["rank"] == 0
        ]
        assert paths[:4] == ["/health", "/health", "/health", "/v1/models"], paths
        assert "waiting for http://127.0.0.2:30000" in out
        assert "ready: http://127.0.0.2:30000 answers /health and /v1/models" in out
        # require_efa: both nodes' ranks classified by the EC2 classifier.
        assert out.count("NCCL transport: efa") == 2, out
        # The real router learned the rank-0 URL (and only it).
        auth = {"Authorization": f"Bearer {key}"}
        urls = {w["url"] for w in _get(f"http://127.0.0.1:{port}/workers", auth)["workers"]}
        assert urls == {"http://127.0.0.2:30000"}
        assert (tmp_path / f"sglang-{job.id}" / "workers").read_text() == "http://127.0.0.2:30000\n"
        assert key not in out and not (tmp_path / f"sglang-{job.id}" / ".router-auth").exists()
        job.cancel_and_check_clean()
        # Cleanup took the worker out of the router again (DELETE /workers/ID).
        # The router removes a worker in the background after it answers 202: bounded wait.
        slurm.wait_for(
            lambda: _get(f"http://127.0.0.1:{port}/workers", auth)["workers"] == [],
            20,
            "the router still lists the job's worker",
        )
        assert "removed worker" in job.output
        removed = {r["node"] for r in _jsonl(job.standin / "removed.jsonl")}
        assert removed == {"n1", "n2"}
        assert (tmp_path / "hook.args").read_text() == "http://127.0.0.2:30000\n"
        assert job.live_containers("999") == ["sglang-job999-s0"]  # not this job's: untouched
        subprocess.run(
            [str(STANDIN / "docker"), "rm", "-f", "sglang-job999-s0"], env=foreign, check=True, timeout=30
        )
    finally:
        router.kill()
        router.wait(timeout=10)


def test_packed_servers_ports_and_gpus_per_task(slurm: LocalSlurm, tmp_path: Path) -> None:
    """tp2-dp8: eight TP2 servers, four per node, each node its own head; ports and GPU ids."""
    plan = _plan("tp2-dp8")
    job = Job(slurm, tmp_path, render_job_script(plan.spec, plan), STANDIN_UNREADY="1")
    job.wait_output(r"sglang-job\[n1\]: serving: ")
    runs = job.runs()
    assert len(runs) == 8
    for name, node in zip(NODES, plan.layout.nodes, strict=True):
        mine = sorted((r for r in runs if r["node"] == name), key=lambda r: r["name"])
        assert [r["name"] for r in mine] == [f"sglang-job{job.id}-s{slot}" for slot in range(4)]
        ec2 = server_node_boot(plan, node, NODES[name]).processes
        for run, argv in zip(mine, ec2, strict=True):
            assert run["cmd"] == argv
            assert "--nnodes" not in run["cmd"]
        ports = [r["cmd"][r["cmd"].index("--port") + 1] for r in mine]
        gpus = [r["cmd"][r["cmd"].index("--base-gpu-id") + 1] for r in mine]
        assert ports == ["30000", "30010", "30020", "30030"] and gpus == ["0", "2", "4", "6"]
    for addr in ADDRS:
        for port in (30000, 30010, 30020, 30030):
            assert f"ready: http://{addr}:{port} answers" in job.output
    assert "NCCL transport" not in job.output  # single-node servers: require_efa is off
    job.cancel_and_check_clean()


def test_nccl_on_sockets_ends_the_job_without_requeue(slurm: LocalSlurm, tmp_path: Path) -> None:
    """A real socket-fallback NCCL log on the ranks: the job stops, status 78, not requeued."""
    plan = _plan("prod-tp16")
    job = Job(
        slurm,
        tmp_path,
        render_job_script(plan.spec, plan),
        STANDIN_NCCL_LOG=str(SOCKET_LOG),
        STANDIN_UNREADY="1000",
    )
    job.wait_output(r"ends with status 78 and is not requeued")
    job.wait_gone()
    state = slurm.job_state(job.id)
    assert state.get("JobState") == "FAILED" and state.get("Restarts") == "0", state
    assert "NCCL transport is socket, not EFA" in job.output


def test_crashed_rank_requeues_the_job(slurm: LocalSlurm, tmp_path: Path) -> None:
    """Rank 1 exits 1 after the server is up: the job requeues itself; every rank restarts."""
    plan = _plan("prod-tp16")
    job = Job(
        slurm,
        tmp_path,
        render_job_script(plan.spec, plan),
        STANDIN_EXIT="1",
        STANDIN_EXIT_AFTER="4",
        STANDIN_UNREADY="0",
    )
    job.wait_output(r"requeueing the job \(restart 1 of 3\)")
    job.wait_output(r"job \d+ \(restart 1\) on n1 n2", seconds=240)
    assert slurm.job_state(job.id).get("Restarts") == "1"
    job.cancel_and_check_clean()


def test_node_failure_requeues_the_job(slurm: LocalSlurm, tmp_path: Path) -> None:
    """Node n2 marked DOWN while serving: Slurm kills and requeues the job (--requeue); the job's
    containers are gone from both nodes."""
    plan = _plan("prod-tp16")
    job = Job(slurm, tmp_path, render_job_script(plan.spec, plan), STANDIN_UNREADY="0")
    job.wait_output(r"serving: http://127\.0\.0\.2:30000")
    slurm.run("scontrol", "update", "nodename=n2", "state=down", "reason=test-node-failure")
    try:
        slurm.wait_for(lambda: slurm.job_state(job.id).get("Restarts") == "1", 60, "job not requeued")
        slurm.wait_for(lambda: not job.live_containers(), 60, f"containers left: {job.live_containers()}")
        slurm.wait_for(
            lambda: slurm.job_state(job.id).get("JobState") in ("PENDING", "CONFIGURING", "RUNNING"),
            60,
            f"job {job.id} not back in the queue: {slurm.job_state(job.id)}",
        )
        assert "DUE TO NODE FAILURE" in job.output
    finally:
        try:  # ReturnToService=2 may have brought it back already (then "resume" is refused)
            slurm.run("scontrol", "update", "nodename=n2", "state=resume")
        except RuntimeError:
            pass
    job.cancel_and_check_clean()
    slurm.wait_for(slurm.nodes_idle, 60, "n2 did not come back")
