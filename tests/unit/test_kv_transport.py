"""``userdata/sglang-kv-transport``: the EFA device map a prefill/decode node writes at boot, the
classifier of the KV transfer engine's choice, and the watcher that stops a server off EFA.

The script runs for real (the node's Python, stdlib only) against stand-ins for what needs
hardware: a sysfs tree and ``nvidia-smi`` shaped like a p5.48xlarge
(``tests/fixtures/kv/fake_node.py``), constructed container logs whose every line comes from a
cited format string (``tests/fixtures/kv/logs.py``; no EFA exists here to capture real ones),
and a stand-in ``docker`` that prints such a log and records ``kill``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fixtures.kv import logs
from tests.fixtures.kv.fake_node import make_node

SCRIPT = ROOT / "userdata" / "sglang-kv-transport"


def run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], **(env or {})}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=base,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def classify(tmp_path: Path, lines: list[str], backend: str = "mooncake", ranks: int = 8) -> tuple[str, str]:
    log = tmp_path / "server-0.log"
    log.write_text("\n".join(lines) + "\n")
    p = run("classify", "--backend", backend, "--ranks", str(ranks), "--why", str(log))
    assert p.returncode == (0 if p.stdout.strip() == "efa" else 1), p.stderr
    return p.stdout.strip(), p.stderr.strip()


# ----- device map -----


def test_device_map_pairs_each_gpu_with_the_efa_devices_of_its_numa_node(tmp_path: Path) -> None:
    names, bindir = make_node(tmp_path, other=("mlx5_0",))
    out = tmp_path / "etc" / "sglang" / "efa-devices.json"
    out.parent.mkdir(parents=True)
    env = {"SGLANG_ROOT": str(tmp_path), "PATH": f"{bindir}:{os.environ['PATH']}"}
    p = run("devices", str(out), env=env)
    assert p.returncode == 0, p.stderr
    mapping = json.loads(out.read_text())
    assert sorted(mapping, key=int) == [str(i) for i in range(8)]
    assert mapping["0"].split(",") == names[:16] and mapping["7"].split(",") == names[16:]
    assert "mlx5_0" not in out.read_text()  # a RoCE/IB device is never an EFA device
    assert "32 device(s), 8 GPU(s)" in p.stderr
    # Idempotent: a second boot rewrites nothing.
    before = out.stat().st_mtime_ns
    assert run("devices", str(out), env=env).returncode == 0
    assert out.stat().st_mtime_ns == before


def test_device_map_without_numa_gives_every_gpu_every_device(tmp_path: Path) -> None:
    names, bindir = make_node(tmp_path, gpus=2, efa=4)
    for f in (tmp_path / "sys" / "devices").rglob("numa_node"):
        f.write_text("-1\n")
    out = tmp_path / "map.json"
    p = run("devices", str(out), env={"SGLANG_ROOT": str(tmp_path), "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text()) == {"0": ",".join(names), "1": ",".join(names)}


@pytest.mark.parametrize("case", ["no-efa", "no-infiniband-dir", "nvidia-smi-fails"])
def test_device_map_fails_loudly(tmp_path: Path, case: str) -> None:
    if case == "no-efa":
        _, bindir = make_node(tmp_path, efa=0, other=("mlx5_0",))
    elif case == "no-infiniband-dir":
        _, bindir = make_node(tmp_path, efa=0)
        (tmp_path / "sys" / "class" / "infiniband").rmdir()
    else:
        _, bindir = make_node(tmp_path, smi_fails=True)
    out = tmp_path / "map.json"
    p = run("devices", str(out), env={"SGLANG_ROOT": str(tmp_path), "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert p.returncode == 1 and "ERROR:" in p.stderr and not out.exists()


# ----- classifier -----


def test_every_constructed_line_cites_its_source() -> None:
    for line, source in logs.SOURCES.items():
        assert source.split(" ", 1)[0] in (
            "kvcache-ai/Mooncake@3b5a594",
            "ai-dynamo/nixl@8770b65",
            "sglang",
        ), line
        assert ":" in source or "(" in source, source


def test_mooncake_on_efa(tmp_path: Path) -> None:
    word, why = classify(tmp_path, logs.mooncake(8))
    assert word == "efa" and "8 engine(s) on EFA" in why


def test_mooncake_until_every_rank_installed_efa_is_unknown(tmp_path: Path) -> None:
    assert classify(tmp_path, logs.mooncake(3))[0] == "unknown"
    assert classify(tmp_path, [logs.start()])[0] == "unknown"


@pytest.mark.parametrize(
    ("word", "per_rank"),
    [
        # MOONCAKE_PROTOCOL not efa in the EFA build: Mooncake's TCP transport carries the KV cache.
        ("tcp", ("Installing TCP transport (auto_discover disabled in EFA build)",)),
        ("tcp", ("MC_FORCE_TCP is set, using TCP transport only",)),
        # The plain (non-EFA) wheel auto-installs its RDMA transport on the EFA devices.
        ("rdma", ("Using RDMA transport (RoCE/iWARP)",)),
        (
            "none",
            (
                "Installing EFA transport as requested by protocol parameter",
                "EfaTransport: No available EFA devices",
                "Failed to install EFA transport",
            ),
        ),
    ],
)
def test_mooncake_off_efa(tmp_path: Path, word: str, per_rank: tuple[str, ...]) -> None:
    lines = logs.mooncake(8, per_rank)
    assert classify(tmp_path, lines)[0] == word


def test_one_rank_off_efa_decides_for_the_server(tmp_path: Path) -> None:
    lines = [
        *logs.mooncake(7),
        logs.native("Installing TCP transport (auto_discover disabled in EFA build)", 4999),
    ]
    word, why = classify(tmp_path, lines)
    assert word == "tcp" and "transfer_engine_py.cpp:272" in why


def test_sglang_init_failure_is_none(tmp_path: Path) -> None:
    lines = [logs.start(), logs.sglang("Mooncake Transfer Engine initialization failed.", 0)]
    assert classify(tmp_path, lines)[0] == "none"


def test_only_the_latest_start_counts(tmp_path: Path) -> None:
    tcp = logs.mooncake(8, ("Installing TCP transport (auto_discover disabled in EFA build)",))
    assert classify(tmp_path, tcp + logs.mooncake(8))[0] == "efa"
    assert classify(tmp_path, logs.mooncake(8) + tcp)[0] == "tcp"


def test_nixl_on_efa(tmp_path: Path) -> None:
    lines = logs.nixl(
        8, "Created 32 rails using provider=efa", "NIXL KVManager initialized with backend: LIBFABRIC"
    )
    assert classify(tmp_path, lines, "nixl")[0] == "efa"


@pytest.mark.parametrize(
    ("word", "provider", "backend"),
    [
        ("ucx", "Created 32 rails using provider=efa", "NIXL KVManager initialized with backend: UCX"),
        ("tcp", "Created 1 rails using provider=tcp", "NIXL KVManager initialized with backend: LIBFABRIC"),
        (
            "none",
            "No network devices found with any provider",
            "NIXL KVManager initialized with backend: LIBFABRIC",
        ),
    ],
)
def test_nixl_off_efa(tmp_path: Path, word: str, provider: str, backend: str) -> None:
    assert classify(tmp_path, logs.nixl(8, provider, backend), "nixl")[0] == word


def test_nixl_lines_do_not_pass_a_mooncake_check(tmp_path: Path) -> None:
    lines = logs.nixl(
        8, "Created 32 rails using provider=efa", "NIXL KVManager initialized with backend: LIBFABRIC"
    )
    assert classify(tmp_path, lines, "mooncake")[0] == "unknown"


def test_unreadable_log_exits_2(tmp_path: Path) -> None:
    p = run("classify", str(tmp_path / "missing.log"))
    assert p.returncode == 2 and p.stdout.strip() == "unknown"


# ----- watcher -----


def _node(tmp_path: Path, log_lines: list[str]) -> dict[str, str]:
    etc = tmp_path / "etc" / "sglang"
    etc.mkdir(parents=True)
    (etc / "server-0.argv").write_text("python3\n-m\nsglang.launch_server\n--tp-size\n8\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "docker.log").write_text("\n".join(log_lines) + "\n")
    docker = bindir / "docker"
    docker.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {tmp_path}/docker.calls\n'
        f'case "$1" in logs) cat {tmp_path}/docker.log ;; kill) exit 0 ;; esac\n'
    )
    docker.chmod(0o755)
    (bindir / "logger").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "logger").chmod(0o755)
    return {"SGLANG_ROOT": str(tmp_path), "PATH": f"{bindir}:{os.environ['PATH']}"}


def test_watcher_stops_a_server_whose_kv_transfer_is_tcp(tmp_path: Path) -> None:
    env = _node(
        tmp_path, logs.mooncake(8, ("Installing TCP transport (auto_discover disabled in EFA build)",))
    )
    p = run("watch", "0", "--interval", "0.05", env={**env, "SGLANG_KV_TRANSPORT": "mooncake"})
    assert p.returncode == 1
    assert "ERROR: server 0: KV transfer (mooncake) is tcp, not EFA" in p.stderr
    marker = tmp_path / "run" / "sglang" / "server-0.kv-transport-failed"
    assert marker.read_text().startswith("ERROR: server 0")
    assert "kill sglang-server-0" in (tmp_path / "docker.calls").read_text()


def test_watcher_waits_for_every_rank_then_passes(tmp_path: Path) -> None:
    env = _node(tmp_path, logs.mooncake(3))
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "watch", "0", "--interval", "0.05"],
        env={**env, "SGLANG_KV_TRANSPORT": "mooncake"},
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait (bounded by polls, not time) until the watcher has read the partial log twice.
    for _ in range(2000):
        calls = (tmp_path / "docker.calls").read_text() if (tmp_path / "docker.calls").exists() else ""
        if calls.count("logs") >= 2:
            break
        proc.poll()
        assert proc.returncode is None, "the watcher decided on 3 of 8 ranks"
        subprocess.run(["sleep", "0.01"], check=True)
    (tmp_path / "docker.log").write_text("\n".join(logs.mooncake(8)) + "\n")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "KV transfer (mooncake): efa" in err
    assert not (tmp_path / "run" / "sglang" / "server-0.kv-transport-failed").exists()
    assert "kill" not in (tmp_path / "docker.calls").read_text()


def test_watcher_warns_once_when_no_engine_line_comes(tmp_path: Path) -> None:
    """Hidden or late engine lines: one WARNING after SGLANG_KV_WAIT_SECS, then it keeps watching
    (a verdict still stops the server when the lines come)."""
    env = _node(tmp_path, [logs.start()])
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "watch", "0", "--interval", "0.02"],
        env={**env, "SGLANG_KV_TRANSPORT": "mooncake", "SGLANG_KV_WAIT_SECS": "0.1"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("WARNING: server 0: KV transfer (mooncake) NOT checked yet")
    (tmp_path / "docker.log").write_text(
        "\n".join(logs.mooncake(8, ("Using RDMA transport (RoCE/iWARP)",))) + "\n"
    )
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 1
    assert "WARNING" not in rest and "is rdma, not EFA" in rest
