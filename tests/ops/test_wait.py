"""``python -m infra wait`` against the loopback stand-in (router + rank 0; a real SGLang
server needs GPUs), transports from moto's CloudWatch Logs, and a stand-in ``pulumi`` first on
PATH for ``pulumi stack output``. Time is a fake clock where a deadline matters: no test
waits for real or asserts a duration."""

from __future__ import annotations

import json
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.cli import main
from infra.ops.wait import (
    DEFAULT_DEADLINE_SECS,
    TRANSPORT_LINE,
    ServerTarget,
    WaitTarget,
    cloudwatch_transports,
    deadline_from_plan,
    state_checks,
    timeout_hints,
    wait,
)
from tests.conftest import ROOT
from tests.ops.openai_standin import StandIn

EFA_LINE = "server 0: NCCL transport: efa (8 rank(s): 8 efa; rank ip-10-0-1-10:1201: Using network Libfabric; NET/OFI provider efa)"
NOW_MS = int(time.time() * 1000)  # CloudWatch (and moto) reject events older than 14 days
SOCKET_LINE = (
    "ERROR: server 0: NCCL transport is socket, not EFA, and require_efa is on: stopping the server, "
    "no automatic restart (...)"
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, secs: float) -> None:
        self.t += secs


@pytest.fixture
def standin() -> Iterator[StandIn]:
    s = StandIn().start()
    yield s
    s.stop()


def test_transport_pattern_matches_what_the_node_scripts_log() -> None:
    """The regex reads the lines userdata/ scripts really write (their source, not a copy)."""
    sources = (ROOT / "userdata/sglang-transport-check").read_text() + (
        ROOT / "userdata/sglang-wait-ready"
    ).read_text()
    templates = re.findall(r'"((?:ERROR: |WARNING: )?server \$\{slot\}: NCCL transport[^"]*)"', sources)
    assert len(templates) >= 3
    for t in templates:
        line = t.replace("${slot}", "3").replace("${word}", "socket").replace("${transport}", "socket")
        m = TRANSPORT_LINE.search(line)
        assert m and m.group("slot") == "3", line
    assert TRANSPORT_LINE.search("server 0: no NCCL transport verdict: cannot read") is None


def test_ready_with_efa(standin: StandIn) -> None:
    target = WaitTarget(
        standin.url, [ServerTarget(0, standin.url, multi_node=True, head_node="server-g0-r0")]
    )
    clock = FakeClock()
    ok, state = wait(
        target,
        600,
        lambda: {"server-g0-r0/0": "efa", "server-g0-r1/0": "efa"},
        10,
        clock=clock,
        sleep=clock.sleep,
    )
    assert ok
    assert [c.status for c in state_checks(state)] == ["pass", "pass", "pass"]
    assert "server-g0-r0, server-g0-r1" in state.rows["server 0 transport"][1]


def test_socket_on_any_node_fails_at_once(standin: StandIn) -> None:
    target = WaitTarget(
        standin.url, [ServerTarget(0, standin.url, multi_node=True, head_node="server-g0-r0")]
    )
    clock = FakeClock()
    ok, state = wait(
        target,
        600,
        lambda: {"server-g0-r0/0": "efa", "server-g0-r1/0": "socket"},
        10,
        clock=clock,
        sleep=clock.sleep,
    )
    assert not ok and clock.t == 0  # no second poll
    assert state.failed() == ["server 0 transport: server-g0-r1: NCCL transport is socket, not EFA"]


def test_not_ready_until_the_deadline(standin: StandIn) -> None:
    standin.ready = False
    target = WaitTarget(standin.url, [ServerTarget(0, standin.url)])
    clock = FakeClock()
    ok, state = wait(target, 60, None, 10, clock=clock, sleep=clock.sleep)
    assert not ok and clock.t == 60  # polls at 0, 10, ..., 60; the next would pass the deadline
    assert state.rows["router"][0] == "waiting" and "503" in state.rows["router"][1]
    assert state.rows["server 0"][0] == "waiting"


def test_a_private_rank_zero_does_not_block(standin: StandIn) -> None:
    target = WaitTarget(standin.url, [ServerTarget(0, "http://127.0.0.1:9")])
    clock = FakeClock()
    ok, state = wait(target, 60, None, 10, clock=clock, sleep=clock.sleep)
    assert ok and state.rows["server 0"][0] == "unreachable"


def test_deadline_from_the_cold_start_estimate() -> None:
    doc: dict[str, Any] = {
        "estimates": {"cold_start": {"warm": {"total_secs": 300}, "cold": {"total_secs": 1500}}}
    }
    assert deadline_from_plan(doc)[0] == 2250
    assert deadline_from_plan({"estimates": {"cold_start": {"total_secs": 100}}})[0] == 600
    secs, why = deadline_from_plan({"estimates": {"gpus": 16}})
    assert secs == DEFAULT_DEADLINE_SECS and "no cold-start estimate" in why


