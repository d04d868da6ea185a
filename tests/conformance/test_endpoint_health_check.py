"""The load balancer's health check against the real sglang-router 0.3.2 binary on loopback.

The target group of ``endpoint: https`` checks the router with an HTTP GET of the plan's
``endpoint.load_balancer.health_check.path`` and counts the target healthy on its ``matcher``.
An ALB health check sends no ``Authorization`` header, so with ``router_api_key`` set the path
must answer without the key, and it must answer the matcher only once a worker is healthy.

The router runs with the prod-tp16-https stack's rendered argv for ``gateway: sglang-router``
(the smg default's ``/readiness``, 503 without a healthy worker and 200 with one, is asserted
with the real smg binary in ``test_gateway_live.py``), addresses rewritten to loopback
and ``--api-key`` appended as ``sglang-router-run`` does when the stack sets the key. The worker
is ``mock_worker.py``, a stand-in (a real SGLang server needs GPUs), started late so the router
first runs with no healthy worker. Every wait is bounded; the processes are killed at the end.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conformance.conftest import HERE, ROUTER_PYTHON, gateway_plan_json, require

API_KEY = "sk-endpoint-health-check-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str, data: bytes | None = None) -> int:
    """Status of a GET (POST with ``data``) without any header, as an ALB health check sends it."""
    try:
        req = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"} if data else {}
        )
        with urllib.request.urlopen(req, timeout=3) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


def _wait_for(url: str, want: int, seconds: float) -> int:
    end = time.monotonic() + seconds
    got = 0
    while time.monotonic() < end:
        got = _status(url)
        if got == want:
            return got
        time.sleep(0.3)
    return got


def test_health_check_path_follows_worker_health_without_the_api_key(tmp_path: Path, procs: list) -> None:
    doc = gateway_plan_json("prod-tp16-https", "sglang-router")
    hc = doc["endpoint"]["load_balancer"]["health_check"]
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    argv = list(router["processes"][0]["argv"])
    # The target group forwards to the port the router listens on.
    assert argv[argv.index("--port") + 1] == str(doc["endpoint"]["load_balancer"]["target"]["port"])
    (url,) = doc["outputs"]["server_urls"].values()
    worker_port, port, prom = _free_port(), _free_port(), _free_port()
    argv[argv.index(url)] = f"http://127.0.0.1:{worker_port}"
    for flag, value in (
        ("--host", "127.0.0.1"),
        ("--port", str(port)),
        ("--prometheus-host", "127.0.0.1"),
        ("--prometheus-port", str(prom)),
    ):
        argv[argv.index(flag) + 1] = value
    log = (tmp_path / "router.log").open("w")
    procs.append(
        subprocess.Popen(
            [str(require(ROUTER_PYTHON)), *argv[1:], "--api-key", API_KEY], stdout=log, stderr=log
        )
    )
    base = f"http://127.0.0.1:{port}"
    check = f"{base}{hc['path']}"
    matcher = int(hc["matcher"])

    # No healthy worker yet: the router is up (/health answers 200, so it would be a useless
    # probe) but the health-check path does not answer the matcher.
    assert _wait_for(f"{base}/health", 200, 20) == 200, (tmp_path / "router.log").read_text()[-2000:]
    assert _status(check) == 503

    procs.append(
        subprocess.Popen([sys.executable, str(HERE / "mock_worker.py"), str(worker_port), doc["model"]])
    )
    # Healthy worker: the path answers the matcher without the API key (an ALB sends none),
    # while a request to the API without the key is still refused.
    assert _wait_for(check, matcher, 30) == matcher
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    assert _status(f"{base}/v1/chat/completions", body) == 401
