"""A small HTTP client on the standard library for the endpoint checks (no extra package).

Every call has a timeout and returns a :class:`Reply` instead of raising on HTTP errors, so
a check can say exactly what came back.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """What one request got.

    Attributes:
        status: HTTP status, or 0 when no response came (refused, timeout, DNS).
        body: response body (the whole body; for a stream, what was read).
        headers: response headers, lower-case names.
        error: why there was no usable response ("" when there was one).
        secs: wall time of the request in seconds.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    secs: float = 0.0

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: when it is not JSON.
        """
        return json.loads(self.body.decode("utf-8"))

    def brief(self) -> str:
        """``HTTP 503: first 120 chars of the body`` or the transport error, for a detail line."""
        if self.status == 0:
            return self.error
        text = self.body.decode("utf-8", "replace").strip().replace("\n", " ")
        return f"HTTP {self.status}" + (f": {text[:120]}" if text else "")


def request(
    method: str,
    url: str,
    payload: Any = None,
    api_key: str = "",
    timeout: float = 30.0,
) -> Reply:
    """Send one request; a JSON ``payload`` is sent as ``application/json``.

    Args:
        method: ``GET`` or ``POST``.
        url: full URL.
        payload: JSON-serializable body, or ``None``.
        api_key: sent as ``Authorization: Bearer <key>`` when not empty (never logged).
        timeout: seconds for connect and each read.

    Returns:
        The :class:`Reply` (status 0 with ``error`` when nothing came back).
    """
    req = _build(method, url, payload, api_key)
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            return Reply(resp.status, body, _headers(resp.headers), secs=time.monotonic() - start)
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.read(), _headers(e.headers), secs=time.monotonic() - start)
    except (TimeoutError, urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return Reply(0, error=f"no response from {url}: {reason}", secs=time.monotonic() - start)


def stream_events(
    url: str, payload: Any, api_key: str = "", timeout: float = 60.0
) -> tuple[Reply, list[str]]:
    """POST ``payload`` and read a server-sent-event stream line by line.

    Returns:
        The reply (status, headers, raw body read so far, error) and the ``data:`` payloads in
        order (``[DONE]`` included when the server sent it). A stream cut short keeps what
        arrived and sets ``error``.
    """
    req = _build("POST", url, payload, api_key)
    start = time.monotonic()
    events: list[str] = []
    raw = bytearray()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = Reply(resp.status, headers=_headers(resp.headers))
            try:
                for line in _lines(resp):
                    raw += line
                    text = line.decode("utf-8", "replace").strip()
                    if text.startswith("data:"):
                        events.append(text[5:].strip())
            except (TimeoutError, OSError, ValueError) as e:
                reply.error = f"stream cut short: {e}"
            reply.body = bytes(raw)
            reply.secs = time.monotonic() - start
            return reply, events
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.read(), _headers(e.headers), secs=time.monotonic() - start), events
    except (TimeoutError, urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return Reply(0, error=f"no response from {url}: {reason}", secs=time.monotonic() - start), events


def _lines(resp: Any) -> Iterator[bytes]:
    while True:
        line = resp.readline()
        if not line:
            return
        yield line


def _build(method: str, url: str, payload: Any, api_key: str) -> urllib.request.Request:
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    headers = {"Accept": "application/json, text/event-stream"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return urllib.request.Request(url, data=data, method=method, headers=headers)


def _headers(msg: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in msg.items()} if msg is not None else {}
