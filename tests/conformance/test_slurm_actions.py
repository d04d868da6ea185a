"""Rehearsal of the SLURM backend's custom-action scripts (``slurm/custom-actions/``), run
unmodified by real bash and coreutils in a scratch root (``SGLANG_ROOT``).

Stood in, because this machine has no AWS account, no Slurm controller of a ParallelCluster
cluster and no root-only user switching: ``aws`` (S3 and ECR, failing first with the AWS CLI's
throttling errors), ``squeue``/``sbatch``/``scontrol`` (a queue kept in a file), ``runuser``,
``chown``, ``docker``, ``apt-get``, ``nvidia-ctk`` and ``systemctl`` (each records its argv).
ParallelCluster's own files are stood in by the sample configuration files it ships under
``/opt/parallelcluster/examples`` and ``/etc/parallelcluster/cfnconfig``.
Not rehearsed here: ``sglang-router-node.sh`` (it installs the router from PyPI).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

ACTIONS = ROOT / "slurm" / "custom-actions"
ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sglang-image-repo-1234567@sha256:" + "0" * 64

STANDINS = {
    "aws": r"""
case "$1 $2" in
  "s3 cp")
    src="${*: -2:1}"; dst="${*: -1}"
    fail_first s3 "${FAKE_S3_FAILS:-0}" 1 \
      "download failed: ${src} to ${dst} An error occurred (SlowDown) when calling the GetObject operation (reached max retries: 2): Please reduce your request rate."
    cp "${FAKE_S3_DIR}/${src#s3://*/}" "${dst}";;
  "ecr get-login-password")
    fail_first ecr "${FAKE_ECR_FAILS:-0}" 254 \
      "An error occurred (ThrottlingException) when calling the GetAuthorizationToken operation (reached max retries: 2): Rate exceeded"
    printf 'ecr-token-123\n';;
  *) echo "aws stand-in: unexpected $*" >&2; exit 2;;
esac
""",
    "squeue": r"""
name=""; prev=""
for a in "$@"; do [ "$prev" = --name ] && name="$a"; prev="$a"; done
grep " ${name}\$" "${FAKE_STATE}/queue" 2>/dev/null | cut -d' ' -f1 || true
""",
    "sbatch": r"""
name=""; prev=""
for a in "$@"; do [ "$prev" = --job-name ] && name="$a"; prev="$a"; done
n=$(( $(wc -l < "${FAKE_STATE}/queue" 2>/dev/null || echo 0) + 101 ))
echo "$n $name" >> "${FAKE_STATE}/queue"
echo "$n"
""",
    "scontrol": "",
    "runuser": r"""
[ "$1" = -u ] && [ "$3" = -- ] || { echo "runuser stand-in: usage" >&2; exit 2; }
echo "$2" > "${FAKE_STATE}/runuser.user"
shift 3
exec "$@"
""",
    "chown": "",
    "usermod": "",
    "hostname": "echo gpu-st-p5-48xlarge-1",
    "systemctl": r"""
if [ "$1" = is-active ] && [ -n "${FAKE_INACTIVE:-}" ]; then exit 3; fi
""",
    "nvidia-ctk": "",
    "apt-get": "",
    "docker": r"""
case "$1" in
  login) cat > "${FAKE_STATE}/docker-login.stdin";;
  pull) fail_first pull "${FAKE_PULL_FAILS:-0}" 1 \
    "Error response from daemon: Head \"https://registry/v2/\": net/http: TLS handshake timeout";;
