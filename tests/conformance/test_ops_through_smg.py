"""``python -m infra smoke`` and ``wait`` through the real smg 1.13.0 (``.tools/smg-venv``), the
default gateway, started with the argv the plan of ``dev`` renders (loopback host and ports,
the plan's discovery manifest pointed at the stand-in), in front of the OpenAI-compatible
stand-in of ``tests/ops/openai_standin.py`` (a real SGLang server needs GPUs).

Under file discovery smg runs its multi-model mode: a native ``/generate`` without a ``model``
field is refused (400 ``missing_model``, seen here), so smoke's ``generate`` check must name it.
Every wait is bounded; every process is killed at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.cli import main, plan_document
from infra.mockrun import run_stack
from infra.ops.smoke import CHECK_NAMES, Target, run_smoke
from infra.planning.gateway import DISCOVERY_FILE
from tests.conformance.gateway_harness import free_port, http, start_gateway, wait_for, write_tokenizer_dir
from tests.conformance.test_gateway_live import _localize, _router, _written_files
from tests.ops.openai_standin import MODEL, StandIn


def _smg_in_front(
    tmp_path: Path,
    procs: list,
    standin: StandIn,
    stack: str = "dev",
    urls: list[str] | None = None,
    key: str = "",
) -> str:
    """smg with the plan's argv of ``stack``; its planned workers map in order to ``urls``
    (default: every one to ``standin``). ``key``: ``--api-key``, as sglang-router-run appends it."""
    doc: dict[str, Any] = plan_document(run_stack(stack))
    router = _router(doc)
    argv = router["processes"][0]["argv"]
    assert argv[:2] == ["smg", "launch"], argv[:2]
    manifest = _written_files(router["user_data"])[DISCOVERY_FILE]
    planned = list(doc["outputs"]["server_urls"].values())
    local_urls = urls or [standin.url] * len(planned)
    local, base = _localize(argv, dict(zip(planned, local_urls, strict=True)), manifest, tmp_path)
    start_gateway(procs, [*local, *(["--api-key", key] if key else [])], tmp_path / "smg.log")
    assert wait_for(lambda: http("GET", f"{base}/readiness", timeout=2)[0] == 200, 30), (
        tmp_path / "smg.log"
    ).read_text()[-2000:]
    return base


def test_smoke_passes_through_smg(tmp_path: Path, procs: list) -> None:
    tok = write_tokenizer_dir(tmp_path / "tokenizer")
    standin = StandIn(model_path=str(tok)).start()
    try:
        base = _smg_in_front(tmp_path, procs, standin)
        # What smg does with a native request that names no model (what smoke sent before).
        status, body = http(
            "POST", f"{base}/generate", {"text": "hi", "sampling_params": {"max_new_tokens": 2}}
        )
        assert status == 400 and "model" in json.dumps(body), body
        checks = run_smoke(Target(base, timeout=20))
    finally:
        standin.stop()
    assert [c.name for c in checks] == list(CHECK_NAMES)
    assert [(c.name, c.detail) for c in checks if c.status != "pass"] == []
    assert MODEL in checks[0].detail


def test_wait_is_ready_through_smg(tmp_path: Path, procs: list, capsys: Any) -> None:
    tok = write_tokenizer_dir(tmp_path / "tokenizer")
    standin = StandIn(model_path=str(tok)).start()
    try:
        base = _smg_in_front(tmp_path, procs, standin)
        code = main(
            ["wait", "--url", base, "--server-url", standin.url, "--timeout", "30", "--interval", "0.2"]
        )
    finally:
        standin.stop()
    assert code == 0, capsys.readouterr().out


def _sglang_backend_payload_keys() -> list[str]:
    """The literal keys of the payload 0.5.23's ``async_request_sglang_generate`` posts to
    ``/generate`` (read from ``sglang/benchmark/serving.py``: the module cannot be imported
    here, its import chain needs transformers)."""
    import ast

    from tests.conformance.test_bench_module import _source

    fn = next(
        n
        for n in ast.walk(_source())
        if isinstance(n, ast.AsyncFunctionDef) and n.name == "async_request_sglang_generate"
    )
    payload = next(
        n.value
        for n in ast.walk(fn)
        if isinstance(n, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "payload" for t in n.targets)
        and isinstance(n.value, ast.Dict)
    )
    keys = [k.value for k in payload.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    # The first key is an expression ("text" or "input_ids"); ``**extra_request_body`` has key None.
    assert None in payload.keys, "the payload no longer merges extra_request_body"
    return keys


def test_bench_requests_reach_the_worker_through_smg(tmp_path: Path, procs: list) -> None:
    """A request shaped like the benchmark's (``--backend sglang``) is refused by smg unless
    ``--extra-request-body`` adds the model, which ``infra bench`` renders."""
    from infra.ops.bench import bench_argv, matrix

    (run,) = matrix(["latency"])
    argv = bench_argv(run, "http://x", MODEL, "", "o.jsonl")
    extra = json.loads(argv[argv.index("--extra-request-body") + 1])
    keys = _sglang_backend_payload_keys()
    assert "sampling_params" in keys and "model" not in keys
    body: dict[str, Any] = {
        "text": "hello world",
        "sampling_params": {"max_new_tokens": 2, "temperature": 0.0},
    }
    body |= {k: None for k in keys if k not in body} | {"stream": False}
    tok = write_tokenizer_dir(tmp_path / "tokenizer")
    standin = StandIn(model_path=str(tok)).start()
    try:
        base = _smg_in_front(tmp_path, procs, standin)
        refused = http("POST", f"{base}/generate", body)
        status, reply = http("POST", f"{base}/generate", body | extra)
    finally:
        standin.stop()
    assert refused[0] == 400, refused
    assert status == 200 and reply["meta_info"]["completion_tokens"] > 0, reply


def test_wait_counts_every_server_at_the_router(
    tmp_path: Path, procs: list, monkeypatch: Any, capsys: Any
) -> None:
    """smg answers ``/readiness`` 200 as soon as one worker of ``tp8-dp2``'s two is healthy (seen
    here), and from outside the VPC the rank-0 URLs are unreachable, so the router alone said
    ready while half the servers were still loading. ``wait`` counts the healthy workers in the
    router's ``GET /workers`` (with the key) against ``server_urls``."""
    key = "sk-wait-0123456789"
    monkeypatch.setenv("SGLANG_API_KEY", key)
    tok = write_tokenizer_dir(tmp_path / "tokenizer")
    up = StandIn(model_path=str(tok)).start()
    down = f"http://127.0.0.1:{free_port()}"  # the second server is still loading
    try:
        base = _smg_in_front(tmp_path, procs, up, "tp8-dp2", [up.url, down], key)
        assert http("GET", f"{base}/readiness", timeout=3)[0] == 200
        code = main(
            [
                "wait",
                "--url",
                base,
                "--server-url",
                up.url,
                "--server-url",
                down,
                "--timeout",
                "2",
                "--interval",
                "0.5",
            ]
        )
        out = capsys.readouterr().out
        assert code == 1, out
        assert "1/2 servers healthy at the router" in out and down in out
        # The second server comes up on the port the manifest names.
        second = StandIn(model_path=str(tok), port=int(down.rsplit(":", 1)[1])).start()
        try:
            code = main(
                [
                    "wait",
                    "--url",
                    base,
                    "--server-url",
                    up.url,
                    "--server-url",
                    down,
                    "--timeout",
                    "60",
                    "--interval",
                    "0.5",
                ]
            )
            out = capsys.readouterr().out
        finally:
            second.stop()
    finally:
        up.stop()
    assert code == 0, out
    assert key not in out
