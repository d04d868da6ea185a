"""The operator commands against the outputs and plan the program really produces (mocked
``pulumi up`` of the repository's stack files: ``server_urls`` is ``{server name: URL}``,
``nodes`` is ``{logical node name: {...}}``, prefill/decode nodes are ``prefill-g0-r0`` and
``decode-g1-r0``), not against hand-written shapes."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from infra.cli import main, plan_document
from infra.mockrun import run_stack
from infra.ops.wait import servers_from
from tests.ops.test_wait import _fake_pulumi


@cache
def _doc(stack: str) -> dict[str, Any]:
    return plan_document(run_stack(stack))


@pytest.mark.parametrize("stack", ["pd-disagg", "tp2-dp8", "prod-tp16"])
def test_wait_targets_are_the_rank_zero_urls_and_nodes(stack: str) -> None:
    doc = _doc(stack)
    outputs = doc["outputs"]
    targets = servers_from(doc, outputs)
    assert [t.url for t in targets] == list(outputs["server_urls"].values())
    # Every head node is a rank-0 node of the plan whose address is the server's.
    ips = {n["name"]: n["private_ip"] for n in doc["nodes"]}
    for t in targets:
        assert t.head_node.endswith("-r0") and t.head_node in ips, t
        assert t.url.split("//", 1)[1].split(":")[0] == ips[t.head_node], t
    multi = doc["layout"]["nodes_per_server"] > 1
    assert all(t.multi_node == multi for t in targets)


def test_pd_head_nodes_are_the_prefill_and_decode_nodes() -> None:
    targets = servers_from(_doc("pd-disagg"), _doc("pd-disagg")["outputs"])
    assert [t.head_node for t in targets] == ["prefill-g0-r0", "decode-g1-r0"]


def test_bench_hint_from_a_pd_stack_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a router key, the head-node hint measures server 0 directly: its URL and node come
    from ``server_urls``/``nodes`` as ``pulumi stack output`` prints them (a dict)."""
    outputs = _doc("pd-disagg")["outputs"]
    monkeypatch.setenv("PATH", f"{_fake_pulumi(tmp_path, outputs)}:/usr/bin:/bin")
    monkeypatch.setenv("SGLANG_API_KEY", "sk-bench-0123")
    code = main(["bench", "pd-disagg", "--type", "latency", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    first = next(iter(outputs["server_urls"].values()))
    assert f"measure server 0 at {first} directly" in out
    assert str(outputs["nodes"]["prefill-g0-r0"]["instance_id"]) in out
    assert "sk-bench-0123" not in out


@pytest.mark.parametrize("stack", ["prod-tp16", "dev", "pd-disagg"])
def test_wait_deadline_leaves_out_what_pulumi_up_already_did(stack: str) -> None:
    """``wait`` runs after ``pulumi up`` returned: the ``resources`` phase of the cold-start
    estimate (image build, instance launches) is behind it; the deadline covers the rest of the
    longest path (boot, image pull, weights, load, start, router) with the margin."""
    from infra.ops.wait import DEADLINE_FACTOR, MIN_DEADLINE_SECS, deadline_from_plan

    cold_start = _doc(stack)["estimates"]["cold_start"]
    after_up = max(
        sum(p["seconds"] for p in path["phases"] if p["name"] != "resources")
        for path in cold_start.values()
        if isinstance(path, dict) and "phases" in path
    )
    secs, why = deadline_from_plan(_doc(stack))
    assert secs == max(MIN_DEADLINE_SECS, int(after_up * DEADLINE_FACTOR)), why
    assert secs < cold_start["cold"]["total_secs"] * DEADLINE_FACTOR


def test_wait_on_a_slurm_stack_points_at_the_head_node_and_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SLURM stack's outputs have no ``server_urls``/``nodes``: ``wait`` polls the router and,
    on timeout, sends the operator to the ParallelCluster head node and the job's ``squeue``."""
    outputs: dict[str, Any] = {**_doc("slurm-tp16")["outputs"], "router_url": "http://127.0.0.1:9"}
    monkeypatch.setenv("PATH", f"{_fake_pulumi(tmp_path, outputs)}:/usr/bin:/bin")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        code = main(["wait", "slurm-tp16", "--timeout", "1", "--interval", "0.5"])
    out = capsys.readouterr().out
    assert code == 1, out
    head = outputs["head_node"]["instance_id"]
    assert f"head node: aws ssm send-command --instance-ids {head}" in out
    assert outputs["squeue_command"] in out.replace("\n", "")
    assert "INSTANCE_ID " not in out.split("then:")[0]


def test_api_key_from_a_file_and_a_warning_for_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--api-key`` lands in the process list; ``--api-key-file`` keeps it out, and the key is
    never printed either way."""
    from tests.ops.openai_standin import StandIn

    key = "sk-file-key-0123456789"
    monkeypatch.delenv("SGLANG_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "key").write_text(key + "\n")
    s = StandIn(api_key=key).start()
    try:
        assert (
            main(["smoke", "--url", s.url, "--timeout", "10", "--api-key-file", str(tmp_path / "key")]) == 0
        )
        from_file = capsys.readouterr()
        assert main(["smoke", "--url", s.url, "--timeout", "10", "--api-key", key]) == 0
        from_argv = capsys.readouterr()
    finally:
        s.stop()
    assert "warning" not in from_file.err
    assert "--api-key is visible in the process list" in from_argv.err
    assert key not in from_file.out + from_file.err + from_argv.out + from_argv.err


def test_bench_with_only_a_url_asks_the_router_for_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --model or a stack, the model (which every /generate body must carry for smg)
    comes from the router's /v1/models."""
    from tests.ops.openai_standin import MODEL, StandIn

    s = StandIn().start()
    try:
        code = main(["bench", "--url", s.url, "--type", "latency", "--dry-run"])
    finally:
        s.stop()
    out = capsys.readouterr().out
    assert code == 0, out
    assert "--extra-request-body" in out and MODEL in out
    assert main(["bench", "--url", "http://127.0.0.1:9", "--type", "latency", "--dry-run"]) == 2
    assert "pass --model" in capsys.readouterr().err


def test_the_ssm_hint_keeps_the_request_body_json_intact() -> None:
    """The body JSON survives both quotings (the local shell, then the node's shell that
    AWS-RunShellScript runs each command in)."""
    import json
    import shlex

    from infra.ops.bench import head_node_hint, matrix

    lines = head_node_hint(
        matrix(["latency"]), "http://10.0.0.5:8000", "Qwen/Qwen3-0.6B", "", "IMG", "i-1", ""
    )
    argv = shlex.split(lines[1])
    commands = json.loads(argv[argv.index("--parameters") + 1])["commands"]
    docker = shlex.split(commands[1])
    assert json.loads(docker[docker.index("--extra-request-body") + 1]) == {"model": "Qwen/Qwen3-0.6B"}


def test_a_tls_certificate_the_url_does_not_match_fails_at_once(tmp_path: Path) -> None:
    """An https endpoint whose certificate does not verify for the URL's host (no
    endpoint_domain, or a DNS record pointing elsewhere) will not heal by waiting: ``wait``
    stops at the first poll and says what to fix. The server is a real TLS listener on
    loopback with a self-signed certificate for llm.example.com."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from infra.ops.wait import WaitTarget, wait
    from tests.ops.test_preflight import _self_signed
    from tests.ops.test_wait import FakeClock

    cert, key = _self_signed()
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clock = FakeClock()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        ok, state = wait(WaitTarget(url), 600, None, 10, clock=clock, sleep=clock.sleep)
    finally:
        server.shutdown()
        server.server_close()
    assert not ok and clock.t == 0
    status, detail = state.rows["router"]
    assert status == "failed" and "certificate" in detail and "endpoint_domain" in detail


def test_a_sharegpt_path_missing_here_is_refused_before_a_local_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.5.23's random and sharegpt datasets download ShareGPT from the hub when
    ``--dataset-path`` is not a JSON file (``datasets/random.py``, ``is_file_valid_json``): a
    local run with a path that exists only on FSx would download silently. The head-node
    hint (``--dry-run``) keeps the path: it is read there."""
    from tests.ops.test_bench import _fake_module_python

    python = _fake_module_python(tmp_path)
    argv = ["bench", "--url", "http://127.0.0.1:8000", "--type", "latency", "--model", "m"]
    argv += ["--sharegpt", "/fsx/datasets/ShareGPT_V3_unfiltered_cleaned_split.json"]
    code = main([*argv, "--python", str(python), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "is not a JSON file here" in err
    assert not (tmp_path / "r").exists()
    assert main([*argv, "--dry-run"]) == 0
