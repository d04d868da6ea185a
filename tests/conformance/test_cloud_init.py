"""Every cloud-config part of every node's user data passes cloud-init's own schema validator.

The validator is Debian bookworm's cloud-init package, unpacked by tools/setup-conformance.sh
and run as ``python -m cloudinit.cmd.main schema --config-file F`` (it checks one
``#cloud-config`` document, so the MIME parts are split first).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from infra.planning.userdata import split_mime
from tests.conformance.conftest import CLOUD_INIT_PYTHON, CLOUD_INIT_TREE, plan_json, require
from tests.conftest import STACKS


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(require(CLOUD_INIT_TREE))}
    return subprocess.run(
        [str(require(CLOUD_INIT_PYTHON)), "-m", "cloudinit.cmd.main", "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_cloud_config_part_is_valid(stack: str, tmp_path: Path) -> None:
    for node in plan_json(stack)["nodes"]:
        parts = split_mime(node["user_data"])
        assert set(parts) == {"text/cloud-config"}
        f = tmp_path / f"{node['name']}.yaml"
        f.write_text(parts["text/cloud-config"])
        proc = _validate(f)
        assert proc.returncode == 0, f"{stack}/{node['name']}: {proc.stdout}{proc.stderr}"
        assert "Valid cloud-config" in proc.stdout


def test_validator_really_rejects(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("#cloud-config\nwrite_files:\n  - path: 1\n    bogus: x\nruncmd: 5\n")
    proc = _validate(f)
    assert proc.returncode != 0 and "runcmd" in proc.stdout + proc.stderr
