"""``sglang-router-sync`` in front of the real sglang-router 0.3.2 binary on loopback: it must not
pile add jobs onto the router while the router (or an earlier add) is still trying a worker.

Measured with this binary (2026-11-21): ``POST /workers`` answers 202 "Worker addition queued"
at once, ``GET /workers`` does not list the pending URL, and a second POST for a pending URL
starts a second add job (one of the two later fails with "Worker ... already exists").

Setup as in ``test_router_live.py``: the tp8-dp2 stack's router argv with loopback addresses,
mock workers (``mock_worker.py``: SGLang servers need GPUs) and short start-up timeouts. The
sync runs as the router node runs it (a long-lived process), talking to the router through a
loopback proxy that counts every ``POST /workers``; a stand-in ``systemctl`` first on PATH
reports the router's start time as systemd would (``ActiveEnterTimestampMonotonic``, the
CLOCK_MONOTONIC this test reads with ``time.monotonic()``). Every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conformance.conftest import HERE, ROUTER_PYTHON, gateway_plan_json, require
from tests.conformance.test_router_live import _free_port, _replace_value, _wait
from tests.conftest import ROOT


class CountingProxy:
    """Forwards GET/POST to the router; records ``(monotonic time, url)`` of each worker POST."""

    def __init__(self, target: str) -> None:
        self.posts: list[tuple[float, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self, body: bytes | None) -> None:
                req = urllib.request.Request(target + self.path, data=body, method=self.command)
                for h in ("Content-Type", "Authorization"):
                    if self.headers.get(h):
                        req.add_header(h, self.headers[h])
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        code, data = r.status, r.read()
                except urllib.error.HTTPError as e:
                    code, data = e.code, e.read()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/workers":
                    proxy.posts.append((time.monotonic(), json.loads(body)["url"]))
                self._forward(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def urls(self) -> list[str]:
        return [u for _, u in self.posts]


SYNC_COMMAND = [sys.executable, str(ROOT / "userdata" / "sglang-router-sync")]
"""How the sync runs (``test_node_python.py`` swaps in the shipped text on Python 3.10)."""


def _setup(tmp_path: Path, procs: list, timeout: int, check: int) -> dict:
    """Start worker 0 and the router; return ports, URLs, the proxy and the sync command."""
    doc = gateway_plan_json("tp8-dp2", "sglang-router")
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    argv = list(router["processes"][0]["argv"])
    model = doc["model"]
    n = len(doc["outputs"]["server_urls"])
    ports = [_free_port() for _ in range(n)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    i = argv.index("--worker-urls")
    argv[i + 1 : i + 1 + n] = urls
    port = _free_port()
    _replace_value(argv, "--host", "127.0.0.1")
    _replace_value(argv, "--port", str(port))
    _replace_value(argv, "--prometheus-host", "127.0.0.1")
    _replace_value(argv, "--prometheus-port", str(_free_port()))
    _replace_value(argv, "--worker-startup-timeout-secs", str(timeout))
    argv += ["--worker-startup-check-interval", str(check)]
    mock = [sys.executable, str(HERE / "mock_worker.py")]
    procs.append(subprocess.Popen([*mock, str(ports[0]), model]))
    log = (tmp_path / "router.log").open("w")
    started = time.monotonic()
    procs.append(subprocess.Popen([str(require(ROUTER_PYTHON)), *argv[1:]], stdout=log, stderr=log))
    base = f"http://127.0.0.1:{port}"
    proxy = CountingProxy(base)
    # The sync reads the router's port from its argv file: point it at the proxy.
    sync_argv = list(argv)
    _replace_value(sync_argv, "--port", str(proxy.port))
    (tmp_path / "router.argv").write_text("\n".join(sync_argv) + "\n")
    # systemd's view of the router's start (usec of CLOCK_MONOTONIC), as `systemctl show` prints.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text(f"#!/bin/sh\necho {int(started * 1e6)}\n")
    (bindir / "systemctl").chmod(0o755)
    sync_log = (tmp_path / "sync.log").open("w")
    sync = [
        *SYNC_COMMAND,
        "--interval",
        "0.3",
        "--argv",
        str(tmp_path / "router.argv"),
        "--secrets",
        str(tmp_path / "none.env"),
    ]
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    return {
        "base": base,
        "urls": urls,
        "ports": ports,
        "model": model,
        "proxy": proxy,
        "start_sync": lambda: procs.append(subprocess.Popen(sync, stdout=sync_log, stderr=sync_log, env=env)),
        "mock": mock,
        "started": started,
    }


def _healthy(base: str) -> set[str]:
    try:
        with urllib.request.urlopen(f"{base}/workers", timeout=3) as r:
            workers = json.loads(r.read()).get("workers", [])
    except (OSError, ValueError):
        return set()
    return {w["url"] for w in workers if w.get("is_healthy")}


def test_no_add_job_while_the_router_still_tries_a_slow_initial_worker(tmp_path: Path, procs: list) -> None:
    """Worker 1 comes up after the router answers but inside the router's own start-up
    attempt (20 s + 2 s checks): the router adds it itself; the sync posts nothing. The old
    sync re-posted every cycle while ``GET /workers`` lacked it."""
    s = _setup(tmp_path, procs, timeout=20, check=2)
    s["start_sync"]()
    base, urls = s["base"], s["urls"]
    assert _wait(lambda: _healthy(base) == {urls[0]}, 20), _healthy(base)
    # The router answers and lacks worker 1: exactly the window in which the old sync posted.
    time.sleep(2)
    assert urls[1] not in _healthy(base)
    procs.append(subprocess.Popen([*s["mock"], str(s["ports"][1]), s["model"]]))
    assert _wait(lambda: _healthy(base) == set(urls), 20), (tmp_path / "router.log").read_text()[-3000:]
    time.sleep(1)  # a few more sync cycles with the full list
    assert s["proxy"].urls() == [], (tmp_path / "sync.log").read_text()


def test_a_dropped_worker_gets_one_add_job_that_is_not_repeated_while_pending(
    tmp_path: Path, procs: list
) -> None:
    """The router drops worker 1 (5 s + 1 s checks); the sync posts it once after the router's
    own attempt; while that add job is pending (worker still down), no second POST; the worker
    comes up and the pending job adds it. (With this binary an add job for a down worker ran
    3.8 s with 3 s + 1 s settings, so 5 s leaves the job pending well past the worker's start.)"""
    s = _setup(tmp_path, procs, timeout=5, check=1)
    s["start_sync"]()
    base, urls, proxy = s["base"], s["urls"], s["proxy"]
    assert _wait(lambda: _healthy(base) == {urls[0]}, 20), _healthy(base)
    assert _wait(lambda: len(proxy.posts) >= 1, 30), (tmp_path / "sync.log").read_text()
    first_post = proxy.posts[0][0]
    assert first_post - s["started"] >= 5 + 2 * 1 - 0.01  # not before the router's own attempt ran out
    time.sleep(1.2)  # four sync cycles with the job pending and the worker still down
    procs.append(subprocess.Popen([*s["mock"], str(s["ports"][1]), s["model"]]))
    assert _wait(lambda: _healthy(base) == set(urls), 20), (tmp_path / "router.log").read_text()[-3000:]
    time.sleep(1)
    assert proxy.urls() == [urls[1]], (tmp_path / "sync.log").read_text()
