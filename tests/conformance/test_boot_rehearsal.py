"""Boot rehearsal: the real node scripts of ``userdata/`` meet the failures real boots throw.

Each test runs the shipped scripts unmodified under bash in a scratch root (``SGLANG_ROOT``) with
stand-ins for AWS, Docker, the FSx mount, apt/dpkg and systemd first on PATH
(``tests/conformance/fake_node.py``): they fail the first N calls with the messages the real
services print (SSM ``ThrottlingException``, Docker Hub ``toomanyrequests``, registry 503, apt's
lock, a Lustre mount that works on the third try), then succeed. Backoff is 0 s
(``SGLANG_RETRY_BASE=0``), so nothing here depends on time. gpg, flock, grep and coreutils are
the real ones. No test needs root, AWS or a GPU; systemd's own restart logic is not run here
(it needs PID 1): the unit lines are checked by ``test_systemd_units.py`` and below.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.planning.bundle import installed_files
from infra.planning.cluster import plan_cluster, router_boot, server_node_boot
from infra.planning.userdata import LOGROTATE_FILES, shipped_file
from infra.spec import parse_config
from tests.conformance.fake_node import NODE_SCRIPTS, USERDATA, Node, error_lines, make_node
from tests.conftest import base_config

FSX_ENV = {
    "SGLANG_REGION": "us-east-1",
    "SGLANG_LOG_GROUP": "/sglang/prod",
    "SGLANG_FSX_DNS": "fs-0123.fsx.us-east-1.amazonaws.com",
    "SGLANG_FSX_MOUNT_NAME": "abcdef",
    "SGLANG_HF_TOKEN_PARAM": "/sglang/prod/hf-token",
    "SGLANG_API_KEY_PARAM": "/sglang/prod/router-api-key",
    "SGLANG_IMAGE": "lmsysorg/sglang:v0.5.23",
    "SGLANG_ECR_REGISTRY": "",
    "SGLANG_NODE_RANK": "0",
    "SGLANG_NNODES": "2",
    "SGLANG_MODEL_ID": "Qwen/Qwen2.5-72B-Instruct",
    "SGLANG_MODEL_DIR": "/fsx/models/Qwen/Qwen2.5-72B-Instruct",
    "SGLANG_MODEL_SOURCE": "hf",
    "SGLANG_MODEL_LEADER": "1",
}
"""A rank-0 GPU node of a stack with FSx, an HF token and a router key."""


def _node(tmp_path: Path, **extra: str) -> Node:
    return make_node(tmp_path, {**FSX_ENV, **extra})


def _prep(node: Node, **fake: str) -> list[subprocess.CompletedProcess[str]]:
    """sglang-node.service's three ExecStart= lines, in order."""
    return [node.run(s, **fake) for s in NODE_SCRIPTS]


def _persistent(snap: dict[str, tuple[int, bytes, int]]) -> dict[str, tuple[int, bytes, int]]:
    return {k: v for k, v in snap.items() if not k.startswith("run/")}


def test_node_prep_recovers_from_transient_failures(tmp_path: Path) -> None:
    node = _node(tmp_path)
    procs = _prep(
        node,
        FAKE_CURL_FAILS="2",  # the CloudWatch agent download: S3 503 twice
        FAKE_DPKG_FAILS="1",  # dpkg's frontend lock held by apt-daily
        FAKE_APT_LOCK_FAILS="2",  # apt lists lock held
        FAKE_MOUNT_FAILS="2",  # FSx answers the third mount
        FAKE_SSM_FAILS="3",  # SSM throttles the first three GetParameter calls
    )
    for p in procs:
        assert p.returncode == 0, p.stderr
        assert error_lines(p.stderr) == [], p.stderr
    logs, nvme, fsx, secrets = (p.stderr for p in procs)
    assert "no instance store" in nvme  # FAKE_NVME_DISKS unset: tests/conformance/test_nvme_rehearsal.py
    assert "returned error: 503); next in 0 s" in logs and "frontend lock" in logs
    assert "Could not get lock /var/lib/apt/lists/lock" in fsx
    assert "fsx: mount" in fsx and "attempt 2/15 failed (mount.lustre:" in fsx
    assert "ThrottlingException" in secrets and "attempt 3/8 failed" in secrets
    # apt refreshed only the FSx repository, kept the other lists, waited for the dpkg lock.
    update = next(c for c in node.calls("apt-get") if " update" in c)
    assert "Dir::Etc::sourceparts=-" in update and "APT::Get::List-Cleanup=0" in update
    assert (
        "Dir::Etc::sourcelist=" + str(node.root / "etc/apt/sources.list.d/fsxlustreclientrepo.list") in update
    )
    assert all("DPkg::Lock::Timeout=" in c for c in node.calls("apt-get"))
    fstab = (node.root / "etc/fstab").read_text().splitlines()
    assert len([line for line in fstab if " lustre " in line]) == 1 and fstab[0].startswith("LABEL=")
    keyring = node.root / "usr/share/keyrings/fsx-ubuntu-public-key.gpg"
    assert keyring.read_bytes() == b"stand-in for the FSx repository key\n"  # real gpg --dearmor
    out = node.root / "run/sglang/secrets.env"
    assert out.read_text() == (
        "HF_TOKEN=s3cr3t-value-hf-token\nSGLANG_ROUTER_API_KEY=s3cr3t-value-router-api-key\n"
    )
    assert out.stat().st_mode & 0o777 == 0o600
    logged = "".join(p.stderr for p in procs) + (node.state / "logger.log").read_text()
    assert "s3cr3t" not in logged


