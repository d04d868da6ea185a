"""The real sglang-router 0.3.2 binary, started with a rendered argv on loopback.

The argv is the tp8-dp2 stack's router argv with only addresses changed: host and ports to free
loopback ports, worker URLs to mock workers (``mock_worker.py``: SGLang servers need GPUs), and
a 3 s start-up timeout so the second worker, started late, is dropped by the router, and
``--api-key`` as ``sglang-router-run`` appends it when the stack sets router_api_key. Then
``userdata/sglang-router-sync`` (the script the router node runs, reading the key from the
secrets file; a stand-in ``systemctl`` first on PATH gives it the router's start time) must add
the worker back once the router's own attempt is over, a chat request with the key must reach a worker and
one without it must be refused. Every wait is bounded; processes are killed at
the end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conformance.conftest import HERE, ROUTER_PYTHON, gateway_plan_json, require
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


API_KEY = "sk-test-router-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _get(url: str, timeout: float = 3) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=AUTH), timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {}
    try:
        return status, json.loads(body)
    except ValueError:  # /liveness answers plain "OK"
        return status, {}


def _wait(pred, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    return False


def _replace_value(argv: list[str], flag: str, value: str) -> None:
    argv[argv.index(flag) + 1] = value


def test_router_serves_and_sync_readds_a_late_worker(tmp_path: Path, procs: list) -> None:
    doc = gateway_plan_json("tp8-dp2", "sglang-router")
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    argv = list(router["processes"][0]["argv"])
    urls = list(doc["outputs"]["server_urls"].values())
    assert len(urls) == 2
    model = doc["model"]

    worker_ports = [_free_port() for _ in urls]
    local_urls = [f"http://127.0.0.1:{p}" for p in worker_ports]
    i = argv.index("--worker-urls")
    argv[i + 1 : i + 1 + len(urls)] = local_urls
    port, prom = _free_port(), _free_port()
    _replace_value(argv, "--host", "127.0.0.1")
    _replace_value(argv, "--port", str(port))
    _replace_value(argv, "--prometheus-host", "127.0.0.1")
    _replace_value(argv, "--prometheus-port", str(prom))
    _replace_value(argv, "--worker-startup-timeout-secs", "3")
    argv += ["--worker-startup-check-interval", "1"]
    argv_file = tmp_path / "router.argv"
    argv_file.write_text("\n".join(argv) + "\n")
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"SGLANG_ROUTER_API_KEY={API_KEY}\n")

    mock = [sys.executable, str(HERE / "mock_worker.py")]
    procs.append(subprocess.Popen([*mock, str(worker_ports[0]), model]))
    log = (tmp_path / "router.log").open("w")
    cmd = [str(require(ROUTER_PYTHON)), *argv[1:], "--api-key", API_KEY]
    started = time.monotonic()
    procs.append(subprocess.Popen(cmd, stdout=log, stderr=log))
    # A stand-in systemctl tells the sync when systemd started the router (CLOCK_MONOTONIC usec).
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text(f"#!/bin/sh\necho {int(started * 1e6)}\n")
    (bindir / "systemctl").chmod(0o755)
    base = f"http://127.0.0.1:{port}"
    assert _wait(lambda: _get(f"{base}/liveness")[0] == 200, 20), "router did not start"

    def healthy() -> set[str]:
        return {w["url"] for w in _get(f"{base}/workers")[1].get("workers", []) if w.get("is_healthy")}

    assert _wait(lambda: healthy() == {local_urls[0]}, 15), healthy()
    time.sleep(4)  # past the 3 s start-up timeout: the router gave up on the second worker
    assert local_urls[1] not in healthy()
    # The sync leaves the router's own attempt alone for timeout + 2 check intervals (5 s).
    time.sleep(max(0.0, started + 5.5 - time.monotonic()))

    procs.append(subprocess.Popen([*mock, str(worker_ports[1]), model]))
    sync = subprocess.run(
        [
            sys.executable,
            str(ROOT / "userdata" / "sglang-router-sync"),
            "--once",
            "--argv",
            str(argv_file),
            "--secrets",
            str(secrets),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": f"{bindir}:/usr/bin:/bin"},
    )
    assert sync.returncode == 0, sync.stderr
    assert f"re-added worker {local_urls[1]}" in sync.stderr
    assert _wait(lambda: healthy() == set(local_urls), 20), healthy()

    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    url = f"{base}/v1/chat/completions"
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **AUTH})
    with urllib.request.urlopen(req, timeout=10) as r:
        reply = json.loads(r.read())
    assert reply["choices"][0]["message"]["content"].startswith("mock worker ")
    assert _get(f"{base}/readiness")[0] == 200
    anonymous = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(anonymous, timeout=10)
    assert refused.value.code == 401
    log.flush()
    # The key reaches the router on its command line only: never its log or the sync's output.
    assert API_KEY not in (tmp_path / "router.log").read_text()
    assert API_KEY not in sync.stderr
