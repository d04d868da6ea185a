"""A small OpenAI-compatible stand-in for SGLang behind its router, on loopback.

A real SGLang server needs GPUs, so the smoke and wait tests talk to this instead. It answers
the endpoints ``infra.ops.smoke`` checks with the shapes SGLang 0.5.23 uses
(``sglang/srt/entrypoints/openai/protocol.py``: choices, usage, logprobs.token_logprobs,
SSE chunks ending in ``data: [DONE]``; native ``/generate`` with ``meta_info``), plus the
router's ``/readiness``. ``broken`` names smoke checks to break the way a real fault would:
``streaming`` cuts the stream before ``[DONE]``, ``stop sequences`` ignores ``stop``,
``logprobs`` drops them, ``generate`` answers 404.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "Qwen/Qwen3-0.6B"
WORDS = ["Paris", " is", " the", " capital", ",", " and", " a", " city", " of", " light", ".", " It"]


class StandIn:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is its root."""

    def __init__(
        self,
        broken: set[str] | None = None,
        api_key: str = "",
        ready: bool = True,
        open_readiness: bool = True,
        model_path: str = "",
        port: int = 0,
    ) -> None:
        self.broken = broken or set()
        # With a local tokenizer directory it also answers what a gateway (smg, sglang-router)
        # reads from a worker before it registers it: /server_info and /model_info (SGLang
        # 0.5.23 http_server.py shapes, as tests/conformance/gateway_worker.py serves them).
        info = {
            "model_path": model_path,
            "tokenizer_path": model_path,
            "served_model_name": MODEL,
            "is_generation": True,
            "model_type": "qwen2",
            "architectures": ["Qwen2ForCausalLM"],
        }
        server_info = {**info, "tp_size": 1, "dp_size": 1, "disaggregation_mode": "null", "version": "0.5.23"}
        self.open_readiness = open_readiness
        self.api_key = api_key
        self.ready = ready
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        stand = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, doc: Any, ctype: str = "application/json") -> None:
                body = (json.dumps(doc) if ctype == "application/json" else str(doc)).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self) -> bool:
                open_paths = ("/health", "/liveness", *(("/readiness",) if stand.open_readiness else ()))
                if not stand.api_key or self.path in open_paths:
                    return True
                return self.headers.get("Authorization") == f"Bearer {stand.api_key}"

            def do_GET(self) -> None:
                stand.requests.append(("GET", self.path, dict(self.headers)))
                if not self._authorized():
                    return self._send(401, {"error": "unauthorized"})
                if self.path == "/health":
                    return self._send(
                        200 if stand.ready else 503, "" if stand.ready else "loading", "text/plain"
                    )
                if self.path == "/readiness":
                    return self._send(200 if stand.ready else 503, {"ready": stand.ready})
                if model_path and self.path in ("/server_info", "/get_server_info"):
                    return self._send(200, server_info)
                if model_path and self.path in ("/model_info", "/get_model_info"):
                    return self._send(200, info)
                if model_path and self.path == "/get_load":
                    return self._send(200, [{"dp_rank": 0, "num_reqs": 0, "num_waiting_reqs": 0}])
                if self.path == "/v1/models":
                    if not stand.ready:
                        return self._send(503, {"error": "loading"})
                    return self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                return self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                req = json.loads(self.rfile.read(length) or b"{}")
                stand.requests.append(("POST", self.path, dict(self.headers)))
                if not self._authorized():
                    return self._send(401, {"error": "unauthorized"})
                if self.path == "/v1/completions":
                    return self._completions(req)
                if self.path == "/v1/chat/completions":
                    if req.get("stream"):
                        return self._stream(req)
                    n = min(int(req.get("max_tokens", 16)), len(WORDS))
                    return self._send(
                        200,
                        {
                            "object": "chat.completion",
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": "".join(WORDS[:n])},
                                    "finish_reason": "length",
                                }
                            ],
                            "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n},
                        },
                    )
                if self.path == "/generate":
                    if "generate" in stand.broken:
                        return self._send(404, {"detail": "Not Found"})
                    n = min(int(req.get("sampling_params", {}).get("max_new_tokens", 16)), len(WORDS))
                    return self._send(
                        200,
                        {
                            "text": "".join(WORDS[:n]),
                            "meta_info": {
                                "prompt_tokens": 5,
                                "completion_tokens": n,
                                "finish_reason": {"type": "length", "length": n},
                            },
                        },
                    )
                return self._send(404, {"error": "not found"})

            def _completions(self, req: dict[str, Any]) -> None:
                prompts = req.get("prompt")
                prompts = prompts if isinstance(prompts, list) else [prompts]
                n = min(int(req.get("max_tokens", 16)), len(WORDS))
                choices = []
                for i, _ in enumerate(prompts):
                    words = WORDS[:n]
                    finish = "length"
                    stops = req.get("stop") or []
                    if stops and "stop sequences" not in stand.broken:
                        cut = next((j for j, w in enumerate(words) if any(s in w for s in stops)), None)
                        if cut is not None:
                            words, finish = words[:cut], "stop"
                    choice: dict[str, Any] = {"index": i, "text": "".join(words), "finish_reason": finish}
                    if req.get("logprobs") is not None and "logprobs" not in stand.broken:
                        choice["logprobs"] = {
                            "tokens": words,
                            "token_logprobs": [-0.1 * (j + 1) for j in range(len(words))],
                            "top_logprobs": [{w: -0.1} for w in words],
                            "text_offset": list(range(len(words))),
                        }
                    choices.append(choice)
                tokens = sum(min(n, len(WORDS)) for _ in prompts)
                self._send(
                    200,
                    {
                        "object": "text_completion",
                        "model": req.get("model"),
                        "choices": choices,
                        "usage": {
                            "prompt_tokens": 5,
                            "completion_tokens": tokens,
                            "total_tokens": 5 + tokens,
                        },
                    },
                )

            def _stream(self, req: dict[str, Any]) -> None:
                n = min(int(req.get("max_tokens", 16)), len(WORDS))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i, w in enumerate(WORDS[:n]):
                    chunk = {
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {"content": w}}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if "streaming" in stand.broken and i == 2:
                        self.close_connection = True
                        return  # cut short: no [DONE]
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> StandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