@pytest.mark.parametrize(
    ("fake", "why"),
    [({"FAKE_DPKG_FAILS": "99"}, "dpkg lock held?"), ({"FAKE_CURL_FAILS": "99"}, "cannot download")],
    ids=["dpkg-lock-held-for-minutes", "agent-download-down"],
)
def test_cloudwatch_agent_is_retried_later_not_given_up(
    tmp_path: Path, fake: dict[str, str], why: str
) -> None:
    """unattended-upgrades can hold dpkg's lock for minutes right after boot: the node goes on
    (exit 0, serving never waits for logs) and a transient timer runs the script again."""
    node = _node(tmp_path)
    proc = node.run("sglang-logs-setup", **fake)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING: logs:")]
    assert len(warnings) == 1 and why in warnings[0] and "trying again in 300 s" in warnings[0]
    (call,) = node.calls("systemd-run")
    assert "--on-active=300" in call and "sglang-logs-retry-" in call
    assert call.endswith(str(node.root / "usr/local/bin/sglang-logs-setup"))
    # The retry itself, once the lock is free: the agent installs and no further retry is queued.
    node.reset_counters()
    again = node.run("sglang-logs-setup")
    assert again.returncode == 0 and "shipping" in again.stderr, again.stderr
    assert len(node.calls("systemd-run")) == 1


def test_second_run_and_reboot_change_nothing(tmp_path: Path) -> None:
    node = _node(tmp_path)
    assert all(p.returncode == 0 for p in _prep(node, FAKE_MOUNT_FAILS="1", FAKE_SSM_FAILS="1"))
    first = node.snapshot()
    # The unit runs again (a restart of the server pulls it in again): nothing changes at all.
    node.reset_counters()
    assert all(p.returncode == 0 for p in _prep(node))
    assert node.snapshot() == first
    # Reboot: /run is empty and FSx unmounted; the scripts mount again and rewrite the secrets.
    node.reboot()
    procs = _prep(node, FAKE_MOUNT_FAILS="1")
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    after = node.snapshot()
    assert _persistent(after) == _persistent(first)  # same bytes, modes and mtimes
    assert {k: v[:2] for k, v in after.items()} == {k: v[:2] for k, v in first.items()}
    assert len(node.calls("apt-get")) == 2  # the client was installed once, on the first run


def test_rerun_after_an_interrupted_client_install(tmp_path: Path) -> None:
    """The first boot dies after writing the FSx keyring (apt never gets the package); the
    rerun must not trip over the existing keyring (``gpg --dearmor -o`` did) or duplicate
    the apt source."""
    node = _node(tmp_path)
    first = node.run("sglang-fsx-mount", FAKE_APT_LOCK_FAILS="99")
    assert first.returncode == 1
    assert (node.root / "usr/share/keyrings/fsx-ubuntu-public-key.gpg").exists()
    node.reset_counters()
    second = node.run("sglang-fsx-mount")
    assert second.returncode == 0, second.stderr
    lists = list((node.root / "etc/apt/sources.list.d").iterdir())
    assert [p.name for p in lists] == ["fsxlustreclientrepo.list"]
    assert len(lists[0].read_text().splitlines()) == 1


