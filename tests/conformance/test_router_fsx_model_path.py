"""The router serves when the workers report a model path that exists only on the GPU nodes.

With a model store, every server runs ``--model-path /fsx/models/<id>``, and SGLang 0.5.23
reports that path as ``model_path`` and ``tokenizer_path`` (``http_server.py`` ``model_info``).
sglang-router 0.3.2 then tries to load a tokenizer from it when it registers the worker
(``register_tokenizer`` step); the router node has no ``/fsx`` mount, so that load fails. What
the real 0.3.2 binary does then, on loopback (a stand-in worker, ``mock_worker.py``, answers as
SGLang does: no GPU here):

- it logs ``Failed to load tokenizer for model ...`` (WARN) AFTER it has activated the worker,
  and its HTTP router forwards requests as they are (it needs no tokenizer): requests reach the
  worker;
- a router ``--model-path`` (or ``--tokenizer-path``) with a hub id is NOT a fix: 0.3.2 then
  loads that tokenizer at start-up and exits 1 when the hub cannot be reached (private subnet
  without egress to the hub, or a gated model: the router holds no HF token).

So the router argv carries neither flag. Every wait is bounded; processes are killed at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conformance.conftest import HERE, ROUTER_PYTHON, gateway_plan_json, require
from tests.conformance.test_router_live import _free_port, _wait

STACK = "prod-tp16"  # a stack with an FSx model store


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=3) as r:
        return json.loads(r.read() or b"{}")


def _local_router_argv(argv: list[str], worker_url: str, port: int, prom: int) -> list[str]:
    argv = list(argv)
    i = argv.index("--worker-urls")
    j = i + 1
    while j < len(argv) and not argv[j].startswith("--"):
        j += 1
    argv[i + 1 : j] = [worker_url]
    for flag, value in (
        ("--host", "127.0.0.1"),
        ("--port", str(port)),
        ("--prometheus-host", "127.0.0.1"),
        ("--prometheus-port", str(prom)),
    ):
        argv[argv.index(flag) + 1] = value
    return argv


def test_router_serves_a_worker_whose_model_path_is_fsx_only(tmp_path: Path, procs: list) -> None:
    doc = gateway_plan_json(STACK, "sglang-router")
    server = next(n for n in doc["nodes"] if n["role"] == "server")
    server_argv = server["processes"][0]["argv"]
    model_path = server_argv[server_argv.index("--model-path") + 1]
    served = server_argv[server_argv.index("--served-model-name") + 1]
    assert model_path.startswith("/fsx/models/"), model_path
    assert not Path(model_path).exists(), "the test needs a path that does not exist here"
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    argv = router["processes"][0]["argv"]
    assert "--model-path" not in argv and "--tokenizer-path" not in argv

    wport, port, prom = _free_port(), _free_port(), _free_port()
    worker = f"http://127.0.0.1:{wport}"
    procs.append(
        subprocess.Popen([sys.executable, str(HERE / "mock_worker.py"), str(wport), served, model_path])
    )
    log_path = tmp_path / "router.log"
    log = log_path.open("w")
    cmd = [str(require(ROUTER_PYTHON)), *_local_router_argv(argv, worker, port, prom)[1:]]
    procs.append(subprocess.Popen(cmd, stdout=log, stderr=log))
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        return any(w.get("is_healthy") for w in _get(f"{base}/workers").get("workers", []))

    assert _wait(healthy, 30), log_path.read_text()[-3000:]
    assert _wait(lambda: "Failed to load tokenizer" in log_path.read_text(), 20), "no tokenizer attempt seen"
    text = log_path.read_text()
    assert model_path in text.split("Failed to load tokenizer", 1)[1].splitlines()[0]

    body = json.dumps({"model": served, "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(
        f"{base}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        reply = json.loads(r.read())
    assert reply["choices"][0]["message"]["content"] == f"mock worker {wport}"
    assert procs[-1].poll() is None, "the router exited"


def test_router_model_path_flag_would_exit_without_the_hub(tmp_path: Path) -> None:
    """Why the router argv does not pass ``--model-path``: 0.3.2 loads it at start and exits.

    The hub is unreachable here (no egress but PyPI), as it is for a router without a route
    to huggingface.co or for a gated model without a token on the router.
    """
    port, prom = _free_port(), _free_port()
    cmd = [
        str(require(ROUTER_PYTHON)),
        "-m",
        "sglang_router.launch_router",
        "--worker-urls",
        f"http://127.0.0.1:{_free_port()}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--prometheus-port",
        str(prom),
        "--model-path",
        "Qwen/Qwen2.5-72B-Instruct",
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9"},
    )
    assert proc.returncode != 0
    assert "Failed to create tokenizer from 'Qwen/Qwen2.5-72B-Instruct'" in proc.stdout + proc.stderr
