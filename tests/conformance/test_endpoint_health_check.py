"""The load balancer's health check against the real gateway binaries on loopback.

The target group of ``endpoint: https`` checks the router with an HTTP GET of the plan's
``endpoint.load_balancer.health_check.path`` and counts the target healthy on its ``matcher``.
An ALB health check sends no ``Authorization`` header, so with ``router_api_key`` set the path
must answer without the key, and it must answer the matcher only once a worker is healthy.

Both gateways (smg, the default, and sglang-router 0.3.2) run with the prod-tp16-https stack's
rendered argv, addresses rewritten to loopback (smg: in its discovery manifest) and
``--api-key`` appended as ``sglang-router-run`` does when the stack sets the key. The worker is
``gateway_worker.py``, a stand-in (a real SGLang server needs GPUs), started late so the router
first runs with no healthy worker. Every wait is bounded; the processes are killed at the end.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from infra.planning.gateway import DISCOVERY_FILE
from tests.conformance.conftest import gateway_plan_json
from tests.conformance.gateway_harness import start_gateway, start_worker, write_tokenizer_dir
from tests.conformance.test_gateway_live import _written_files

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


@pytest.mark.parametrize("gateway", ["smg", "sglang-router"])
def test_health_check_path_follows_worker_health_without_the_api_key(
    gateway: str, tmp_path: Path, procs: list
) -> None:
    doc = gateway_plan_json("prod-tp16-https", gateway)
    hc = doc["endpoint"]["load_balancer"]["health_check"]
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    argv = list(router["processes"][0]["argv"])
    # The target group forwards to the port the router listens on.
    assert argv[argv.index("--port") + 1] == str(doc["endpoint"]["load_balancer"]["target"]["port"])
    (url,) = doc["outputs"]["server_urls"].values()
    worker_port, port, prom = _free_port(), _free_port(), _free_port()
    local = f"http://127.0.0.1:{worker_port}"
    if gateway == "smg":  # the worker is in the discovery manifest the plan writes
        manifest = _written_files(router["user_data"])[DISCOVERY_FILE].replace(f'"{url}"', f'"{local}"')
        (tmp_path / "workers.json").write_text(manifest)
        argv[argv.index("--discovery-file") + 1] = str(tmp_path / "workers.json")
    else:
        argv[argv.index(url)] = local
    for flag, value in (
        ("--host", "127.0.0.1"),
        ("--port", str(port)),
        ("--prometheus-host", "127.0.0.1"),
        ("--prometheus-port", str(prom)),
    ):
        argv[argv.index(flag) + 1] = value
    start_gateway(procs, [*argv, "--api-key", API_KEY], tmp_path / "router.log")
    base = f"http://127.0.0.1:{port}"
    check = f"{base}{hc['path']}"
    matcher = int(hc["matcher"])

    # No healthy worker yet: the router is up (/health answers 200, so it would be a useless
    # probe) but the health-check path does not answer the matcher.
    assert _wait_for(f"{base}/health", 200, 60) == 200, (tmp_path / "router.log").read_text()[-2000:]
    assert _status(check) == 503

    start_worker(
        procs, worker_port, doc["model"], write_tokenizer_dir(tmp_path / "tok"), tmp_path / "req.log"
    )
    # Healthy worker: the path answers the matcher without the API key (an ALB sends none),
    # while a request to the API without the key is still refused.
    # Bounded at 90 s: smg notices a manifest worker that was down at its start on its startup
    # poll (--worker-startup-check-interval, 30 s by default) and then needs a passing health
    # check (every 10 s); 30 s was a race on a loaded CI machine.
    assert _wait_for(check, matcher, 90) == matcher
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    assert _status(f"{base}/v1/chat/completions", body) == 401
