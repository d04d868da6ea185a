"""A real Slurm on this machine: Debian's ``slurmctld`` and two ``slurmd`` daemons as two nodes.

``tools/setup-conformance.sh`` installs Debian bookworm's ``slurmctld``, ``slurmd`` and
``slurm-client`` (22.05.8). Debian builds slurmd so that several daemons run on one host
(``slurmd -N NODENAME``, each node with its own ``Port=``, checked 2026-11-21: ``sinfo -N`` lists
both nodes idle and a two-node job's ``srun`` runs one task in each daemon). Each node gets its
own loopback address as ``NodeAddr`` (``127.0.0.2``, ``127.0.0.3``: Linux answers the whole
127.0.0.0/8 on ``lo``), so a job sees two nodes with two addresses, as on a real cluster.

Everything lives in a temporary directory: ``AuthType=auth/none`` and ``CredType=cred/none``
(no munge), ``proctrack/pgid`` and ``task/none`` (no cgroups in this sandbox), no accounting,
the daemons in the foreground under this process, killed by :meth:`LocalSlurm.stop`. Every wait is
bounded. Each node declares 8 ``gpu`` GRES with no device files, so ``--gpus-per-node=8`` is
scheduled the way ParallelCluster's GPU nodes schedule it (there are no GPUs here).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NODES = {"n1": "127.0.0.2", "n2": "127.0.0.3"}
"""Node name -> NodeAddr of the two nodes."""

SLURM_TOOLS = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "srun", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_slurm() -> None:
    """Fail (never skip) when Debian's Slurm is missing."""
    missing = [t for t in SLURM_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: run tools/setup-conformance.sh "
            "(installs Debian's slurmctld/slurmd/slurm-client)"
        )


@dataclass
class LocalSlurm:
    """A running two-node Slurm cluster in ``root``.

    Attributes:
        root: scratch directory (config, state, spool, logs).
        conf: path of ``slurm.conf`` (``SLURM_CONF`` of every command).
        procs: the daemons.
    """

    root: Path
    conf: Path = field(init=False)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conf = self.root / "slurm.conf"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for Slurm commands against this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf), **extra}

    def run(self, *argv: str, timeout: float = 30, env: Mapping[str, str] | None = None) -> str:
        """Run a Slurm client command (``env``: extra variables); its stdout (raises on failure)."""
        proc = subprocess.run(
            argv,
            env=self.env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def start(self) -> LocalSlurm:
        """Write the config, start slurmctld and both slurmd, wait (bounded) for idle nodes."""
        for d in ("state", "spool", "spool/n1", "spool/n2", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        ctld_port = _free_port()
        node_lines = [
            f"NodeName={name} NodeHostname=localhost NodeAddr={addr} Port={_free_port()} "
            "CPUs=1 RealMemory=1000 Gres=gpu:8 State=UNKNOWN"
            for name, addr in NODES.items()
        ]
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=sglangtest",
                    "SlurmctldHost=localhost",
                    f"SlurmctldPort={ctld_port}",
                    "AuthType=auth/none",
                    "CredType=cred/none",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    f"StateSaveLocation={r}/state",
                    f"SlurmdSpoolDir={r}/spool/%n",
                    f"SlurmctldPidFile={r}/slurmctld.pid",
                    f"SlurmdPidFile={r}/slurmd-%n.pid",
                    f"SlurmctldLogFile={r}/log/slurmctld.log",
                    f"SlurmdLogFile={r}/log/slurmd-%n.log",
                    "ProctrackType=proctrack/pgid",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "SchedulerType=sched/builtin",
                    "MpiDefault=none",
                    "GresTypes=gpu",
                    "ReturnToService=2",
                    "KillWait=5",
                    "MinJobAge=300",
                    *node_lines,
                    f"PartitionName=gpu Nodes={','.join(NODES)} Default=YES MaxTime=30 State=UP",
                    "",
                ]
            )
        )
        # gres/gpu counts character devices: eight links to /dev/null stand in for /dev/nvidia[0-7].
        devices = self.root / "dev"
        devices.mkdir(exist_ok=True)
        for i in range(8):
            link = devices / f"nvidia{i}"
            if not link.exists():
                link.symlink_to("/dev/null")
        (self.root / "gres.conf").write_text(
            "".join(f"NodeName={n} Name=gpu File={devices}/nvidia[0-7]\n" for n in NODES)
        )
        env = self.env()
        log = (self.root / "log" / "daemons.out").open("ab")
        self.procs.append(subprocess.Popen(["slurmctld", "-D", "-i"], env=env, stdout=log, stderr=log))
        self._wait(lambda: self._ok("scontrol", "ping"), 30, "slurmctld did not answer")
        for name in NODES:
            self.procs.append(subprocess.Popen(["slurmd", "-D", "-N", name], env=env, stdout=log, stderr=log))
        self._wait(self._nodes_idle, 60, "the slurmd nodes did not become idle")
        return self

    def _ok(self, *argv: str) -> bool:
        try:
            self.run(*argv, timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def nodes_idle(self) -> bool:
        """Both nodes are idle."""
        return self._nodes_idle()

    def _nodes_idle(self) -> bool:
        try:
            out = self.run("sinfo", "-N", "-h", "-o", "%N %t", timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        states = dict(line.split() for line in out.splitlines() if line.strip())
        return all(states.get(n) == "idle" for n in NODES)

    def _wait(self, pred: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.5)
        logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted((self.root / "log").glob("*")))
        raise AssertionError(f"{what} within {seconds} s\n{logs}")

    def wait_for(self, pred: Callable[[], bool], seconds: float, what: str) -> None:
        """Poll ``pred`` every 0.5 s until true; fail with the daemon logs after ``seconds``."""
        self._wait(pred, seconds, what)

    def job_state(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` fields of ``job_id`` ({} once Slurm forgot it)."""
        try:
            out = self.run("scontrol", "show", "job", "-o", job_id, timeout=10)
        except RuntimeError:
            return {}
        fields: dict[str, str] = {}
        for token in out.split():
            if "=" in token:
                k, v = token.split("=", 1)
                fields.setdefault(k, v)
        return fields

    def stop(self) -> None:
        """Cancel every job (bounded wait for the queue to drain), stop the daemons (TERM, then
        KILL after 10 s), then kill any process still carrying this cluster's ``SLURM_CONF``
        (orphaned slurmstepd, a leaked stand-in) so no test run leaks into the next."""
        try:
            self.run("scancel", "--user", "root", timeout=10)
            deadline = time.monotonic() + 30
            while self.run("squeue", "-h", timeout=10).strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        for p in reversed(self.procs):
            p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        mark = f"SLURM_CONF={self.conf}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if mark in (proc / "environ").read_bytes().split(b"\0"):
                    os.kill(int(proc.name), 9)
            except OSError:
                pass
