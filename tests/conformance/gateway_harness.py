"""Loopback harness for the gateway tests: stand-in workers, a real gateway, bounded waits.

The gateways are the real binaries (smg 1.13.0 from ``.tools/smg-venv``, sglang-router 0.3.2
from ``.tools/router-venv``); the workers are ``gateway_worker.py`` test doubles (an SGLang
server needs GPUs). Every process goes into the caller's list and is killed by the ``procs``
fixture; every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conformance.conftest import HERE, ROUTER_PYTHON, TOOLS, require

SMG_VENV = Path(os.environ.get("SMG_VENV", str(TOOLS / "smg-venv")))
"""smg's own venv (``tools/setup-conformance.sh``); ``SMG_VENV`` points elsewhere."""
SMG_BIN = SMG_VENV / "bin" / "smg"
SMG_PYTHON = SMG_VENV / "bin" / "python"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], bool], seconds: float, every: float = 0.2) -> bool:
    """Poll ``pred`` until it is true or ``seconds`` pass; network errors count as false."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(every)
    return False


def http(method: str, url: str, body: Any = None, key: str = "", timeout: float = 10) -> tuple[int, Any]:
    """One request; ``(status, parsed JSON or text or None)``, HTTP errors included."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def write_tokenizer_dir(path: Path) -> Path:
    """A tiny local Hugging Face tokenizer directory (WordLevel ``tokenizer.json``, a chat
    template in ``tokenizer_config.json``, ``config.json``), what the stand-in workers report
    as their ``model_path``/``tokenizer_path`` so a gateway that loads the worker's tokenizer
    never reaches for the hub."""
    path.mkdir(parents=True, exist_ok=True)
    words = "hello world shared long prefix question answer user assistant system the a of".split()
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2} | {w: i + 3 for i, w in enumerate(words)}
    special = [
        {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for c, i in (("<|im_start|>", 1), ("<|im_end|>", 2))
    ]  # fmt: skip
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": special,
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    }
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant{% endif %}"
    )
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|im_end|>",
        "chat_template": template,
    }
    (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    model = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": len(vocab)}
    (path / "config.json").write_text(json.dumps(model))
    return path


@dataclass
class StandIn:
    """One stand-in worker process."""

    port: int
    role: str
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_worker(
    procs: list,
    port: int,
    model: str,
    tokenizer_dir: Path,
    log: Path,
    role: str = "regular",
    bootstrap_port: int = 0,
) -> StandIn:
    """Start ``gateway_worker.py`` on ``port`` and wait (10 s at most) until it answers."""
    cmd = [sys.executable, str(HERE / "gateway_worker.py"), "--port", str(port), "--model", model]
    cmd += ["--model-path", str(tokenizer_dir), "--role", role, "--log", str(log)]
    if bootstrap_port:
        cmd += ["--bootstrap-port", str(bootstrap_port)]
    proc = subprocess.Popen(cmd)
    procs.append(proc)
    worker = StandIn(port, role, proc)
    assert wait_for(lambda: http("GET", f"{worker.url}/health", timeout=1)[0] == 200, 10), cmd
    return worker


def stop(proc: subprocess.Popen) -> None:
    """Kill one process we started and reap it."""
    proc.kill()
    proc.wait(timeout=10)


def gateway_command(argv: Sequence[str]) -> list[str]:
    """The local command for a plan's gateway argv: the same arguments, run from the tool venv.

    ``["smg", "launch", ...]`` runs ``.tools/smg-venv/bin/smg``; ``["python3", "-m",
    "sglang_router.launch_router", ...]`` runs the router venv's python.
    """
    if argv[0] == "smg":
        return [str(require(SMG_BIN)), *argv[1:]]
    assert list(argv[:3]) == ["python3", "-m", "sglang_router.launch_router"], argv[:3]
    return [str(require(ROUTER_PYTHON)), *argv[1:]]


def start_gateway(procs: list, argv: Sequence[str], log: Path) -> subprocess.Popen:
    """Start the gateway with ``argv`` (see :func:`gateway_command`), output to ``log``."""
    out = log.open("w")
    proc = subprocess.Popen(gateway_command(argv), stdout=out, stderr=subprocess.STDOUT)
    procs.append(proc)
    return proc


def requests_seen(log: Path) -> list[dict[str, Any]]:
    """The serving requests every stand-in logged (one JSON object each)."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