def test_stale_fstab_line_is_replaced_not_duplicated(tmp_path: Path) -> None:
    node = _node(tmp_path)
    fstab = node.root / "etc/fstab"
    fstab.write_text(fstab.read_text() + f"fs-old.fsx@tcp:/old {node.root}/fsx lustre defaults 0 0\n")
    assert node.run("sglang-fsx-mount").returncode == 0
    lines = fstab.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("fs-0123.fsx.us-east-1.amazonaws.com@tcp:/abcdef ")


@pytest.mark.parametrize(
    ("script", "fake", "attempts", "needles"),
    [
        ("sglang-secrets", {"FAKE_SSM_FAILS": "99"}, 8, ["ThrottlingException", "instance role"]),
        (
            "sglang-secrets",
            {"FAKE_SSM_MISSING": "/sglang/prod/hf-token"},
            1,
            ["ParameterNotFound", "/sglang/prod/hf-token"],
        ),
        ("sglang-fsx-mount", {"FAKE_MOUNT_FAILS": "99"}, 15, ["mount.lustre", "security group"]),
        (
            "sglang-fsx-mount",
            {"FAKE_APT_NOPKG": "1"},
            1,
            ["Unable to locate package", "no client for kernel"],
        ),
        (
            "sglang-server-prepare",
            {"FAKE_PULL_429": "99"},
            10,
            ["toomanyrequests", "image_source mirror"],
        ),
        (
            "sglang-server-prepare",
            {"FAKE_PULL_FATAL": "Error response from daemon: manifest unknown: manifest unknown"},
            1,
            ["manifest unknown"],
        ),
    ],
    ids=[
        "ssm-throttled",
        "ssm-missing",
        "fsx-unreachable",
        "no-lustre-client",
        "hub-rate-limit",
        "no-such-tag",
    ],
)
def test_gives_up_with_one_clear_line(
    tmp_path: Path, script: str, fake: dict[str, str], attempts: int, needles: list[str]
) -> None:
    node = _node(tmp_path)
    secrets = node.root / "run/sglang/secrets.env"
    secrets.parent.mkdir(parents=True)
    secrets.write_text("HF_TOKEN=from-the-last-good-run\n")
    proc = node.run(script, *(["0"] if script == "sglang-server-prepare" else []), **fake)
    assert proc.returncode == 1
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert f"gave up after {attempts} attempt(s)" in errors[0]
    for needle in needles:
        assert needle in errors[0]
    # A failed secrets run leaves the last good file whole (atomic replace, never truncated).
    assert secrets.read_text() == "HF_TOKEN=from-the-last-good-run\n"


def test_prepare_pulls_through_rate_limit_5xx_and_ecr_throttling(tmp_path: Path) -> None:
    registry = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
    node = _node(tmp_path, SGLANG_ECR_REGISTRY=registry, SGLANG_IMAGE=f"{registry}/sglang@sha256:{'a' * 64}")
    proc = node.run("sglang-server-prepare", "0", FAKE_PULL_429="2", FAKE_PULL_5XX="1", FAKE_ECR_FAILS="1")
    assert proc.returncode == 0, proc.stderr
    assert "toomanyrequests" in proc.stderr and "503 Service Unavailable" in proc.stderr
    assert "attempt 4/10 failed" in proc.stderr and "attempt 5/10" not in proc.stderr
    assert any("--region us-west-2" in c for c in node.calls("aws"))
    pulls = len(node.calls("docker"))
    # Restart of the unit (or a reboot: Docker keeps its images): no pull, no login.
    again = node.run("sglang-server-prepare", "0")
    assert again.returncode == 0 and "already present" in again.stderr
    assert not any(" pull " in c + " " for c in node.calls("docker")[pulls:])


def test_server_start_waits_for_node_preparation(tmp_path: Path) -> None:
    """The server unit Wants= sglang-node/-model; its ExecStartPre fails while they are not
    active (so Restart=always retries, and its restart job starts them again)."""
    node = _node(tmp_path)
    proc = node.run("sglang-server-prepare", "0", FAKE_ACTIVE="sglang-model.service")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith("sglang-node.service is failed, not active")
    assert "systemctl start --no-block sglang-node.service sglang-model.service" in node.calls("systemctl")
    assert node.calls("docker") == []
    # The model fetch calls prepare with a label, not a slot: no unit check (it runs inside one).
    assert node.run("sglang-server-prepare", "image", FAKE_ACTIVE="").returncode == 0


