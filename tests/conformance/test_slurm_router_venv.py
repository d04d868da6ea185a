"""Rehearsal of ``sglang-router-node.sh`` on a node whose Python cannot make a venv yet.

ParallelCluster's ubuntu2204 AMI installs ``python3`` and ``python3-pip`` but not
``python3-venv`` (``default_packages`` of ``install_packages_ubuntu22+.rb`` in
aws/aws-parallelcluster-cookbook); on Ubuntu, ``ensurepip`` ships in ``python3-venv``, so
``python3 -m venv`` leaves a directory with ``bin/python3`` and no ``pip`` and exits 1
("ensurepip is not available"). The custom action must install the package and rebuild the
venv, on the first run and on a second run after such a half-made venv.

Stood in (no root, no apt repository, no PyPI here): ``python3`` (fails ``-m venv`` the way
Ubuntu's does until ``python3-venv`` is "installed"), ``apt-get`` (records its argv and marks
the package installed), ``systemctl``; bash and coreutils are real.
"""

from __future__ import annotations

from pathlib import Path

from tests.conformance.test_slurm_actions import COMMON, Node

UBUNTU_PYTHON = r"""
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  cp "$0" "$3/bin/python3"
  if [ ! -f "${FAKE_STATE}/python3-venv" ]; then
    echo "The virtual environment was not created successfully because ensurepip is not" >&2
    echo "available.  On Debian/Ubuntu systems, you need to install the python3-venv package" >&2
    exit 1
  fi
  cp "$0" "$3/bin/pip"
  exit 0
fi
if [ "$1 $2" = "-m pip" ] && [ ! -x "$(dirname "$0")/pip" ]; then
  echo "$0: No module named pip" >&2; exit 1
fi
if [ "$1 $2 $3" = "-m pip show" ]; then
  [ -f "${FAKE_STATE}/installed" ]; exit
fi
if [ "$1 $2 $3" = "-m pip install" ]; then
  touch "${FAKE_STATE}/installed"; exit 0
fi
exec sleep 300
"""

APT_GET = r"""
case " $* " in
  *" install "*python3-venv*) touch "${FAKE_STATE}/python3-venv";;
esac
"""


def _ubuntu_node(tmp_path: Path) -> Node:
    node = Node(tmp_path)
    bin_dir = Path(node.env["PATH"].split(":", 1)[0])
    for name, body in (("python3", UBUNTU_PYTHON), ("apt-get", APT_GET)):
        (bin_dir / name).write_text(COMMON + body, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    return node


def _argv() -> list[str]:
    from tests.conformance.conftest import plan_json

    return plan_json("slurm-tp16")["nodes"][0]["processes"][0]["argv"]


def test_router_action_installs_python3_venv_when_ensurepip_is_missing(tmp_path: Path) -> None:
    from infra.planning import slurm
    from infra.planning.flags import ROUTER_VERSION

    node = _ubuntu_node(tmp_path)
    proc = node.run(slurm.ROUTER_ACTION, ROUTER_VERSION, *_argv())
    assert proc.returncode == 0, proc.stderr
    assert any("install" in c and "python3-venv" in c for c in node.calls("apt-get")), node.calls("apt-get")
    assert (node.root / "opt" / "sglang" / "router-venv" / "bin" / "pip").exists()
    assert node.calls("systemctl restart") == ["systemctl restart sglang-router"]


def test_router_action_repairs_a_half_made_venv(tmp_path: Path) -> None:
    """A first run that made ``bin/python3`` without ``pip`` (the old action, or a run cut short)
    must not leave every later run failing at ``pip install``."""
    from infra.planning import slurm
    from infra.planning.flags import ROUTER_VERSION

    node = _ubuntu_node(tmp_path)
    venv = node.root / "opt" / "sglang" / "router-venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python3").write_text((tmp_path / "bin" / "python3").read_text(), encoding="utf-8")
    (venv / "python3").chmod(0o755)
    proc = node.run(slurm.ROUTER_ACTION, ROUTER_VERSION, *_argv())
    assert proc.returncode == 0, proc.stderr
    assert (venv / "pip").exists()
