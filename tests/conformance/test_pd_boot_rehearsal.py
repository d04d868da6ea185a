"""Boot rehearsal of a prefill/decode node: the real ``sglang-server-run`` writes the EFA device
map, mounts it into the container, starts the KV-transport watcher, and refuses the restart of
a server whose KV transfer was found off EFA.

Stand-ins (``tests/conformance/fake_node.py``): ``docker``, ``curl``, ``ip``, ``logger``; plus a
p5-shaped sysfs tree and ``nvidia-smi`` (``tests/fixtures/kv/fake_node.py``), and a ``docker``
wrapper that answers ``docker logs`` with a constructed container log
(``tests/fixtures/kv/logs.py``) and records ``docker kill``. A real SGLang server needs GPUs.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conformance.fake_node import Node, make_node
from tests.conformance.test_boot_rehearsal import FSX_ENV
from tests.fixtures.kv import logs
from tests.fixtures.kv.fake_node import make_node as make_efa_node

DEVICES = "/etc/sglang/efa-devices.json"


def _pd_node(tmp_path: Path, log_lines: list[str]) -> Node:
    env = {**FSX_ENV, "SGLANG_NNODES": "1", "SGLANG_KV_TRANSPORT": "mooncake", "SGLANG_KV_DEVICES": DEVICES}
    node = make_node(tmp_path, env)
    _, smi_dir = make_efa_node(node.root)
    (node.root / "etc/sglang/server-0.argv").write_text(
        "python3\n-m\nsglang.launch_server\n--port\n30000\n--tp-size\n8\n"
        f"--disaggregation-mode\nprefill\n--disaggregation-ib-device\n{DEVICES}\n"
    )
    (node.state / "container.log").write_text("\n".join(log_lines) + "\n")
    wrapper = tmp_path / "kvbin" / "docker"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        'case "$1" in\n'
        f'  logs) cat "{node.state}/container.log";;\n'
        f'  kill) echo "docker $*" >> "{node.state}/calls.log";;\n'
        f'  *) exec "{node.bin}/docker" "$@";;\n'
        "esac\n"
    )
    wrapper.chmod(0o755)
    # /usr/local/bin is on a node's PATH: the scripts call each other by name.
    node.env["PATH"] = f"{wrapper.parent}:{smi_dir}:{node.root}/usr/local/bin:{node.env['PATH']}"
    node.env["SGLANG_KV_POLL_SECS"] = "0.05"
    return node


def test_server_run_writes_and_mounts_the_device_map_and_passes_on_efa(tmp_path: Path) -> None:
    node = _pd_node(tmp_path, logs.mooncake(8))
    proc = node.run("sglang-server-run", "0")
    assert proc.returncode == 0, proc.stderr
    mapping = json.loads((node.root / DEVICES.lstrip("/")).read_text())
    assert sorted(mapping, key=int) == [str(i) for i in range(8)]
    args = (node.state / "docker-run.args").read_text().splitlines()
    i = args.index("-v", args.index(f"{node.root}{DEVICES}:{DEVICES}:ro") - 1)
    assert args[i + 1] == f"{node.root}{DEVICES}:{DEVICES}:ro"
    assert "KV transfer (mooncake): efa" in proc.stderr
    assert not node.calls("docker kill")
    assert not (node.root / "run/sglang/server-0.kv-transport-failed").exists()


def test_kv_transfer_on_tcp_stops_the_server_for_good(tmp_path: Path) -> None:
    tcp = logs.mooncake(8, ("Installing TCP transport (auto_discover disabled in EFA build)",))
    node = _pd_node(tmp_path, tcp)
    first = node.run("sglang-server-run", "0")
    assert "ERROR: server 0: KV transfer (mooncake) is tcp, not EFA" in first.stderr
    assert node.calls("docker") and any(
        c.startswith("docker kill sglang-server-0") for c in node.calls("docker")
    )
    assert (node.root / "run/sglang/server-0.kv-transport-failed").exists()
    runs = (node.state / "docker-run.args").stat().st_mtime_ns
    # systemd's restart: refused with 78 (RestartPreventExitStatus), no new container.
    again = node.run("sglang-server-run", "0")
    assert again.returncode == 78 and "KV transfer was not on EFA" in again.stderr
    assert (node.state / "docker-run.args").stat().st_mtime_ns == runs


def test_no_efa_device_stops_the_start(tmp_path: Path) -> None:
    node = _pd_node(tmp_path, logs.mooncake(8))
    for dev in (node.root / "sys/class/infiniband").iterdir():
        (dev / "device").unlink()
        dev.rmdir()
    proc = node.run("sglang-server-run", "0")
    assert proc.returncode == 1
    assert "ERROR: no EFA device under" in proc.stderr  # the script's own reason
    assert "no EFA device map for the KV transfer" in proc.stderr
    assert not (node.state / "docker-run.args").exists()
