"""``python -m infra smoke``: the checks of seed 000's ``test.sh`` against a live endpoint.

Every check is one request (streaming: one streamed request) against the router (or any
OpenAI-compatible SGLang endpoint) and gives pass or fail with one detail line:

==============  ==================================================================
models          ``GET /v1/models`` lists the served model (its id is used below)
completion      ``POST /v1/completions``: text and ``usage.completion_tokens`` > 0
batch prompts   ``POST /v1/completions`` with 3 prompts: 3 choices, indices 0..2
chat            ``POST /v1/chat/completions``: an assistant message (``content`` or,
                with a reasoning parser, ``reasoning_content``)
sampling        temperature/top_p/top_k/max_tokens honoured: at most ``max_tokens`` tokens
streaming       ``stream: true``: ``text/event-stream``, JSON chunks, ends with ``[DONE]``
logprobs        ``logprobs: 1`` on a completion: one number per generated token
stop sequences  ``stop: [","]``: finish reason ``stop`` and no ``,`` in the text
generate        SGLang's native ``POST /generate``: ``text`` and ``meta_info``
health          ``GET /health`` answers 200
==============  ==================================================================

Endpoints and fields: OpenAI API reference (https://platform.openai.com/docs/api-reference)
as SGLang 0.5.23 serves it (``sglang/srt/entrypoints/openai/protocol.py``) and SGLang's native
``/generate`` (``sglang/srt/entrypoints/http_server.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.ops import http
from infra.ops.report import Check

CHECK_NAMES: tuple[str, ...] = (
    "models",
    "completion",
    "batch prompts",
    "chat",
    "sampling",
    "streaming",
    "logprobs",
    "stop sequences",
    "generate",
    "health",
)


class CheckFailedError(Exception):
    """One check's failure; the message is the detail line."""


@dataclass
class Target:
    """The endpoint under test.

    Attributes:
        url: root URL (``http://host:8000``, no ``/v1``).
        api_key: bearer key ("" = none); never printed.
        model: model id to send; found through ``/v1/models`` when empty.
        timeout: seconds per request (a cold first request can be slow).
    """

    url: str
    api_key: str = ""
    model: str = ""
    timeout: float = 120.0

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        """POST JSON and return the parsed JSON reply.

        Raises:
            CheckFailedError: on a non-200 reply, no reply, or a body that is not JSON.
        """
        reply = http.request("POST", self.url + path, payload, self.api_key, self.timeout)
        return _json_ok(reply, f"POST {path}")

    def get(self, path: str) -> http.Reply:
        """GET ``path``."""
        return http.request("GET", self.url + path, None, self.api_key, self.timeout)


def _json_ok(reply: http.Reply, what: str) -> Any:
    if reply.status == 401:
        raise CheckFailedError(
            f"{what}: HTTP 401 (the router wants an API key: --api-key or $SGLANG_API_KEY)"
        )
    if reply.status != 200:
        raise CheckFailedError(f"{what}: {reply.brief()}")
    try:
        return reply.json()
    except ValueError:
        raise CheckFailedError(f"{what}: the reply is not JSON ({reply.body[:80]!r})") from None


def _choices(doc: Any, n: int, what: str) -> list[dict[str, Any]]:
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list) or len(choices) != n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise CheckFailedError(f"{what}: expected {n} choice(s), got {got}")
    return choices


def check_models(t: Target) -> str:
    """``GET /v1/models`` lists a model; sets ``t.model`` when unset. Returns the detail line.

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    doc = _json_ok(t.get("/v1/models"), "GET /v1/models")
    ids = [m.get("id") for m in doc.get("data", []) if isinstance(m, dict)] if isinstance(doc, dict) else []
    if not ids:
        raise CheckFailedError("GET /v1/models: no model listed")
    if t.model and t.model not in ids:
        raise CheckFailedError(
            f"GET /v1/models: {t.model!r} is not served (served: {', '.join(map(str, ids))})"
        )
    if not t.model:
        t.model = str(ids[0])
    return f"serves {', '.join(map(str, ids))}"


def check_completion(t: Target) -> str:
    """``POST /v1/completions``: text and completion tokens.

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    doc = t.post(
        "/v1/completions", {"model": t.model, "prompt": "The capital of France is", "max_tokens": 16}
    )
    text = _choices(doc, 1, "completion")[0].get("text")
    tokens = (doc.get("usage") or {}).get("completion_tokens", 0)
    if not isinstance(text, str) or not tokens:
        raise CheckFailedError(
            f"completion: no text or no completion tokens (text={text!r}, tokens={tokens})"
        )
    return f"{tokens} token(s): {text.strip()[:60]!r}"


