"""The group-restart units pass ``systemd-analyze verify`` (Debian's systemd) as a multi-node
node has them: ``sglang-group@.service`` and the ``sglang-group.conf`` drop-in of
``sglang-server@.service``, in the scratch root of ``test_systemd_units`` (same stand-ins)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from infra.planning.userdata import GROUP_DROP_IN
from tests.conformance.test_systemd_units import USERDATA, _root, _verify


def _with_drop_in(tmp_path: Path) -> Path:
    root = _root(tmp_path)
    target = root / GROUP_DROP_IN[1].lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((USERDATA / GROUP_DROP_IN[0]).read_text())
    return root


def test_group_units_verify(tmp_path: Path) -> None:
    root = _with_drop_in(tmp_path)
    proc = _verify(root, ["sglang-server@0.service", "sglang-group@0.service", "multi-user.target"])
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_drop_in_really_applies(tmp_path: Path) -> None:
    """systemd merges the drop-in: the server instance runs the group hooks after its own
    ExecStartPre lines, and wants its sglang-group instance."""
    root = _with_drop_in(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "cat-config", f"--root={root}", "systemd/system/sglang-server@.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text = proc.stdout
    assert proc.returncode == 0, proc.stderr
    pre = [line for line in text.splitlines() if line.startswith("ExecStartPre=")]
    assert len(pre) >= 2 and pre[-1] == "ExecStartPre=/usr/local/bin/sglang-group start %i", pre
    assert "Wants=sglang-group@%i.service" in text


def test_verify_sees_a_broken_drop_in(tmp_path: Path) -> None:
    root = _with_drop_in(tmp_path)
    target = root / GROUP_DROP_IN[1].lstrip("/")
    target.write_text(target.read_text().replace("[Service]", "[Service]\nBogusGroupKey=1", 1))
    proc = _verify(root, ["sglang-server@0.service"])
    assert "BogusGroupKey" in proc.stderr, proc.stderr
