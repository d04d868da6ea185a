"""``userdata/sglang-router-sync`` against a stand-in router on loopback, with a hand-moved clock.

The stand-in answers ``GET /workers`` from a list the test controls and counts every
``POST /workers``, like sglang-router 0.3.2's API (``tests/conformance/test_router_sync_live.py``
runs the same script against the real binary). The clock is the script's own injection point,
so every step is deterministic: no sleeps, no timed assertions.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.machinery import SourceFileLoader
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ROOT

A, B = "http://10.0.1.10:30000", "http://10.0.1.11:30000"
TIMEOUT, CHECK = 1800.0, 30.0
SETTLE = TIMEOUT + 2 * CHECK


def _load() -> ModuleType:
    """The script as a module (it has no ``.py`` suffix)."""
    loader = SourceFileLoader("router_sync", str(ROOT / "userdata" / "sglang-router-sync"))
    spec = importlib.util.spec_from_loader("router_sync", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


sync_mod = _load()


class StandIn:
    """The router's worker API: a worker list and a log of POSTed URLs."""

    def __init__(self) -> None:
        self.workers: list[str] = []
        self.posts: list[str] = []
        self.fail_posts = False
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, obj: Any) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(200, {"workers": [{"url": u, "is_healthy": True} for u in stand_in.workers]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                stand_in.posts.append(body["url"])
                if stand_in.fail_posts:
                    self._send(500, {"error": "busy"})
                else:
                    self._send(202, {"status": "accepted", "url": body["url"]})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def router() -> Iterator[StandIn]:
    s = StandIn()
    yield s
    s.server.shutdown()
    s.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _syncer(router: StandIn, clock: Clock, logs: list[str]) -> Any:
    return sync_mod.Syncer(router.base, [A, B], SETTLE, logs.append, clock=clock)


def test_no_add_while_the_router_still_tries_its_initial_workers(router: StandIn) -> None:
    clock, logs = Clock(), []
    s = _syncer(router, clock, logs)
    started = clock.now
    router.workers = [A]  # B is still starting: the router's own attempt runs for TIMEOUT
    for step in (0, 30, 600, TIMEOUT, SETTLE - 1):
        clock.now = started + step
        assert s.sync_once(started) == []
    assert router.posts == []
    clock.now = started + SETTLE
    assert s.sync_once(started) == [B]
    assert router.posts == [B]


def test_a_posted_url_is_not_posted_again_while_its_job_is_pending(router: StandIn) -> None:
    clock, logs = Clock(), []
    s = _syncer(router, clock, logs)
    started = clock.now - SETTLE  # the router's own attempt is over
    router.workers = [A]
    assert s.sync_once(started) == [B]
    posted_at = clock.now
    for step in (30, 60, 900, SETTLE - 0.5):  # every 30 s cycle of the old script re-posted
        clock.now = posted_at + step
        assert s.sync_once(started) == []
    assert router.posts == [B]
    clock.now = posted_at + SETTLE
    assert s.sync_once(started) == [B]  # the job ran out: one more attempt
    assert router.posts == [B, B]
    assert logs.count(f"router-sync: re-added worker {B}") == 2


def test_a_worker_seen_then_lost_is_re_added_at_once(router: StandIn) -> None:
    clock, logs = Clock(), []
    s = _syncer(router, clock, logs)
    started = clock.now - SETTLE
    router.workers = [A]
    assert s.sync_once(started) == [B]
    clock.now += 60
    router.workers = [A, B]  # the job succeeded
    assert s.sync_once(started) == []
    clock.now += 60
    router.workers = [A]  # the router dropped it later (removed, restarted worker, ...)
    assert s.sync_once(started) == [B]


def test_a_router_restart_resets_the_memory_and_waits_again(router: StandIn) -> None:
    clock, logs = Clock(), []
    s = _syncer(router, clock, logs)
    first = clock.now - SETTLE
    router.workers = [A]
    assert s.sync_once(first) == [B]
    clock.now += 10
    restarted = clock.now  # systemd started the router again: it tries B itself
    assert s.sync_once(restarted) == []
    assert "router-sync: the router restarted; forgetting earlier add requests" in logs
    clock.now = restarted + SETTLE
    assert s.sync_once(restarted) == [B]


def test_a_refused_post_is_retried_next_cycle(router: StandIn) -> None:
    clock, logs = Clock(), []
    s = _syncer(router, clock, logs)
    started = clock.now - SETTLE
    router.workers = [A]
    router.fail_posts = True
    assert s.sync_once(started) == []
    assert any(m.startswith(f"router-sync: could not add {B}") for m in logs)
    router.fail_posts = False
    clock.now += 30
    assert s.sync_once(started) == [B]
    assert router.posts == [B, B]


def test_router_start_from_systemd_or_fallback(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``systemctl`` first on PATH answers like systemd 249's ``show --value``."""
    fake = tmp_path / "systemctl"
    fake.write_text('#!/bin/sh\n[ "$4" = sglang-router.service ] && echo 123456789 && exit 0\necho 0\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert sync_mod.router_started("sglang-router.service", 5.0) == pytest.approx(123.456789)
    assert sync_mod.router_started("other.service", 5.0) == 5.0  # 0 = never started
    assert sync_mod.router_started("", 5.0) == 5.0
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert sync_mod.router_started("sglang-router.service", 5.0) == 5.0  # no systemctl
