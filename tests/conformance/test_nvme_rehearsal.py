"""Instance-store NVMe for Docker's data root and the model cache (``userdata/sglang-nvme``),
rehearsed with stand-ins: the real script under real bash and python3, with ``lsblk``,
``mdadm``, ``mkfs.ext4``, ``blkid``, ``mount``, ``mountpoint`` and ``systemctl`` first on PATH
(``tests/conformance/fake_node.py``). No real disk is touched (that needs root and an instance
with instance store). The stand-ins keep what lives on the disks (the array's superblocks, the
labelled file system) apart from what the kernel holds (the running array, the mount), so a
reboot keeps the first and a stop/start wipes both, as EC2 does with instance store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conformance.fake_node import Node, error_lines, make_node

MD = "dev/md/sglang-nvme"
DLAMI_DAEMON_JSON = {
    "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}},
    "default-runtime": "nvidia",
}
"""What a GPU DLAMI's /etc/docker/daemon.json holds (the NVIDIA runtime); it must survive."""


def _node(tmp_path: Path) -> Node:
    node = make_node(tmp_path, {"SGLANG_REGION": "us-east-1"})
    conf = node.root / "etc/docker/daemon.json"
    conf.parent.mkdir(parents=True)
    conf.write_text(json.dumps(DLAMI_DAEMON_JSON))
    return node


def _run(node: Node, disks: int, **fake: str) -> str:
    p = node.run("sglang-nvme", FAKE_NVME_DISKS=str(disks), **fake)
    assert p.returncode == 0, p.stderr
    assert error_lines(p.stderr) == [], p.stderr
    return p.stderr


def _restarts(node: Node) -> list[str]:
    """The stand-in systemctl's calls that change something (``show`` only reads)."""
    return [c for c in node.calls("systemctl") if c.split()[1] != "show"]


def _count(node: Node, prog: str, word: str = "") -> int:
    return len([c for c in node.calls(prog) if word in c])


def test_p5_eight_disks_raid0_then_rerun_reboot_and_stop_start(tmp_path: Path) -> None:
    node = _node(tmp_path)
    md = str(node.root / MD)
    # First boot: one RAID0 array over the 8 instance-store disks (never the EBS root disk).
    _run(node, 8)
    (create,) = [c for c in node.calls("mdadm") if "--create" in c]
    disks = [f"/dev/nvme{i}n1" for i in range(1, 9)]
    assert create.split() == ["mdadm", "--create", md, "--run", "--level=0", "--raid-devices=8", *disks]
    assert "/dev/nvme0n1" not in create
    assert node.calls("mkfs.ext4") == [f"mkfs.ext4 -q -F -m 0 -E nodiscard -L sglang-nvme {md}"]
    assert node.calls("mount") == [f"mount -o noatime {md} {node.root}/opt/dlami/nvme"]
    conf = json.loads((node.root / "etc/docker/daemon.json").read_text())
    assert conf == {**DLAMI_DAEMON_JSON, "data-root": "/opt/dlami/nvme/docker"}
    assert _restarts(node) == ["systemctl restart docker.service"]
    assert (node.root / "opt/dlami/nvme/huggingface").is_dir()

    # The unit runs again in the same boot: nothing is created, mounted or restarted.
    before = node.snapshot()
    _run(node, 8)
    assert _count(node, "mdadm", "--create") == 1 and _count(node, "mkfs.ext4") == 1
    assert _count(node, "mount") == 1 and len(_restarts(node)) == 1
    assert node.snapshot() == before

    # Reboot: instance store keeps its data; the array is assembled again, never re-created
    # or re-formatted; Docker, started before the mount, starts again on it.
    node.reboot()
    _run(node, 8)
    assert _count(node, "mdadm", "--assemble --scan") >= 1
    assert _count(node, "mdadm", "--create") == 1 and _count(node, "mkfs.ext4") == 1
    assert _count(node, "mount") == 2 and _count(node, "systemctl", "restart docker") == 2
    assert (
        json.loads((node.root / "etc/docker/daemon.json").read_text())["data-root"]
        == "/opt/dlami/nvme/docker"
    )

    # Stop/start: the disks come back blank; a new array and file system.
    node.stop_start()
    _run(node, 8)
    assert _count(node, "mdadm", "--create") == 2 and _count(node, "mkfs.ext4") == 2
    assert _count(node, "mount") == 3