def check_batch(t: Target) -> str:
    """``POST /v1/completions`` with three prompts: three choices with indices 0..2.

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    prompts = ["1 + 1 =", "The color of the sky is", "Hello, my name is"]
    doc = t.post("/v1/completions", {"model": t.model, "prompt": prompts, "max_tokens": 8})
    choices = _choices(doc, len(prompts), "batch prompts")
    indices = sorted(int(c.get("index", -1)) for c in choices)
    if indices != list(range(len(prompts))):
        raise CheckFailedError(f"batch prompts: choice indices {indices}, expected 0..{len(prompts) - 1}")
    if not all(isinstance(c.get("text"), str) for c in choices):
        raise CheckFailedError("batch prompts: a choice has no text")
    return f"{len(prompts)} prompts, {len(choices)} choices"


def check_chat(t: Target) -> str:
    """``POST /v1/chat/completions``: an assistant message (content or reasoning_content).

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    doc = t.post(
        "/v1/chat/completions",
        {"model": t.model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 32},
    )
    msg = _choices(doc, 1, "chat")[0].get("message") or {}
    if msg.get("role") != "assistant":
        raise CheckFailedError(f"chat: message role {msg.get('role')!r}, expected 'assistant'")
    text = msg.get("content") or msg.get("reasoning_content")
    if not isinstance(text, str) or not text:
        raise CheckFailedError("chat: neither content nor reasoning_content in the assistant message")
    return f"assistant: {text.strip()[:60]!r}"


def check_sampling(t: Target) -> str:
    """Sampling parameters accepted and ``max_tokens`` honoured.

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    limit = 8
    doc = t.post(
        "/v1/completions",
        {
            "model": t.model,
            "prompt": "Once upon a time",
            "max_tokens": limit,
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 20,
            "seed": 1,
        },
    )
    choice = _choices(doc, 1, "sampling")[0]
    tokens = (doc.get("usage") or {}).get("completion_tokens")
    if not isinstance(tokens, int) or not 0 < tokens <= limit:
        raise CheckFailedError(f"sampling: {tokens} completion tokens with max_tokens {limit}")
    if choice.get("finish_reason") not in ("length", "stop"):
        raise CheckFailedError(f"sampling: finish_reason {choice.get('finish_reason')!r}")
    return f"temperature 0.7, top_p 0.9, top_k 20: {tokens} token(s) (max {limit})"


def check_streaming(t: Target) -> str:
    """``stream: true``: server-sent events, JSON chunks with content, final ``[DONE]``.

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    reply, events = http.stream_events(
        t.url + "/v1/chat/completions",
        {
            "model": t.model,
            "messages": [{"role": "user", "content": "Count to five."}],
            "max_tokens": 16,
            "stream": True,
        },
        t.api_key,
        t.timeout,
    )
    if reply.status != 200:
        raise CheckFailedError(f"streaming: {reply.brief()}")
    ctype = reply.headers.get("content-type", "")
    if "text/event-stream" not in ctype:
        raise CheckFailedError(f"streaming: content-type {ctype!r}, expected text/event-stream")
    if reply.error:
        raise CheckFailedError(f"streaming: {reply.error} after {len(events)} event(s)")
    if not events or events[-1] != "[DONE]":
        raise CheckFailedError(f"streaming: {len(events)} event(s) and no final 'data: [DONE]'")
    chunks = events[:-1]
    deltas = 0
    for e in chunks:
        try:
            doc = json.loads(e)
        except ValueError:
            raise CheckFailedError(f"streaming: an event is not JSON: {e[:80]!r}") from None
        for c in doc.get("choices", []):
            delta = c.get("delta") or {}
            if delta.get("content") or delta.get("reasoning_content"):
                deltas += 1
    if deltas == 0:
        raise CheckFailedError(f"streaming: {len(chunks)} chunk(s) but no content delta")
    return f"{len(chunks)} chunk(s), {deltas} with content, then [DONE]"


