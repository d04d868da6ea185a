"""A stand-in SGLang worker for router tests on loopback.

A real ``sglang.launch_server`` needs GPUs, which no machine here has, so this stdlib HTTP server
answers the endpoints the router calls (``/health``, ``/server_info``, ``/model_info``,
``/v1/models``) and ``/v1/chat/completions`` with a fixed reply naming its port.

Usage: python mock_worker.py PORT MODEL [MODEL_PATH]

With MODEL_PATH, the worker answers as SGLang 0.5.23 does for a server started with
``--model-path MODEL_PATH --served-model-name MODEL`` (``http_server.py`` ``model_info``):
``model_path`` and ``tokenizer_path`` are MODEL_PATH, ``served_model_name`` is MODEL.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
MODEL = sys.argv[2]
MODEL_PATH = sys.argv[3] if len(sys.argv) > 3 else MODEL
INFO: dict[str, object] = {"model_path": MODEL_PATH, "tp_size": 1, "dp_size": 1, "is_generation": True}
if len(sys.argv) > 3:
    INFO.update(tokenizer_path=MODEL_PATH, served_model_name=MODEL)


class Handler(BaseHTTPRequestHandler):
    def _send(self, code: int, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/health", "/health_generate"):
            self._send(200, {})
        elif self.path in ("/server_info", "/get_server_info", "/model_info", "/get_model_info"):
            self._send(200, INFO)
        elif self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._send(404, {})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/chat/completions":
            msg = {"role": "assistant", "content": f"mock worker {PORT}"}
            self._send(
                200,
                {
                    "object": "chat.completion",
                    "model": MODEL,
                    "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                },
            )
        else:
            self._send(404, {})

    def log_message(self, format: str, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
