"""A stand-in SGLang 0.5.23 worker (regular, prefill or decode) for gateway tests on loopback.

This is a test double: a real ``sglang.launch_server`` needs GPUs, which no machine here has.
It answers what smg 1.13.0 and sglang-router 0.3.2 call on a worker, with the shapes SGLang
0.5.23's ``http_server.py`` gives them: ``/health`` (and ``/health_generate``),
``/server_info`` and ``/get_server_info`` (with ``disaggregation_mode`` and the bootstrap port
of a prefill server), ``/model_info`` and ``/get_model_info`` (``model_path`` and
``tokenizer_path`` = a local tokenizer directory, ``served_model_name``), ``/v1/models``,
``/get_load``, and the serving routes ``/generate``, ``/v1/chat/completions`` and
``/v1/completions``. It does no inference: a serving route answers with a reply that names
the worker's port and role.

Every serving request is appended as one JSON line to ``--log`` (``port``, ``role``, ``path``,
the ``bootstrap_room``/``bootstrap_host``/``bootstrap_port`` the gateway injected in PD mode,
the ``Authorization`` header's presence, and the first 64 characters of the prompt), so a test
sees which worker got which request and that a PD request reached both a prefill and a decode
worker with the same bootstrap room.

Usage: python gateway_worker.py --port PORT --model NAME --model-path DIR
                                [--role regular|prefill|decode] [--bootstrap-port N] [--log FILE]
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--model-path", required=True)
ap.add_argument("--role", choices=["regular", "prefill", "decode"], default="regular")
ap.add_argument("--bootstrap-port", type=int, default=0)
ap.add_argument("--log", default="")
ARGS = ap.parse_args()
LOCK = threading.Lock()

MODE = "null" if ARGS.role == "regular" else ARGS.role
MODEL_INFO = {
    "model_path": ARGS.model_path,
    "tokenizer_path": ARGS.model_path,
    "served_model_name": ARGS.model,
    "is_generation": True,
    "weight_version": "default",
    "has_image_understanding": False,
    "has_audio_understanding": False,
    "model_type": "qwen2",
    "architectures": ["Qwen2ForCausalLM"],
}
SERVER_INFO = {
    **MODEL_INFO,
    "tp_size": 1,
    "dp_size": 1,
    "disaggregation_mode": MODE,
    "disaggregation_bootstrap_port": ARGS.bootstrap_port or 8998,
    "max_total_num_tokens": 100000,
    "version": "0.5.23",
}


def _prompt(body: dict) -> str:
    if "text" in body:
        return str(body["text"])
    if "messages" in body:
        return " ".join(str(m.get("content", "")) for m in body["messages"])
    return str(body.get("prompt", ""))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, code: int, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/health", "/health_generate", "/liveness", "/readiness"):
            self._send(200, {})
        elif path in ("/server_info", "/get_server_info"):
            self._send(200, SERVER_INFO)
        elif path in ("/model_info", "/get_model_info"):
            self._send(200, MODEL_INFO)
        elif path == "/v1/models":
            card = {"id": ARGS.model, "object": "model", "root": ARGS.model_path, "owned_by": "sglang"}
            self._send(200, {"object": "list", "data": [card]})
        elif path == "/get_load":
            self._send(200, [{"dp_rank": 0, "num_reqs": 0, "num_waiting_reqs": 0, "num_tokens": 0}])
        else:
            self._send(404, {"error": f"no route {path}"})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        path = self.path.split("?", 1)[0]
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if path not in ("/generate", "/v1/chat/completions", "/v1/completions"):
            self._send(404, {"error": f"no route {path}"})
            return
        if ARGS.log:
            entry = {
                "port": ARGS.port,
                "role": ARGS.role,
                "path": path,
                "bootstrap_room": body.get("bootstrap_room"),
                "bootstrap_host": body.get("bootstrap_host"),
                "bootstrap_port": body.get("bootstrap_port"),
                "authorization": "Authorization" in self.headers,
                "prompt": _prompt(body)[:64],
            }
            with LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
        text = f"stand-in {ARGS.role} worker {ARGS.port}"
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        if path == "/generate":
            meta = {"id": "0", "finish_reason": {"type": "stop"}, "prompt_tokens": 1, "completion_tokens": 1}
            self._send(200, {"text": text, "output_ids": [1], "meta_info": meta})
        elif path == "/v1/completions":
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            self._send(
                200,
                {
                    "id": "cmpl-0",
                    "object": "text_completion",
                    "created": 0,
                    "model": ARGS.model,
                    "choices": [choice],
                    "usage": usage,
                },
            )
        else:
            msg = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": msg, "finish_reason": "stop", "logprobs": None}
            self._send(
                200,
                {
                    "id": "chatcmpl-0",
                    "object": "chat.completion",
                    "created": 0,
                    "model": ARGS.model,
                    "choices": [choice],
                    "usage": usage,
                },
            )

    def log_message(self, format: str, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler).serve_forever()