@pytest.mark.parametrize(("state", "warns"), [("active", False), ("failed", True)])
def test_prepare_waits_for_fabric_manager(tmp_path: Path, state: str, warns: bool) -> None:
    node = _node(tmp_path)
    proc = node.run(
        "sglang-server-prepare", "0", FAKE_FM_LOADSTATE="loaded", FAKE_FM_ACTIVATING="3", FAKE_FM_STATE=state
    )
    assert proc.returncode == 0, proc.stderr
    assert len([c for c in node.calls("systemctl") if "is-active nvidia-fabricmanager" in c]) == 4
    assert ("WARNING: nvidia-fabricmanager is failed" in proc.stderr) == warns


def test_prepare_skips_fabric_manager_where_it_does_not_exist(tmp_path: Path) -> None:
    node = _node(tmp_path)
    assert node.run("sglang-server-prepare", "0").returncode == 0
    assert not any("is-active nvidia-fabricmanager" in c for c in node.calls("systemctl"))


def test_model_download_retries_hub_429_and_marker_is_reentrant(tmp_path: Path) -> None:
    node = _node(tmp_path)
    proc = node.run("sglang-model-fetch", FAKE_HF_FAILS="2")
    assert proc.returncode == 0, proc.stderr
    assert "429 Client Error" in proc.stderr and error_lines(proc.stderr) == []
    model = node.root / "fsx/models/Qwen/Qwen2.5-72B-Instruct"
    marker = model / ".sglang-download-complete"
    assert (model / "config.json").exists() and marker.exists()
    assert not list(model.glob("*.tmp"))
    before = node.snapshot()
    runs = len([c for c in node.calls("docker") if c.startswith("docker run")])
    again = node.run("sglang-model-fetch")
    assert again.returncode == 0 and "already complete" in again.stderr
    assert len([c for c in node.calls("docker") if c.startswith("docker run")]) == runs
    assert node.snapshot() == before


def _run_args(node: Node) -> list[str]:
    return (node.state / "docker-run.args").read_text().splitlines()


def test_server_run_sets_socket_interfaces_and_log_rotation(tmp_path: Path) -> None:
    node = _node(tmp_path)
    proc = node.run("sglang-server-run", "0")
    assert proc.returncode == 0, proc.stderr
    args = _run_args(node)
    assert "GLOO_SOCKET_IFNAME=ens32" in args and "NCCL_SOCKET_IFNAME=ens32" in args
    assert not any("^" in a for a in args if "IFNAME" in a)
    i = args.index("--log-driver")
    assert args[i : i + 6] == [
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=100m",
        "--log-opt",
        "max-file=3",
    ]
    # Without IMDS, the default route's interface.
    node2 = _node(tmp_path / "b")
    assert node2.run("sglang-server-run", "0", FAKE_NO_IMDS="1").returncode == 0
    assert "GLOO_SOCKET_IFNAME=ens32" in _run_args(node2)


def test_server_env_interface_wins(tmp_path: Path) -> None:
    node = make_node(tmp_path, FSX_ENV, container_env="NCCL_DEBUG=INFO\nNCCL_SOCKET_IFNAME=ens5\n")
    assert node.run("sglang-server-run", "0").returncode == 0
    args = _run_args(node)
    assert not any(a.startswith("NCCL_SOCKET_IFNAME=") for a in args)
    assert "GLOO_SOCKET_IFNAME=ens32" in args


def test_router_refuses_to_start_before_its_secrets(tmp_path: Path) -> None:
    node = make_node(tmp_path, {**FSX_ENV, "SGLANG_ROLE": "router"})
    (node.root / "etc/sglang/router.argv").write_text("python3\n-m\nsglang_router.launch_router\n")
    proc = node.run("sglang-router-run", FAKE_ACTIVE="")
    assert proc.returncode == 1 and "sglang-node.service is failed, not active" in proc.stderr


# --- unit graph -----------------------------------------------------------------------------


