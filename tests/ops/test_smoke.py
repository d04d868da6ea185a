"""``python -m infra smoke`` against the loopback stand-in (a real SGLang server needs GPUs):
a correct one passes every check; a broken one fails exactly the broken check."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from infra.cli import main
from infra.ops.smoke import CHECK_NAMES, Target, run_smoke
from tests.ops.openai_standin import MODEL, StandIn


@pytest.fixture
def standin() -> Iterator[StandIn]:
    s = StandIn().start()
    yield s
    s.stop()


def test_every_check_passes_against_a_correct_endpoint(standin: StandIn) -> None:
    checks = run_smoke(Target(standin.url, timeout=10))
    assert [c.name for c in checks] == list(CHECK_NAMES)
    assert [c.name for c in checks if c.status != "pass"] == [], checks
    assert MODEL in checks[0].detail


@pytest.mark.parametrize("broken", ["streaming", "stop sequences", "logprobs", "generate"])
def test_a_broken_check_is_the_only_failure(broken: str) -> None:
    s = StandIn(broken={broken}).start()
    try:
        checks = run_smoke(Target(s.url, timeout=10))
    finally:
        s.stop()
    assert [c.name for c in checks if c.status == "fail"] == [broken]


def test_cli_table_exit_code_and_streaming_detail(capsys: pytest.CaptureFixture[str]) -> None:
    s = StandIn(broken={"streaming"}).start()
    try:
        code = main(["smoke", "--url", s.url + "/v1", "--timeout", "10"])
    finally:
        s.stop()
    out = capsys.readouterr().out
    assert code == 1
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("streaming"))
    assert "FAIL" in line and "no final 'data: [DONE]'" in line
    assert "9 passed, 1 failed" in out


def test_api_key_is_sent_and_never_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sk-smoke-test-0123456789"
    s = StandIn(api_key=key).start()
    try:
        assert main(["smoke", "--url", s.url, "--timeout", "10"]) == 1  # no key: 401s
        no_key = capsys.readouterr().out
        monkeypatch.setenv("SGLANG_API_KEY", key)
        assert main(["smoke", "--url", s.url, "--timeout", "10"]) == 0
        with_key = capsys.readouterr().out
    finally:
        s.stop()
    assert "HTTP 401" in no_key and "10 passed, 0 failed" in with_key
    assert key not in no_key + with_key
    posts = [h for m, _, h in s.requests if m == "POST"]
    assert posts and all(
        h.get("Authorization") == f"Bearer {key}" for h in posts[-8:]
    )  # the 8 POSTs of the keyed run


def test_no_endpoint_is_one_line_per_check() -> None:
    out = io.StringIO()
    checks = run_smoke(Target("http://127.0.0.1:9", timeout=2))
    assert all(c.status == "fail" and "no response" in c.detail for c in checks)
    from infra.ops.report import render_checks

    render_checks("smoke", checks, out)
    assert "Traceback" not in out.getvalue()