def test_reboot_after_udev_assembled_the_array(tmp_path: Path) -> None:
    """Ubuntu's udev rules usually assemble the array at boot: found by label at once."""
    node = _node(tmp_path)
    _run(node, 8)
    node.reboot()
    (node.state / "md-active").touch()  # udev's incremental assembly
    (node.root / MD).touch()
    _run(node, 8)
    assert _count(node, "mdadm", "--create") == 1 and _count(node, "mkfs.ext4") == 1
    assert _count(node, "mdadm", "--assemble") == 1  # only the first boot's search for one


def test_one_disk_no_array(tmp_path: Path) -> None:
    """g6e.xlarge and similar: one local NVMe disk, formatted directly."""
    node = _node(tmp_path)
    _run(node, 1)
    assert _count(node, "mdadm", "--create") == 0
    assert node.calls("mkfs.ext4") == ["mkfs.ext4 -q -F -m 0 -E nodiscard -L sglang-nvme /dev/nvme1n1"]
    node.reboot()
    _run(node, 1)
    assert _count(node, "mkfs.ext4") == 1 and _count(node, "mount") == 2


def test_no_instance_store_leaves_docker_alone(tmp_path: Path) -> None:
    """The router (c7i) and types without instance store: nothing is changed."""
    node = _node(tmp_path)
    before = node.snapshot()
    err = _run(node, 0)
    assert "no instance store" in err
    assert node.calls("mkfs.ext4") == [] and node.calls("mount") == [] and node.calls("systemctl") == []
    assert node.snapshot() == before


def test_an_interrupted_first_run_reuses_its_array(tmp_path: Path) -> None:
    """The array was created, then the run died before mkfs: the rerun must not try to create
    it again (mdadm refuses a device that exists) and formats it."""
    node = _node(tmp_path)
    (node.root / MD).parent.mkdir(parents=True)
    (node.root / MD).touch()
    (node.state / "md-super").touch()
    (node.state / "md-active").touch()
    _run(node, 8)
    assert _count(node, "mdadm", "--create") == 0
    assert node.calls("mkfs.ext4") == [f"mkfs.ext4 -q -F -m 0 -E nodiscard -L sglang-nvme {node.root / MD}"]


def test_dlami_mount_is_used_as_is(tmp_path: Path) -> None:
    """A DLAMI that mounted /opt/dlami/nvme itself: no disk is touched, Docker moves there once."""
    node = _node(tmp_path)
    (node.state / "nvme-mounted").touch()
    _run(node, 8)
    assert node.calls("mdadm") == [] and node.calls("mkfs.ext4") == [] and node.calls("mount") == []
    assert _restarts(node) == ["systemctl restart docker.service"]
    _run(node, 8)
    assert len(_restarts(node)) == 1


@pytest.mark.parametrize(("fails", "ok"), [("2", True), ("9", False)])
def test_docker_restart_is_retried(tmp_path: Path, fails: str, ok: bool) -> None:
    node = _node(tmp_path)
    p = node.run("sglang-nvme", FAKE_NVME_DISKS="8", FAKE_RESTART_FAILS=fails)
    assert (p.returncode == 0) is ok, p.stderr
    if not ok:
        (line,) = error_lines(p.stderr)
        assert "nvme: restart docker" in line and "gave up after 5 attempt(s)" in line


def test_without_mdadm_one_disk_is_used(tmp_path: Path) -> None:
    """An image without mdadm: the node still boots, on one disk, and says so."""
    node = _node(tmp_path)
    (node.bin / "mdadm").unlink()
    # No sbin directory on PATH: a real mdadm there is out of reach too (the rest is faked).
    node.env["PATH"] = f"{node.bin}:/usr/bin:/bin"
    p = node.run("sglang-nvme", FAKE_NVME_DISKS="8")
    assert p.returncode == 0, p.stderr
    assert "WARNING: nvme: no mdadm: using /dev/nvme1n1 alone, not all 8 disks" in p.stderr
    assert node.calls("mkfs.ext4") == ["mkfs.ext4 -q -F -m 0 -E nodiscard -L sglang-nvme /dev/nvme1n1"]


def test_disks_claimed_by_the_dlami_are_left_to_it(tmp_path: Path) -> None:
    """The DLAMI's own set-up has put its signature (LVM) on the disks and mounts
    /opt/dlami/nvme a moment later: no array or file system of ours, its mount is used."""
    node = _node(tmp_path)
    _run(node, 8, FAKE_NVME_CLAIMED="1", FAKE_NVME_MOUNTED_AFTER="3")
    assert node.calls("mdadm") == ["mdadm --assemble --scan"]
    assert node.calls("mkfs.ext4") == [] and node.calls("mount") == []
    assert (
        json.loads((node.root / "etc/docker/daemon.json").read_text())["data-root"]
        == "/opt/dlami/nvme/docker"
    )