def _unit(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (USERDATA / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k, []).extend(v.split())
    return out


def test_no_unit_that_restarts_requires_a_oneshot() -> None:
    """A failed Requires= dependency fails the dependent's start job without a restart; the
    units that restart only Wants= the preparation (their scripts check it is active)."""
    server, router = _unit("sglang-server@.service"), _unit("sglang-router.service")
    for unit in (server, router):
        assert "sglang-node.service" not in unit.get("Requires", [])
        assert "sglang-node.service" in unit["Wants"] and "sglang-node.service" in unit["After"]
    assert "sglang-model.service" in server["Wants"] and "sglang-model.service" not in server.get(
        "Requires", []
    )
    assert server["Restart"] == ["always"] and router["Restart"] == ["always"]
    assert "nvidia-fabricmanager.service" in server["After"]
    # No download onto /fsx before FSx is mounted.
    assert _unit("sglang-model.service")["Requires"] == ["sglang-node.service"]


# --- log rotation ---------------------------------------------------------------------------


def _logrotate() -> str:
    exe = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not Path(exe).exists():
        pytest.fail("logrotate missing: apt-get install -y logrotate (tools/setup-conformance.sh)")
    return exe


def _local_config(tmp_path: Path) -> tuple[Path, Path]:
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    shipped = (USERDATA / "sglang.logrotate").read_text()
    assert "/var/log/sglang/*.log {" in shipped
    conf = tmp_path / "sglang.conf"
    conf.write_text(shipped.replace("/var/log/sglang/", f"{logs}/"))
    return conf, logs


def test_logrotate_debug_dry_run_of_shipped_config(tmp_path: Path) -> None:
    conf, logs = _local_config(tmp_path)
    with open(logs / "server-0.log", "wb") as f:
        f.truncate(101 * 1024 * 1024)  # sparse: over the 100M size limit
    (logs / "boot.log").write_text("small\n")
    proc = subprocess.run(
        [_logrotate(), "--debug", "--state", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert re.search(r"considering log .*server-0\.log.*\n(.*\n)*?.*log needs rotating", out), out
    assert re.search(r"considering log .*boot\.log.*\n(.*\n)*?.*log does not need rotating", out), out
    assert "copying " in out and "truncating " in out
    assert (logs / "server-0.log").stat().st_size == 101 * 1024 * 1024  # --debug changes nothing


def test_copytruncate_keeps_an_append_writer_going(tmp_path: Path) -> None:
    """What systemd's StandardOutput=append: does: one O_APPEND fd held across the rotation."""
    conf, logs = _local_config(tmp_path)
    path = logs / "server-0.log"
    with open(path, "ab", buffering=0) as writer:
        writer.write(b"x" * (101 * 1024 * 1024))
        proc = subprocess.run(
            [_logrotate(), "--state", str(tmp_path / "state"), str(conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        writer.write(b"after rotation\n")
    assert path.read_bytes() == b"after rotation\n"  # no hole: the writer went on at offset 0
    assert (logs / "server-0.log.1").stat().st_size == 101 * 1024 * 1024


def test_logrotate_files_installed_on_every_node() -> None:
    plan = plan_cluster(parse_config(base_config()), "prod")
    docs = [server_node_boot(plan, n, "10.0.1.10").user_data for n in plan.layout.nodes]
    docs.append(router_boot(plan, {0: "10.0.1.10"}).user_data)
    for ud in docs:
        files = installed_files(ud)  # the node's bundle and its user data
        for name, path in LOGROTATE_FILES:
            # Nodes get the file without its comment lines (infra/planning/minify.py).
            assert files[path]["content"] == shipped_file(name)
            assert "size 100M" in files[path]["content"] or "OnCalendar=hourly" in files[path]["content"]
            assert files[path]["permissions"] == "0644"


def test_hourly_logrotate_drop_in_verifies(tmp_path: Path) -> None:
    """The logrotate.timer drop-in passes systemd-analyze verify against Debian's real unit."""
    timer = Path("/lib/systemd/system/logrotate.timer")
    if not timer.exists():
        pytest.fail("logrotate.timer missing: apt-get install -y logrotate (tools/setup-conformance.sh)")
    root = tmp_path / "root"
    lib = root / "usr/lib/systemd/system"
    lib.mkdir(parents=True)
    shutil.copytree(Path("/lib/systemd/system"), lib, dirs_exist_ok=True, symlinks=True)
    drop = root / "etc/systemd/system/logrotate.timer.d"
    drop.mkdir(parents=True)
    shutil.copy(USERDATA / "logrotate-hourly.conf", drop / "sglang-hourly.conf")
    (root / "usr/sbin").mkdir(parents=True, exist_ok=True)
    shutil.copy(_logrotate(), root / "usr/sbin/logrotate")

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", "logrotate.timer"],
            capture_output=True,
            text=True,
            env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
            check=False,
        )

    proc = verify()
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    # The drop-in is really read: a bad calendar in it is an error.
    (drop / "sglang-hourly.conf").write_text("[Timer]\nOnCalendar=\nOnCalendar=every-blue-moon\n")
    assert "every-blue-moon" in verify().stderr