esac
""",
}

COMMON = r"""#!/usr/bin/env bash
set -u
printf '%s\n' "$(basename "$0") $*" >> "${FAKE_STATE}/calls.log"
fail_first() {  # fail_first KIND N RC MESSAGE
  local n
  n=$(( $(cat "${FAKE_STATE}/$1.count" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "${FAKE_STATE}/$1.count"
  if [ "$n" -le "$2" ]; then printf '%s\n' "$4" >&2; exit "$3"; fi
}
"""


class Node:
    """A scratch root with the stand-ins first on PATH."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        self.state = tmp / "state"
        self.s3 = tmp / "s3"
        bin_dir = tmp / "bin"
        for d in (self.root, self.state, self.s3, bin_dir):
            d.mkdir(parents=True)
        for name, body in STANDINS.items():
            path = bin_dir / name
            path.write_text(COMMON + body, encoding="utf-8")
            path.chmod(0o755)
        slurm_bin = self.root / "opt" / "slurm" / "bin"
        slurm_bin.mkdir(parents=True)
        for name in ("squeue", "sbatch", "scontrol"):
            (slurm_bin / name).symlink_to(bin_dir / name)
        ex = self.root / "opt" / "parallelcluster" / "examples"
        for rel, text in (
            ("spank/plugstack.conf", "include /opt/slurm/etc/plugstack.conf.d/*\n"),
            ("pyxis/pyxis.conf", "required /usr/local/lib/slurm/spank_pyxis.so runtime_path=/run/pyxis\n"),
            ("enroot/enroot.conf", "ENROOT_RUNTIME_PATH /run/enroot/user-$(id -u)\n"),
        ):
            (ex / rel).parent.mkdir(parents=True, exist_ok=True)
            (ex / rel).write_text(text, encoding="utf-8")
        cfn = self.root / "etc" / "parallelcluster" / "cfnconfig"
        cfn.parent.mkdir(parents=True)
        cfn.write_text("cfn_node_type=HeadNode\ncfn_cluster_user=ubuntu\n", encoding="utf-8")
        (self.root / "home" / "ubuntu").mkdir(parents=True)
        (self.root / "fsx").mkdir()
        (self.s3 / "job").mkdir()
        (self.s3 / "job" / "sglang-serve.sbatch").write_text("#!/bin/bash\necho serving\n", encoding="utf-8")
        self.env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "SGLANG_ROOT": str(self.root),
            "SGLANG_RETRY_DELAY": "0",
            "FAKE_STATE": str(self.state),
            "FAKE_S3_DIR": str(self.s3),
            "HOME": str(tmp),
        }

    def run(self, script: str, *args: str, **fake: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(ACTIONS / script), *args],
            env={**self.env, **fake},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self, prefix: str) -> list[str]:
        log = self.state / "calls.log"
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        return [c for c in lines if c.startswith(prefix)]


HEAD_ARGS = ("us-east-1", "pyxis", "s3://bucket-1/job/sglang-serve.sbatch", "sglang-slurm-tp16")


def test_head_node_enables_pyxis_and_submits_the_job_once(tmp_path: Path) -> None:
    node = Node(tmp_path)
    first = node.run("sglang-head-node.sh", *HEAD_ARGS, FAKE_S3_FAILS="2")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "attempt 2 failed" in first.stderr
    etc = node.root / "opt" / "slurm" / "etc"
    assert (etc / "plugstack.conf.d" / "pyxis.conf").read_text().startswith("required ")
    assert (etc / "plugstack.conf").is_file()
    assert stat.S_IMODE((node.root / "run" / "pyxis").stat().st_mode) == 0o1777
    job = node.root / "opt" / "sglang" / "sglang-serve.sbatch"
    assert job.read_text() == "#!/bin/bash\necho serving\n" and os.access(job, os.X_OK)
    (sbatch,) = node.calls("sbatch ")
    assert "--job-name sglang-slurm-tp16" in sbatch and sbatch.endswith(str(job))
    assert (node.state / "runuser.user").read_text().strip() == "ubuntu"
    assert (node.root / "fsx" / "models").is_dir()
    assert f"chown ubuntu {node.root}/fsx/models" in node.calls("chown ")
    second = node.run("sglang-head-node.sh", *HEAD_ARGS)
    assert second.returncode == 0, second.stderr
    assert "already queued (101)" in second.stderr
    assert len(node.calls("sbatch ")) == 1
    assert node.calls("scontrol ") == ["scontrol reconfigure"]
    assert not list((node.root / "opt" / "sglang").glob("*.new"))


def test_head_node_gives_up_on_s3_and_submits_nothing(tmp_path: Path) -> None:
    node = Node(tmp_path)
    proc = node.run("sglang-head-node.sh", *HEAD_ARGS, FAKE_S3_FAILS="9")
    assert proc.returncode != 0
    assert "giving up after 5 attempts" in proc.stderr
    assert node.calls("sbatch ") == []
    assert not (node.root / "opt" / "sglang" / "sglang-serve.sbatch").exists()


def test_head_node_docker_runtime_leaves_pyxis_off(tmp_path: Path) -> None:
    node = Node(tmp_path)
    proc = node.run("sglang-head-node.sh", "us-east-1", "docker", *HEAD_ARGS[2:])
    assert proc.returncode == 0, proc.stderr
    assert not (node.root / "opt" / "slurm" / "etc" / "plugstack.conf.d").exists()
    assert len(node.calls("sbatch ")) == 1


def test_compute_start_prepares_enroot_and_pyxis(tmp_path: Path) -> None:
    node = Node(tmp_path)
    for _ in range(2):  # idempotent
        proc = node.run("sglang-compute-node.sh", "start", "us-east-1", "pyxis", ECR_IMAGE)
        assert proc.returncode == 0, proc.stderr
    for d in ("var/enroot", "run/enroot", "run/pyxis"):
        assert stat.S_IMODE((node.root / d).stat().st_mode) == 0o1777
    assert (node.root / "etc" / "enroot" / "enroot.conf").read_text().startswith("ENROOT_RUNTIME_PATH")


def test_compute_configured_writes_enroot_credentials_for_ecr(tmp_path: Path) -> None:
    node = Node(tmp_path)
    proc = node.run(
        "sglang-compute-node.sh", "configured", "us-east-1", "pyxis", ECR_IMAGE, FAKE_ECR_FAILS="1"
    )
    assert proc.returncode == 0, proc.stderr
    cred = node.root / "home" / "ubuntu" / ".config" / "enroot" / ".credentials"
    assert (
        cred.read_text()
        == "machine 123456789012.dkr.ecr.us-east-1.amazonaws.com login AWS password ecr-token-123\n"
    )
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    assert any(c.startswith("chown ubuntu ") for c in node.calls("chown "))
    assert sorted(p.name for p in cred.parent.iterdir()) == [".credentials"]  # no temporary left
    # The token never reaches the action's log (ParallelCluster ships it to CloudWatch).
    assert "ecr-token-123" not in proc.stdout + proc.stderr


def test_compute_configured_public_image_needs_no_credentials(tmp_path: Path) -> None:
    node = Node(tmp_path)
    proc = node.run("sglang-compute-node.sh", "configured", "us-east-1", "pyxis", "lmsysorg/sglang:v0.5.23")
    assert proc.returncode == 0, proc.stderr
    assert node.calls("aws ") == []
    assert not (node.root / "home" / "ubuntu" / ".config").exists()


def test_compute_configured_docker_logs_in_and_pulls_with_retries(tmp_path: Path) -> None:
    node = Node(tmp_path)
    proc = node.run(
        "sglang-compute-node.sh", "configured", "us-east-1", "docker", ECR_IMAGE, FAKE_PULL_FAILS="2"
    )
    assert proc.returncode == 0, proc.stderr
    assert (node.state / "docker-login.stdin").read_text() == "ecr-token-123"
    login = node.calls("docker login")
    assert login == [
        "docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-1.amazonaws.com"
    ]
    assert len(node.calls("docker pull")) == 3
    assert node.calls("nvidia-ctk ") == ["nvidia-ctk runtime configure --runtime=docker"]
    assert node.calls("usermod ") == ["usermod -aG docker ubuntu"]
    assert "ecr-token-123" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("sglang-head-node.sh", "us-east-1", "pyxis"),
        ("sglang-compute-node.sh", "boot", "us-east-1", "pyxis", "img"),
        ("sglang-compute-node.sh", "start", "us-east-1", "podman", "img"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, args: tuple[str, ...]) -> None:
    node = Node(tmp_path)
    proc = node.run(*args)
    assert proc.returncode == 64, proc.stderr


def _router_node(tmp_path: Path) -> Node:
    """A scratch node whose ``python3 -m venv`` makes a venv with a stand-in interpreter: the
    router package itself is not installed (it comes from PyPI on a real node)."""
    node = Node(tmp_path)
    bin_dir = Path(node.env["PATH"].split(":", 1)[0])
    fake_python = (
        COMMON
        + r"""
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  cp "$0" "$3/bin/python3"
  cp "$0" "$3/bin/pip"
  exit 0
fi
if [ "$1 $2 $3" = "-m pip show" ]; then
  [ -f "${FAKE_STATE}/installed" ]; exit
fi
if [ "$1 $2 $3" = "-m pip install" ]; then
  fail_first pip "${FAKE_PIP_FAILS:-0}" 1 "ERROR: Could not find a version that satisfies the requirement (read timed out)"
  touch "${FAKE_STATE}/installed"; exit 0
fi
printf '%s\n' "$@" > "${FAKE_STATE}/router.argv.seen"
exec sleep 300
"""
    )
    (bin_dir / "python3").write_text(fake_python, encoding="utf-8")
    (bin_dir / "python3").chmod(0o755)
    return node


def test_router_node_installs_once_and_restarts_only_on_a_new_argv(tmp_path: Path) -> None:
    from infra.planning import slurm
    from infra.planning.flags import ROUTER_VERSION
    from tests.conformance.conftest import plan_json

    argv = plan_json("slurm-tp16")["nodes"][0]["processes"][0]["argv"]
    assert argv[:3] == ["python3", "-m", "sglang_router.launch_router"]
    node = _router_node(tmp_path)
    first = node.run(slurm.ROUTER_ACTION, ROUTER_VERSION, *argv, FAKE_PIP_FAILS="1")
    assert first.returncode == 0, first.stderr
    state = node.root / "opt" / "sglang"
    assert (state / "router.argv").read_text().splitlines() == argv[1:]
    assert (
        node.calls("python3 -m pip install")
        == [f"python3 -m pip install --quiet sglang-router=={ROUTER_VERSION}"] * 2
    )
    assert node.calls("systemctl restart") == ["systemctl restart sglang-router"]
    again = node.run(slurm.ROUTER_ACTION, ROUTER_VERSION, *argv)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    assert len(node.calls("python3 -m pip install")) == 2  # already installed
    assert len(node.calls("systemctl restart")) == 1
    stopped = node.run(slurm.ROUTER_ACTION, ROUTER_VERSION, *argv, FAKE_INACTIVE="1")
    assert stopped.returncode == 0 and "(re)started" in stopped.stderr
    changed = node.run(slurm.ROUTER_ACTION, ROUTER_VERSION, *argv, "--log-level", "debug")
    assert changed.returncode == 0 and "(re)started" in changed.stderr
    assert len(node.calls("systemctl restart")) == 3
    assert (state / "router.argv").read_text().splitlines()[-2:] == ["--log-level", "debug"]


def test_router_unit_runs_the_argv_exactly_under_real_systemd(tmp_path: Path) -> None:
    """The unit the action writes, started by a real systemd (user manager in a private mount
    namespace with the scratch /opt bound over /opt): the interpreter receives the planned argv
    one element per argument, ``$$`` unescaped by systemd, nothing split or lost."""
    from infra.planning import slurm
    from infra.planning.flags import ROUTER_VERSION
    from tests.conformance.conftest import plan_json
    from tests.conformance.usersystemd import user_manager

    argv = plan_json("slurm-tp16")["nodes"][0]["processes"][0]["argv"]
    node = _router_node(tmp_path / "node")
    proc = node.run(slurm.ROUTER_ACTION, ROUTER_VERSION, *argv)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "mgr").mkdir()
    mgr = user_manager(tmp_path / "mgr")
    unit = (node.root / "etc" / "systemd" / "system" / "sglang-router.service").read_text()
    (mgr.units / "sglang-router.service").write_text(unit.replace("multi-user.target", "default.target"))
    seen = node.state / "router.argv.seen"
    driver = f"""
mount --bind "{node.root}/opt" /opt
sc start sglang-router.service
for _ in $(seq 100); do [ -s "{seen}" ] && break; sleep 0.1; done
sc show -p ActiveState sglang-router.service
sc stop sglang-router.service
"""
    out = mgr.run(driver, timeout=120, FAKE_STATE=str(node.state))
    assert "ActiveState=active" in out.stdout, out.stdout + out.stderr
    assert seen.read_text().splitlines() == argv[1:]
