"""What the operator commands read about a deployed stack: ``pulumi stack output`` and the
router API key, through the Pulumi CLI when it is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[2]
"""Where ``Pulumi.yaml`` is: the Pulumi CLI runs from here."""

API_KEY_ENV = "SGLANG_API_KEY"
"""Environment variable the commands read the router API key from (then ``OPENAI_API_KEY``)."""


class OpsError(Exception):
    """A problem that stops a command before any check runs; the message is one line."""


def pulumi_cli() -> str | None:
    """Path of the ``pulumi`` executable, or ``None`` when it is not on ``PATH``."""
    return shutil.which("pulumi")


def _pulumi(args: list[str]) -> str:
    exe = pulumi_cli()
    if exe is None:
        raise OpsError(
            "the pulumi CLI is not on PATH: pass --url instead "
            "(the value of `pulumi stack output router_url`)"
        )
    proc = subprocess.run(
        [exe, *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise OpsError(f"`pulumi {' '.join(args)}` failed: {last}")
    return proc.stdout


def stack_outputs(stack: str) -> dict[str, Any]:
    """``pulumi stack output --json --stack STACK`` as a dict (secrets stay ``[secret]``).

    Raises:
        OpsError: no Pulumi CLI, an unknown stack, or output that is not a JSON object.
    """
    text = _pulumi(["stack", "output", "--json", "--stack", stack])
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise OpsError(f"`pulumi stack output --json --stack {stack}` did not print JSON: {e}") from None
    if not isinstance(doc, dict):
        raise OpsError(f"`pulumi stack output --json --stack {stack}` did not print a JSON object")
    return doc


def api_key(stack: str | None, given: str | None) -> str:
    """The router API key: ``given`` (``--api-key``), else ``$SGLANG_API_KEY``, else
    ``$OPENAI_API_KEY``, else ``pulumi config get router_api_key`` of ``stack`` when the CLI is
    there. ``""`` = none. The key is never printed."""
    if given:
        return given
    for name in (API_KEY_ENV, "OPENAI_API_KEY"):
        if os.environ.get(name):
            return os.environ[name]
    if stack and pulumi_cli():
        try:
            return _pulumi(["config", "get", "router_api_key", "--stack", stack]).strip()
        except OpsError:
            return ""
    return ""


def base_url(url: str) -> str:
    """The router's root URL: ``http://host:8000`` from ``.../v1``, ``.../health`` or with a
    trailing slash."""
    u = url.strip().rstrip("/")
    for suffix in ("/v1", "/health"):
        if u.endswith(suffix):
            u = u[: -len(suffix)]
    return u
