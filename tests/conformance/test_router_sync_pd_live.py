"""``sglang-router-sync`` re-adds PD workers that the real sglang-router 0.3.2 dropped.

With ``gateway: sglang-router`` a PD stack's router argv lists its workers as ``--prefill URL
BOOTSTRAP_PORT`` / ``--decode URL``, not ``--worker-urls``. When they are not healthy within
``--worker-startup-timeout-secs`` (a cold node, a server restarting while the router node
reboots), 0.3.2 drops them and stays up with none (``/readiness`` 503, every request 503, seen
on loopback). The sync must re-add them with their role and bootstrap port: a bare
``POST /workers {"url"}`` registers a prefill server as a ``regular`` worker.

The router is the real binary (``.tools/router-venv``) started with the argv
:func:`infra.planning.gateway.gateway_argv` renders for a prefill and a decode worker, with
loopback addresses, a 3 s start-up timeout and ``--worker-startup-check-interval 1`` (a real
0.3.2 flag) so the drop happens within the test. The workers are ``gateway_worker.py`` test
doubles (an SGLang server needs GPUs). A stand-in ``systemctl`` first on PATH reports the
router's start as systemd would. Every wait is bounded; every process is killed.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from infra.planning.gateway import Worker, gateway_argv
from infra.spec import parse_config
from tests.conformance.gateway_harness import (
    free_port,
    http,
    requests_seen,
    start_gateway,
    start_worker,
    wait_for,
    write_tokenizer_dir,
)
from tests.conformance.test_router_sync_live import SYNC_COMMAND
from tests.conftest import base_config

MODEL = "Qwen/Qwen2.5-72B-Instruct"


def _set(argv: list[str], flag: str, value: str) -> None:
    argv[argv.index(flag) + 1] = value


def test_sync_re_adds_dropped_prefill_and_decode_workers_with_their_roles(
    tmp_path: Path, procs: list
) -> None:
    pport, dport, bport, port = free_port(), free_port(), free_port(), free_port()
    prefill_url, decode_url = f"http://127.0.0.1:{pport}", f"http://127.0.0.1:{dport}"
    spec = parse_config(base_config(gateway="sglang-router", router_health_check_timeout_secs=2))
    argv = gateway_argv(spec, [Worker(prefill_url, "prefill", bport), Worker(decode_url, "decode")], 3)
    _set(argv, "--host", "127.0.0.1")
    _set(argv, "--port", str(port))
    _set(argv, "--prometheus-host", "127.0.0.1")
    _set(argv, "--prometheus-port", str(free_port()))
    argv += ["--worker-startup-check-interval", "1"]
    (tmp_path / "router.argv").write_text("\n".join(argv) + "\n")

    started = time.monotonic()
    start_gateway(procs, argv, tmp_path / "router.log")
    base = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: http("GET", f"{base}/liveness", timeout=2)[0] == 200, 30), "no liveness"
    # No worker answers: after 3 s + 1 s checks the router has dropped both and has none.
    time.sleep(6)
    assert http("GET", f"{base}/workers", timeout=3)[1]["workers"] == []

    tok = write_tokenizer_dir(tmp_path / "tok")
    log = tmp_path / "requests.log"
    start_worker(procs, pport, MODEL, tok, log, role="prefill", bootstrap_port=bport)
    start_worker(procs, dport, MODEL, tok, log, role="decode")
    time.sleep(3)  # the router does not find them by itself
    assert http("GET", f"{base}/workers", timeout=3)[1]["workers"] == []

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text(f"#!/bin/sh\necho {int(started * 1e6)}\n")
    (bindir / "systemctl").chmod(0o755)
    sync = [*SYNC_COMMAND, "--interval", "0.5", "--argv", str(tmp_path / "router.argv")]
    sync += ["--secrets", str(tmp_path / "none.env")]
    out = (tmp_path / "sync.log").open("w")
    procs.append(subprocess.Popen(sync, stdout=out, stderr=out, env={"PATH": f"{bindir}:/usr/bin:/bin"}))

    def roles() -> dict[str, str]:
        workers = http("GET", f"{base}/workers", timeout=3)[1]["workers"]
        return {w["url"]: w["worker_type"] for w in workers if w.get("is_healthy")}

    want = {prefill_url: "prefill", decode_url: "decode"}
    assert wait_for(lambda: roles() == want, 30), (roles(), (tmp_path / "sync.log").read_text())
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello world"}], "max_tokens": 8}
    status, reply = http("POST", f"{base}/v1/chat/completions", body)
    assert status == 200, reply
    seen = {r["role"]: r for r in requests_seen(log)}
    assert set(seen) == {"prefill", "decode"}, seen
    assert seen["prefill"]["bootstrap_port"] == seen["decode"]["bootstrap_port"] == bport