def test_timeout_hints_name_the_ssm_command_and_log_group() -> None:
    target = WaitTarget(
        "http://x", region="us-east-1", log_group="/sglang/prod-tp16", instance_ids={"server-g0-r0": "i-0abc"}
    )
    text = "\n".join(timeout_hints(target, "prod-tp16"))
    assert "aws ssm send-command --instance-ids i-0abc --document-name AWS-RunShellScript" in text
    assert "cloud-init status --long" in text and "journalctl --no-pager -n 60 -u 'sglang-*'" in text
    assert "aws logs tail /sglang/prod-tp16" in text and "--region us-east-1" in text


def test_cloudwatch_transports_on_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        logs = boto3.client("logs", region_name="us-east-1")
        logs.create_log_group(logGroupName="/sglang/prod-tp16")
        for stream, line, ts in (
            ("server-g0-r0/ready-0.log", "server 0: answers /health and /v1/models", NOW_MS - 3000),
            ("server-g0-r0/ready-0.log", EFA_LINE, NOW_MS - 1000),
            ("server-g0-r1/server-0.log", SOCKET_LINE, NOW_MS - 2000),
        ):
            if stream not in {
                s["logStreamName"]
                for s in logs.describe_log_streams(logGroupName="/sglang/prod-tp16")["logStreams"]
            }:
                logs.create_log_stream(logGroupName="/sglang/prod-tp16", logStreamName=stream)
            logs.put_log_events(
                logGroupName="/sglang/prod-tp16",
                logStreamName=stream,
                logEvents=[{"timestamp": ts, "message": line}],
            )
        found = cloudwatch_transports("/sglang/prod-tp16", "us-east-1")()
    assert found == {"server-g0-r0/0": "efa", "server-g0-r1/0": "socket"}


def _fake_pulumi(tmp_path: Path, outputs: dict[str, Any]) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "pulumi"
    exe.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "stack output" ]; then cat "$(dirname "$0")/outputs.json"; exit 0; fi\n'
        'echo "error: no such config" >&2; exit 255\n'
    )
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    (bin_dir / "outputs.json").write_text(json.dumps(outputs))
    return bin_dir


def test_cli_reads_the_stack_and_the_reported_transport(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = {
        "router_url": standin.url,
        "server_urls": [standin.url],
        "log_group": "/sglang/prod-tp16",
        "nodes": {"server-g0-r0": {"instance_id": "i-0aaa", "private_ip": "10.0.1.10"}},
    }
    monkeypatch.setenv("PATH", f"{_fake_pulumi(tmp_path, outputs)}:/usr/bin:/bin")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        logs = boto3.client("logs", region_name="us-east-1")
        logs.create_log_group(logGroupName="/sglang/prod-tp16")
        logs.create_log_stream(logGroupName="/sglang/prod-tp16", logStreamName="server-g0-r1/server-0.log")
        logs.put_log_events(
            logGroupName="/sglang/prod-tp16",
            logStreamName="server-g0-r1/server-0.log",
            logEvents=[{"timestamp": NOW_MS, "message": SOCKET_LINE}],
        )
        code = main(["wait", "prod-tp16", "--interval", "0.05", "--timeout", "30"])
    out = capsys.readouterr().out
    assert code == 1
    assert "server-g0-r1: NCCL transport is socket, not EFA" in out
    assert "aws ssm send-command --instance-ids i-0aaa" in out and "aws logs tail /sglang/prod-tp16" in out


def test_cli_with_url_ready_and_timeout(standin: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "wait",
                "--url",
                standin.url,
                "--server-url",
                standin.url,
                "--timeout",
                "30",
                "--interval",
                "0.05",
            ]
        )
        == 0
    )
    assert "2 passed, 0 failed" in capsys.readouterr().out
    standin.ready = False
    assert main(["wait", "--url", standin.url, "--timeout", "1", "--interval", "0.2"]) == 1
    out = capsys.readouterr().out
    assert "not ready after 1 s" in out and "Where to look:" in out and "AWS-RunShellScript" in out


def test_router_key_missing_fails_at_once() -> None:
    """A router that guards /readiness with its key answers 401: no point in waiting."""
    s = StandIn(api_key="sk-k", open_readiness=False).start()
    clock = FakeClock()
    try:
        ok, state = wait(WaitTarget(s.url), 600, None, 10, clock=clock, sleep=clock.sleep)
        ok_keyed, _ = wait(WaitTarget(s.url, api_key="sk-k"), 600, None, 10, clock=clock, sleep=clock.sleep)
    finally:
        s.stop()
    assert not ok and clock.t == 0
    assert "the router wants its API key" in state.rows["router"][1]
    assert ok_keyed