def check_logprobs(t: Target) -> str:
    """``logprobs: 1``: one log-probability (<= 0) per generated token.

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    doc = t.post(
        "/v1/completions",
        {"model": t.model, "prompt": "The first letter of the alphabet is", "max_tokens": 4, "logprobs": 1},
    )
    lp = _choices(doc, 1, "logprobs")[0].get("logprobs") or {}
    values = lp.get("token_logprobs")
    if not isinstance(values, list) or not values:
        raise CheckFailedError("logprobs: no choices[0].logprobs.token_logprobs in the reply")
    if not all(isinstance(v, int | float) and v <= 0 for v in values):
        raise CheckFailedError(f"logprobs: token_logprobs are not log-probabilities (<= 0): {values[:4]}")
    return f"{len(values)} token logprob(s), first {values[0]:.3f}"


def check_stop(t: Target) -> str:
    """``stop: [","]``: finish reason ``stop`` and no stop string in the text.

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    doc = t.post(
        "/v1/completions",
        {
            "model": t.model,
            "prompt": "Count from one: 1, 2, 3,",
            "max_tokens": 32,
            "stop": [","],
            "temperature": 0,
        },
    )
    choice = _choices(doc, 1, "stop sequences")[0]
    text = choice.get("text", "")
    if "," in str(text):
        raise CheckFailedError(f"stop sequences: the stop string ',' is in the text {text!r}")
    if choice.get("finish_reason") != "stop":
        raise CheckFailedError(
            f"stop sequences: finish_reason {choice.get('finish_reason')!r}, expected 'stop'"
        )
    return f"stopped at ',' after {str(text).strip()!r}"


def check_generate(t: Target) -> str:
    """SGLang's native ``POST /generate``: ``text`` and ``meta_info.completion_tokens``.

    The body names ``model`` (``t.model``): smg 1.13.0 with worker discovery (the default
    gateway) runs in multi-model mode and answers a ``/generate`` without it with 400
    ``missing_model``; SGLang 0.5.23's ``/generate`` ignores the extra key
    (``tests/conformance/test_gateway_native_generate.py``).

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    body: dict[str, Any] = {
        "text": "The capital of France is",
        "sampling_params": {"max_new_tokens": 16, "temperature": 0},
    }
    if t.model:
        body["model"] = t.model
    doc = t.post("/generate", body)
    if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
        raise CheckFailedError("generate: no 'text' in the reply of POST /generate")
    meta = doc.get("meta_info") or {}
    tokens = meta.get("completion_tokens")
    if not tokens:
        raise CheckFailedError("generate: no meta_info.completion_tokens in the reply")
    return f"{tokens} token(s), finish {(meta.get('finish_reason') or {}).get('type', '?')}"


def check_health(t: Target) -> str:
    """``GET /health`` answers 200.

    Raises:
        CheckFailedError: with the detail line when the check fails.
    """
    reply = t.get("/health")
    if reply.status != 200:
        raise CheckFailedError(f"GET /health: {reply.brief()}")
    return f"HTTP 200 in {reply.secs * 1000:.0f} ms"


CHECKS: dict[str, Callable[[Target], str]] = {
    "models": check_models,
    "completion": check_completion,
    "batch prompts": check_batch,
    "chat": check_chat,
    "sampling": check_sampling,
    "streaming": check_streaming,
    "logprobs": check_logprobs,
    "stop sequences": check_stop,
    "generate": check_generate,
    "health": check_health,
}
assert tuple(CHECKS) == CHECK_NAMES


def run_smoke(target: Target) -> list[Check]:
    """Run every check in order against ``target``.

    A failed ``models`` check without ``target.model`` leaves the other checks without a
    model id; they still run (with model ``default``) so the table shows everything at once.

    Returns:
        One :class:`~infra.ops.report.Check` per name of :data:`CHECK_NAMES`, in that order.
    """
    out: list[Check] = []
    for name, fn in CHECKS.items():
        try:
            detail = fn(target)
            out.append(Check(name, "pass", detail))
        except CheckFailedError as e:
            out.append(Check(name, "fail", str(e)))
        if name == "models" and not target.model:
            target.model = "default"
    return out