def test_claimed_disks_never_mounted_fail_with_one_line(tmp_path: Path) -> None:
    node = _node(tmp_path)
    p = node.run("sglang-nvme", FAKE_NVME_DISKS="8", FAKE_NVME_CLAIMED="1")
    assert p.returncode == 1
    (line,) = error_lines(p.stderr)
    assert "nvme: wait for the instance store to be mounted" in line and "gave up after 30 attempt(s)" in line
    assert node.calls("mkfs.ext4") == []


def test_a_node_without_docker_only_mounts(tmp_path: Path) -> None:
    """A router type with instance store: no Docker to move or restart (its boot must not fail)."""
    node = _node(tmp_path)
    (node.bin / "docker").unlink()
    node.env["PATH"] = f"{node.bin}:/usr/bin:/bin"  # no real docker either
    before = (node.root / "etc/docker/daemon.json").read_text()
    _run(node, 2)
    assert _count(node, "mount") == 1 and node.calls("systemctl") == []
    assert (node.root / "etc/docker/daemon.json").read_text() == before


def test_a_half_claimed_set_of_disks_is_never_split(tmp_path: Path) -> None:
    """The DLAMI's ``dlami-nvme.service`` stripes every instance-store disk into one LVM volume
    and mounts it at /opt/dlami/nvme (as seen on DLAMI nodes: vg.01/lv_ephemeral, ext4). Caught
    half-way (3 of 8 disks already LVM members), the other 5 are blank: an array of ours over
    them would take disks from under the DLAMI's set-up. Its mount is waited for instead."""
    node = _node(tmp_path)
    _run(node, 8, FAKE_NVME_CLAIMED_DISKS="3", FAKE_NVME_MOUNTED_AFTER="2")
    assert [c for c in node.calls("mdadm") if "--create" in c] == []
    assert node.calls("mkfs.ext4") == [] and node.calls("mount") == []
    assert (
        json.loads((node.root / "etc/docker/daemon.json").read_text())["data-root"]
        == "/opt/dlami/nvme/docker"
    )


def test_docker_started_before_the_dlami_mount_starts_again_after_a_reboot(tmp_path: Path) -> None:
    """After a reboot daemon.json already names /opt/dlami/nvme/docker, and Docker (enabled at
    boot) may start before the DLAMI has mounted the instance store: it then runs on the
    root-volume directory the mount hides, pulls the image onto the EBS volume and loses it at
    its next restart. Such a Docker is restarted (systemd's ActiveEnterTimestampMonotonic of
    docker.service before that of opt-dlami-nvme.mount); one started after it is left alone."""
    node = _node(tmp_path)
    _run(node, 8, FAKE_NVME_CLAIMED="1", FAKE_NVME_MOUNTED_AFTER="0")
    assert _count(node, "systemctl", "restart docker") == 1  # daemon.json changed
    _run(node, 8, FAKE_NVME_CLAIMED="1", FAKE_NVME_MOUNTED_AFTER="0")
    assert _count(node, "systemctl", "restart docker") == 1  # same boot: nothing to do
    node.reboot()
    _run(node, 8, FAKE_NVME_CLAIMED="1", FAKE_NVME_MOUNTED_AFTER="0")
    assert _count(node, "systemctl", "restart docker") == 2
    assert node.calls("mdadm") == [] or all("--create" not in c for c in node.calls("mdadm"))
    _run(node, 8, FAKE_NVME_CLAIMED="1", FAKE_NVME_MOUNTED_AFTER="0")
    assert _count(node, "systemctl", "restart docker") == 2


def test_node_unit_runs_after_the_dlamis_nvme_unit() -> None:
    """``sglang-node.service`` starts after ``dlami-nvme.service`` (ordering only: a node without
    that unit is unaffected), so sglang-nvme never races the DLAMI for blank disks."""
    from tests.conformance.fake_node import USERDATA

    after = [
        unit
        for line in (USERDATA / "sglang-node.service").read_text().splitlines()
        if line.startswith("After=")
        for unit in line.removeprefix("After=").split()
    ]
    assert "dlami-nvme.service" in after
    assert not any(
        line.startswith(("Requires=", "Wants=", "BindsTo=")) and "dlami-nvme" in line
        for line in (USERDATA / "sglang-node.service").read_text().splitlines()
    )
