"""``userdata/sglang-router-run`` rehearsed on a scratch root (``fake_node``) for both gateways.

The gateway binary in ``/opt/sglang-router/bin`` is a stand-in that records its arguments (the
real binaries run in ``test_gateway_live.py``): the router node must exec exactly the planned
argv from that venv, plus ``--api-key`` from the secrets file, and never log the key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.planning.cluster import plan_cluster, router_boot
from infra.spec import parse_config
from tests.conformance.fake_node import make_node
from tests.conftest import base_config

KEY = "sk-s3cr3t-gateway-key"


@pytest.mark.parametrize(("gateway", "binary"), [("smg", "smg"), ("sglang-router", "python3")])
def test_router_run_execs_the_planned_argv_from_the_gateway_venv(
    gateway: str, binary: str, tmp_path: Path
) -> None:
    plan = plan_cluster(parse_config(base_config(gateway=gateway)), "prod")
    argv = router_boot(plan, {0: "10.0.1.10"}).processes[0]
    node = make_node(tmp_path, {"SGLANG_ROLE": "router", "SGLANG_GATEWAY": gateway})
    (node.root / "etc/sglang/router.argv").write_text("\n".join(argv) + "\n")
    venv_bin = node.root / "opt/sglang-router/bin"
    venv_bin.mkdir(parents=True)
    record = tmp_path / "exec.args"
    (venv_bin / binary).write_text(f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" > {record}\n')
    (venv_bin / binary).chmod(0o755)
    (node.root / "run/sglang").mkdir(parents=True, exist_ok=True)
    (node.root / "run/sglang/secrets.env").write_text(f"SGLANG_ROUTER_API_KEY={KEY}\n")
    proc = node.run("sglang-router-run")
    assert proc.returncode == 0, proc.stderr
    ran = record.read_text().splitlines()
    assert ran == [str(venv_bin / binary), *argv[1:], "--api-key", KEY]
    assert KEY not in proc.stdout + proc.stderr
    assert all(KEY not in p.read_text() for p in (node.root / "var/log/sglang").glob("*"))
