"""A small stand-in for systemd's service manager, enough to rehearse group restart on loopback.

This machine runs no systemd as PID 1, so this module plays its part for a few units of one or
more "nodes": it runs a unit's ``ExecStartPre=`` commands in order, then ``ExecStart=``, then
``ExecStopPost=`` (with ``SERVICE_RESULT`` and ``EXIT_STATUS`` set as systemd sets them), honours
``Restart=always`` / ``Restart=on-failure`` after ``RestartSec`` and ``RestartPreventExitStatus=``, and stops a unit with SIGTERM then SIGKILL to the
process group (``docker stop`` does the same to a container). A fake ``systemctl`` placed first on
PATH forwards ``systemctl restart|start|stop [--no-block] UNIT`` from the scripts under test to
the node's manager. :meth:`Node.crash` kills every process of a node without running
``ExecStopPost`` (power loss or reboot), and wipes its ``/run`` directory (a tmpfs).

Unit files are parsed from ``userdata/`` (:func:`unit_lines`), so the rehearsal runs the commands
the real units name.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any


def unit_lines(path: Path) -> dict[str, list[str]]:
    """``{key: [values in file order]}`` of a unit file or drop-in (sections merged)."""
    out: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def command(value: str, slot: str, binaries: dict[str, list[str]]) -> list[str]:
    """An ``Exec*=`` value as argv: ``-`` prefix dropped, ``%i`` expanded, paths mapped."""
    argv = shlex.split(value.lstrip("-").replace("%i", slot))
    return [*binaries.get(argv[0], [argv[0]]), *argv[1:]]


@dataclass
class Unit:
    """One service: its commands and restart policy."""

    name: str
    main: list[str]
    pre: list[list[str]] = field(default_factory=list)
    post: list[list[str]] = field(default_factory=list)
    restart: str = "no"
    restart_sec: float = 1.0
    prevent: frozenset[int] = frozenset()
    """``RestartPreventExitStatus=``: exit statuses that are final whatever ``restart`` says."""
    stop_timeout: float = 5.0


class Service:
    """A running unit: a thread that walks ExecStartPre -> ExecStart -> ExecStopPost."""

    def __init__(self, unit: Unit, env: dict[str, str], log: IO[bytes]) -> None:
        self.unit, self.env, self.log = unit, env, log
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.main_pid = 0
        self.state = "inactive"
        self.stopping = threading.Event()
        self.crashed = False
        self.thread: threading.Thread | None = None
        self.starts = 0

    def start(self) -> None:
        with self.lock:
            if self.thread and self.thread.is_alive():
                return
            self.stopping.clear()
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def _exec(self, argv: list[str], extra: dict[str, str] | None = None, main: bool = False) -> int:
        with self.lock:
            if self.stopping.is_set() and not extra:
                return -1
            self.proc = subprocess.Popen(
                argv,
                env={**self.env, **(extra or {})},
                stdout=self.log,
                stderr=self.log,
                start_new_session=True,
            )
            if main:
                self.main_pid, self.state = self.proc.pid, "active"
        rc = self.proc.wait()
        with self.lock:
            self.proc = None
            self.main_pid = 0
        return rc

    def _run(self) -> None:
        while True:
            self.state, rc = "activating", 0
            self.starts += 1
            for cmd in self.unit.pre:
                rc = self._exec(cmd)
                if rc != 0:
                    break
            if rc == 0:
                rc = self._exec(self.unit.main, main=True)
            if self.crashed:
                return
            self.state = "deactivating"
            result = "success" if rc == 0 else ("signal" if rc < 0 else "exit-code")
            for cmd in self.unit.post:
                self._exec(cmd, {"SERVICE_RESULT": result, "EXIT_STATUS": str(rc)})
            if (
                self.stopping.is_set()
                or rc in self.unit.prevent
                or not (self.unit.restart == "always" or (self.unit.restart == "on-failure" and rc != 0))
            ):
                self.state = "inactive" if rc == 0 or self.stopping.is_set() else "failed"
                return
            self.state = "auto-restart"
            if self.stopping.wait(self.unit.restart_sec):
                self.state = "inactive"
                return

    def _signal_current(self, sig: int) -> subprocess.Popen[bytes] | None:
        with self.lock:
            proc = self.proc
            if proc is not None and self.state in ("activating", "active"):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
                return proc
        return None

    def stop(self) -> None:
        self.stopping.set()
        proc = self._signal_current(signal.SIGTERM)
        if proc is not None:
            try:
                proc.wait(self.unit.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal_current(signal.SIGKILL)
        if self.thread:
            self.thread.join(30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def crash(self) -> None:
        """Kill without ExecStopPost (the node lost power)."""
        self.crashed = True
        self.stopping.set()
        with self.lock:
            if self.proc is not None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.thread:
            self.thread.join(30)


class Node:
    """One node: its own /etc/sglang and /run/sglang directories, environment and services."""

    def __init__(self, name: str, root: Path, env: dict[str, str], units: list[Unit]) -> None:
        self.name, self.root, self.env, self.units = name, root, env, {u.name: u for u in units}
        self.run_dir = Path(env["SGLANG_RUN_DIR"])
        self.log = (root / "node.log").open("ab")
        self.services: dict[str, Service] = {}

    def service(self, unit: str) -> Service:
        if unit not in self.services:
            self.services[unit] = Service(self.units[unit], self.env, self.log)
        return self.services[unit]

    def boot(self) -> None:
        """Start every unit (what ``systemctl enable`` and ``Wants=`` do at boot)."""
        for name in self.units:
            self.service(name).start()

    def crash(self) -> None:
        for s in self.services.values():
            s.crash()
        self.services = {}
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def shutdown(self) -> None:
        for s in self.services.values():
            s.crash()

    def systemctl(self, argv: list[str]) -> tuple[int, str]:
        verb, names = argv[0], [a for a in argv[1:] if not a.startswith("-")]
        actions: dict[str, Callable[[Service], None]] = {
            "restart": Service.restart,
            "start": Service.start,
            "stop": Service.stop,
        }
        if verb not in actions or any(n not in self.units for n in names):
            return 1, f"fake systemctl: unsupported {argv}\n"
        for n in names:
            threading.Thread(target=actions[verb], args=(self.service(n),), daemon=True).start()
        return 0, ""


class Manager:
    """Serves the fake ``systemctl`` of every node; writes the fake binaries into ``bin_dir``."""

    def __init__(self, bin_dir: Path) -> None:
        self.nodes: dict[str, Node] = {}
        manager = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                rc, out = manager.nodes[req["node"]].systemctl(req["argv"])
                body = json.dumps({"rc": rc, "stdout": out}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        bin_dir.mkdir(parents=True, exist_ok=True)
        fake = bin_dir / "systemctl"
        fake.write_text(
            f"#!{sys.executable}\n"
            "import json, os, sys, urllib.request\n"
            "req = {'node': os.environ['FAKE_NODE'], 'argv': sys.argv[1:]}\n"
            "r = urllib.request.urlopen(os.environ['FAKE_SYSTEMD'], json.dumps(req).encode(), timeout=10)\n"
            "out = json.load(r)\n"
            "sys.stdout.write(out['stdout'])\n"
            "sys.exit(out['rc'])\n"
        )
        docker = bin_dir / "docker"
        docker.write_text("#!/bin/sh\nexit 0\n")  # `docker rm -f` of a stale container: nothing to do
        for f in (fake, docker):
            f.chmod(0o755)
        self.bin_dir = bin_dir

    def node_env(self, name: str) -> dict[str, str]:
        """Environment for the processes of node ``name`` (fake binaries first on PATH)."""
        return {
            **os.environ,
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "FAKE_SYSTEMD": self.url,
            "FAKE_NODE": name,
        }

    def add(self, node: Node) -> Node:
        self.nodes[node.name] = node
        return node

    def close(self) -> None:
        for n in self.nodes.values():
            n.shutdown()
        self.httpd.shutdown()
