"""SGLang's native ``/generate`` from the project's own clients, through both real gateways.

smg 1.13.0 with worker discovery (the default gateway, ``--discovery-provider file``) runs in
multi-model mode: a ``/generate`` body without ``model`` gets 400 ``missing_model`` ("/generate
requests must include a model when IGW routing is enabled"). ``python -m infra smoke`` (its
``generate`` check) and ``python -m infra bench`` (``sglang.benchmark.serving --backend
sglang``, whose ``/generate`` body has no ``model``) must name the model, and naming it must
not break sglang-router 0.3.2.

The gateways run from their tool venvs with the argv the plan of ``tp8-dp2`` renders (addresses
rewritten to loopback, as in ``test_gateway_live.py``); the worker is the ``gateway_worker.py``
test double (an SGLang server needs GPUs). Every wait is bounded; every process is killed.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from infra.cli import plan_document
from infra.mockrun import load_stack_config, run_program, stack_file
from infra.ops.bench import bench_argv, matrix
from infra.ops.smoke import Target, check_generate, check_models
from infra.planning.gateway import DISCOVERY_FILE
from tests.conformance.gateway_harness import (
    free_port,
    http,
    start_gateway,
    start_worker,
    wait_for,
    write_tokenizer_dir,
)
from tests.conformance.test_bench_module import SITE
from tests.conformance.test_gateway_live import API_KEY, _localize, _plan, _router, _written_files


def _gateway(gateway: str, tmp_path: Path, procs: list) -> tuple[str, str]:
    """The planned gateway in front of one stand-in worker; returns (gateway URL, model)."""
    doc = _plan(gateway)
    router = _router(doc)
    planned = list(doc["outputs"]["server_urls"].values())
    manifest = _written_files(router["user_data"]).get(DISCOVERY_FILE, "")
    model = doc["model"]
    tok = write_tokenizer_dir(tmp_path / "tok")
    urls = {u: start_worker(procs, free_port(), model, tok, tmp_path / "requests.log").url for u in planned}
    local, base = _localize(router["processes"][0]["argv"], urls, manifest, tmp_path)
    start_gateway(procs, [*local, "--api-key", API_KEY], tmp_path / "gateway.log")
    assert wait_for(lambda: http("GET", f"{base}/readiness", timeout=2)[0] == 200, 30), "not ready"
    return base, model


def _module_generate_body(extra: dict[str, object]) -> dict[str, object]:
    """The ``/generate`` body of SGLang 0.5.23's benchmark ``--backend sglang`` for one prompt
    (``async_request_sglang_generate``), with the ``--extra-request-body`` JSON spread into it,
    as the module does (checked in its source below)."""
    return {
        "text": "hello world",
        "sampling_params": {"temperature": 0.0, "max_new_tokens": 4, "ignore_eos": True},
        "stream": False,
        "lora_path": None,
        "return_logprob": False,
        "return_routed_experts": False,
        "logprob_start_len": -1,
        **extra,
    }


def test_the_benchmark_spreads_extra_request_body_into_its_generate_body() -> None:
    """0.5.23's ``async_request_sglang_generate`` builds its payload dict with
    ``**request_func_input.extra_request_body``: what ``--extra-request-body`` adds reaches the
    wire."""
    source = (SITE / "sglang" / "benchmark" / "serving.py").read_text(encoding="utf-8")
    func = next(
        n
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.AsyncFunctionDef) and n.name == "async_request_sglang_generate"
    )
    spreads = [
        ast.unparse(v)
        for d in ast.walk(func)
        if isinstance(d, ast.Dict)
        for k, v in zip(d.keys, d.values, strict=True)
        if k is None
    ]
    assert "request_func_input.extra_request_body" in spreads


@pytest.mark.parametrize("gateway", ["smg", "sglang-router"])
def test_smoke_and_bench_generate_pass_through_the_planned_gateway(
    gateway: str, tmp_path: Path, procs: list
) -> None:
    base, model = _gateway(gateway, tmp_path, procs)
    if gateway == "smg":  # what an unnamed /generate gets: the reason for the fixes below
        status, reply = http("POST", f"{base}/generate", {"text": "hello"}, key=API_KEY)
        assert status == 400 and "missing_model" in json.dumps(reply), reply

    # infra smoke: models (finds the served name), then generate.
    t = Target(base, API_KEY, timeout=10)
    check_models(t)
    assert t.model == model
    assert "token(s)" in check_generate(t)

    # infra bench: the body the benchmark module sends with the argv bench renders.
    (run,) = matrix(["latency"])
    argv = bench_argv(run, base, model, f"/fsx/models/{model}", "o.jsonl")
    extra = json.loads(argv[argv.index("--extra-request-body") + 1])
    assert extra == {"model": model}
    status, reply = http("POST", f"{base}/generate", _module_generate_body(extra), key=API_KEY)
    assert status == 200 and reply["text"].startswith("stand-in regular worker"), reply


@pytest.mark.parametrize("gateway", ["smg", "sglang-router"])
def test_without_an_api_key_the_worker_api_is_open_and_the_plan_says_so(
    gateway: str, tmp_path: Path, procs: list
) -> None:
    """The planned gateway, started as ``sglang-router-run`` starts it when the stack has no
    ``router_api_key`` (no ``--api-key``): any client may register a worker. The plan warns;
    with the key set it does not, and the gateway refuses the same call."""
    doc = _plan(gateway)
    router = _router(doc)
    manifest = _written_files(router["user_data"]).get(DISCOVERY_FILE, "")
    argv, base = _localize(router["processes"][0]["argv"], {}, manifest, tmp_path)
    gw = start_gateway(procs, argv, tmp_path / "gateway.log")
    assert wait_for(lambda: http("GET", f"{base}/liveness", timeout=2)[0] == 200, 30), "no liveness"
    intruder = {"url": f"http://127.0.0.1:{free_port()}"}
    assert http("POST", f"{base}/workers", intruder)[0] == 202
    (line,) = [w for w in doc["warnings"] if w.startswith("sglang-cluster:router_api_key: not set")]
    assert "POST /workers" in line and "203.0.113.0/24" in line
    gw.kill()
    gw.wait(timeout=10)

    keyed, base = _localize(router["processes"][0]["argv"], {}, manifest, tmp_path)
    start_gateway(procs, [*keyed, "--api-key", API_KEY], tmp_path / "keyed.log")
    assert wait_for(lambda: http("GET", f"{base}/liveness", timeout=2)[0] == 200, 30), "no liveness"
    assert http("POST", f"{base}/workers", intruder)[0] == 401
    name, path = stack_file("tp8-dp2")
    cfg = load_stack_config(path) | {
        "sglang-cluster:gateway": gateway,
        "sglang-cluster:router_api_key": API_KEY,
    }
    keyed_doc = plan_document(run_program(name, cfg, ["sglang-cluster:router_api_key"]))
    assert not [w for w in keyed_doc["warnings"] if "router_api_key: not set" in w]
