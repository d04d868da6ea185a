"""Both real gateways on loopback, started with the argv the plan renders, in front of stand-ins.

smg 1.13.0 (``.tools/smg-venv``) and sglang-router 0.3.2 (``.tools/router-venv``) run the
router process of the plan of ``tp8-dp2`` (two TP8 servers, cache_aware), planned with
``gateway`` set to each package and the health-check keys scaled down through the spec
(``router_health_check_interval_secs: 1``, ``..._timeout_secs: 2``, start-up timeout 8 s),
so the argv is exactly the planned one for that config. Only addresses change: host and ports
to free loopback ports, and the worker URLs (smg: in the discovery manifest the plan writes
into the router's user data; sglang-router: ``--worker-urls``) to stand-in workers
(``gateway_worker.py``: an SGLang server needs GPUs). ``--api-key`` is appended as
``userdata/sglang-router-run`` appends it from the stack's secret. PD mode runs the argv
:func:`infra.planning.gateway.gateway_argv` renders for a prefill and a decode worker.

Every wait is bounded (at most 30 s each); every process is killed at the end.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import plan_document
from infra.mockrun import load_stack_config, run_program, stack_file
from infra.planning.gateway import DISCOVERY_FILE, Worker, discovery_manifest_text, gateway_argv
from infra.planning.userdata import split_mime
from infra.spec import parse_config
from tests.conformance.gateway_harness import (
    free_port,
    http,
    requests_seen,
    start_gateway,
    start_worker,
    stop,
    wait_for,
    write_tokenizer_dir,
)
from tests.conftest import base_config

GATEWAYS = ("smg", "sglang-router")
API_KEY = "sk-test-gateway-key"
SCALED = {
    "sglang-cluster:router_health_check_interval_secs": "1",
    "sglang-cluster:router_health_check_timeout_secs": "2",
    "sglang-cluster:router_worker_startup_timeout_secs": "8",
}


def _plan(gateway: str) -> dict[str, Any]:
    name, path = stack_file("tp8-dp2")
    cfg = load_stack_config(path) | SCALED | {"sglang-cluster:gateway": gateway}
    return plan_document(run_program(name, cfg))


def _router(doc: dict[str, Any]) -> dict[str, Any]:
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    return router


def _written_files(user_data: str) -> dict[str, str]:
    doc = yaml.safe_load(split_mime(user_data)["text/cloud-config"])
    return {f["path"]: f["content"] for f in doc["write_files"]}


def _set(argv: list[str], flag: str, value: str) -> None:
    argv[argv.index(flag) + 1] = value


def _localize(argv: list[str], urls: dict[str, str], manifest: str, tmp: Path) -> tuple[list[str], str]:
    """Loopback host/ports; planned worker URLs -> stand-in URLs. Returns (argv, gateway URL)."""
    out = list(argv)
    port, prom = free_port(), free_port()
    _set(out, "--host", "127.0.0.1")
    _set(out, "--port", str(port))
    _set(out, "--prometheus-host", "127.0.0.1")
    _set(out, "--prometheus-port", str(prom))
    if "--discovery-file" in out:
        for planned, local in urls.items():
            manifest = manifest.replace(f'"{planned}"', f'"{local}"')
        path = tmp / "gateway-workers.json"
        path.write_text(manifest)
        _set(out, "--discovery-file", str(path))
    else:
        out = [urls.get(a, a) for a in out]
    return out, f"http://127.0.0.1:{port}"


def _chat(base: str, model: str, text: str, key: str = API_KEY) -> tuple[int, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 8}
    return http("POST", f"{base}/v1/chat/completions", body, key=key)


def _healthy(base: str) -> set[str]:
    status, doc = http("GET", f"{base}/workers", key=API_KEY, timeout=3)
    assert status == 200, doc
    return {w["url"] for w in doc["workers"] if w.get("is_healthy")}


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_planned_gateway_routes_keeps_affinity_survives_a_dead_worker(
    gateway: str, tmp_path: Path, procs: list
) -> None:
    doc = _plan(gateway)
    router = _router(doc)
    argv = router["processes"][0]["argv"]
    planned = list(doc["outputs"]["server_urls"].values())
    assert len(planned) == 2
    manifest = _written_files(router["user_data"]).get(DISCOVERY_FILE, "")
    if gateway == "smg":
        assert [w["url"] for w in json.loads(manifest)["workers"]] == planned
        assert len(router["processes"]) == 1  # no sglang-router-sync next to smg
    model = doc["model"]
    tok = write_tokenizer_dir(tmp_path / "tokenizer")
    log = tmp_path / "requests.log"
    ports = [free_port(), free_port()]
    urls = dict(zip(planned, [f"http://127.0.0.1:{p}" for p in ports], strict=True))
    local, base = _localize(argv, urls, manifest, tmp_path)

    # The gateway starts before any worker: it stays up and is not ready.
    gw = start_gateway(procs, [*local, "--api-key", API_KEY], tmp_path / "gateway.log")
    assert wait_for(lambda: http("GET", f"{base}/liveness", timeout=2)[0] == 200, 30), "no liveness"
    assert http("GET", f"{base}/readiness", timeout=3)[0] == 503
    workers = [start_worker(procs, p, model, tok, log) for p in ports]
    assert wait_for(lambda: _healthy(base) == set(urls.values()), 30), _healthy(base)
    assert gw.poll() is None
    assert http("GET", f"{base}/readiness", timeout=3)[0] == 200

    # Routed and answered: OpenAI chat and the native /generate (smg's discovery mode needs
    # the model named there).
    status, reply = _chat(base, model, "hello world")
    assert status == 200 and reply["choices"][0]["message"]["content"].startswith("stand-in regular worker ")
    status, reply = http("POST", f"{base}/generate", {"model": model, "text": "hello"}, key=API_KEY)
    assert status == 200 and reply["text"].startswith("stand-in regular worker "), reply

    # The API key is enforced, and forwarded to the workers.
    assert _chat(base, model, "hello world", key="")[0] == 401
    assert _chat(base, model, "hello world", key="sk-wrong")[0] == 401
    assert all(r["authorization"] for r in requests_seen(log))

    # cache_aware: requests sharing a long prefix go to one worker; so do those of a second prefix.
    log.unlink()
    prefix_a = "shared long prefix " * 40
    prefix_b = "a different system prompt " * 40
    for prefix in (prefix_a, prefix_b):  # in a row: round_robin would split each 3/3
        for i in range(6):
            assert _chat(base, model, f"{prefix} question {i}")[0] == 200
    seen = requests_seen(log)
    by_prefix = {
        p: Counter(r["port"] for r in seen if r["prompt"].startswith(p[:40])) for p in (prefix_a, prefix_b)
    }
    assert all(len(c) == 1 and sum(c.values()) == 6 for c in by_prefix.values()), by_prefix

    # The metrics the README points at: per-worker health and request counts.
    prom = local[local.index("--prometheus-port") + 1]
    status, text = http("GET", f"http://127.0.0.1:{prom}/metrics")
    assert status == 200
    for url in urls.values():
        assert f'smg_worker_health{{worker="{url}"}} 1' in text, text[-2000:]
    assert "smg_http_responses_total" in text and "smg_router_requests_total" in text

    # A killed worker is taken out, traffic goes on on the other, and it comes back when healthy.
    stop(workers[0].proc)
    dead, alive = urls[planned[0]], urls[planned[1]]
    assert wait_for(lambda: dead not in _healthy(base), 30), _healthy(base)
    log.unlink()
    for i in range(4):
        status, reply = _chat(base, model, f"{prefix_a} after the kill {i}")
        assert status == 200, reply
    assert {r["port"] for r in requests_seen(log)} == {ports[1]}
    assert http("GET", f"{base}/readiness", timeout=3)[0] == 200
    start_worker(procs, ports[0], model, tok, log)
    assert wait_for(lambda: _healthy(base) == {dead, alive}, 30), _healthy(base)
    assert gw.poll() is None
    # The key never reaches the gateway's log.
    assert API_KEY not in (tmp_path / "gateway.log").read_text()


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_pd_request_goes_through_a_prefill_and_a_decode_worker(
    gateway: str, tmp_path: Path, procs: list
) -> None:
    model = "Qwen/Qwen2.5-72B-Instruct"
    tok = write_tokenizer_dir(tmp_path / "tokenizer")
    log = tmp_path / "requests.log"
    pport, dport, bport = free_port(), free_port(), free_port()
    prefill = start_worker(procs, pport, model, tok, log, role="prefill", bootstrap_port=bport)
    decode = start_worker(procs, dport, model, tok, log, role="decode")
    spec = parse_config(base_config(gateway=gateway, router_health_check_timeout_secs=2))
    workers = [Worker(prefill.url, "prefill", bport), Worker(decode.url, "decode")]
    argv = gateway_argv(spec, workers, 8)
    assert "--pd-disaggregation" in argv
    manifest = discovery_manifest_text(workers) if gateway == "smg" else ""
    local, base = _localize(argv, {}, manifest, tmp_path)
    gw = start_gateway(procs, [*local, "--api-key", API_KEY], tmp_path / "gateway.log")
    assert wait_for(lambda: _healthy(base) == {prefill.url, decode.url}, 30), "workers not registered"
    status, reply = _chat(base, model, "hello world")
    assert status == 200, reply
    assert reply["choices"][0]["message"]["content"] == f"stand-in decode worker {dport}"
    seen = requests_seen(log)
    rooms = {r["role"]: r for r in seen}
    assert set(rooms) == {"prefill", "decode"}, seen
    assert rooms["prefill"]["bootstrap_room"] == rooms["decode"]["bootstrap_room"] is not None
    assert rooms["prefill"]["bootstrap_port"] == rooms["decode"]["bootstrap_port"] == bport
    assert _chat(base, model, "hello world", key="")[0] == 401
    assert gw.poll() is None


def test_smg_serves_a_worker_whose_model_path_is_fsx_only(tmp_path: Path, procs: list) -> None:
    """The router node does not mount FSx: workers report ``/fsx/models/<id>`` as their model
    and tokenizer path, which does not exist there (nor here). smg registers the worker and
    routes both OpenAI and native requests anyway (sglang-router: test_router_fsx_model_path.py)."""
    doc = _plan("smg")
    router = _router(doc)
    (planned,) = list(doc["outputs"]["server_urls"].values())[:1]
    model = doc["model"]
    fsx = Path("/fsx/models") / model
    assert not fsx.exists()
    log = tmp_path / "requests.log"
    port = free_port()
    worker = start_worker(procs, port, model, fsx, log)
    manifest = json.dumps({"version": 1, "workers": [{"url": planned, "worker_type": "regular"}]})
    local, base = _localize(router["processes"][0]["argv"], {planned: worker.url}, manifest, tmp_path)
    gw = start_gateway(procs, local, tmp_path / "gateway.log")
    assert wait_for(lambda: http("GET", f"{base}/readiness", timeout=2)[0] == 200, 30), "not ready"
    status, reply = _chat(base, model, "hello world", key="")
    assert status == 200 and reply["choices"][0]["message"]["content"] == f"stand-in regular worker {port}"
    status, reply = http("POST", f"{base}/generate", {"model": model, "text": "hello"})
    assert status == 200 and reply["text"] == f"stand-in regular worker {port}"
    assert gw.poll() is None
