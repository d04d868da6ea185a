"""Prefill/decode stacks: every rendered prefill and decode argv passes SGLang 0.5.23's own
parser (exact flag names) and its FULL resolution (``resolve_once()`` + ``check_server_args()``)
with the EFA device map the node's real boot script writes.

Real parts: the plan's argvs, SGLang 0.5.23 (``.tools/sglang-venv``, ``.tools/sglang-resolve-venv``),
``userdata/sglang-kv-transport devices`` and the model's ``config.json``. Stand-ins, because no
GPU and no EFA device exist here: the GPU is emulated as in ``test_sglang_resolution.py``, and a
p5.48xlarge's sysfs tree and ``nvidia-smi`` (``tests/fixtures/kv/fake_node.py``) feed the boot
script; SGLang's probe of ``/sys/class/infiniband`` is answered from that tree
(``resolve_server_args.py`` ``emulate_infiniband``). The device map file replaces
``/etc/sglang/efa-devices.json`` in the argv (the container sees it there through a bind mount).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from infra.planning.catalog import lookup
from infra.planning.memory import effective_mem_fraction_static
from infra.planning.pd import IB_DEVICE_FILE, IB_DEVICE_FLAG, pool_spec
from tests.conformance.conftest import SGLANG_PYTHON, plan_json, run_json
from tests.conformance.test_sglang_resolution import _gpu, _model_dir, _spec
from tests.conftest import ROOT, STACKS
from tests.fixtures.kv.fake_node import make_node

PD_STACKS = [s for s in STACKS if _spec(s).pd_disaggregation]


def _pd_nodes(stack: str) -> list[dict[str, Any]]:
    return [n for n in plan_json(stack)["nodes"] if n["role"] in ("prefill", "decode")]


def test_there_is_a_pd_stack_with_both_pools() -> None:
    assert "pd-disagg" in PD_STACKS
    assert {n["role"] for n in _pd_nodes("pd-disagg")} == {"prefill", "decode"}


@pytest.mark.parametrize("stack", PD_STACKS)
def test_pd_argvs_parse_with_the_real_parser(stack: str) -> None:
    nodes = _pd_nodes(stack)
    argvs = [p["argv"][3:] for n in nodes for p in n["processes"]]
    results = run_json(SGLANG_PYTHON, "check_server_argv.py", argvs)
    workers = {w["url"]: w for w in plan_json(stack)["pd"]["workers"]}
    backend = _spec(stack).pd_transfer_backend
    for node, res in zip(nodes, results, strict=True):
        assert res["ok"], f"{stack}/{node['name']}: {res['error']}"
        args = res["args"]
        assert args["disaggregation_mode"] == node["role"]
        assert args["disaggregation_transfer_backend"] == backend
        worker = workers[f"http://{node['private_ip']}:{args['port']}"]
        assert worker["role"] == node["role"]
        if node["role"] == "prefill":
            assert args["disaggregation_bootstrap_port"] == worker["bootstrap_port"]
        else:
            assert worker["bootstrap_port"] is None
        assert args["disaggregation_ib_device"] == (IB_DEVICE_FILE if backend == "mooncake" else None)


@cache
def _efa_node(root: str) -> tuple[str, str]:
    """A stand-in p5 node; returns (its /sys/class/infiniband, the map its boot script wrote)."""
    base = Path(root)
    _, bindir = make_node(base, other=("mlx5_0",))
    out = base / "efa-devices.json"
    env = {"SGLANG_ROOT": str(base), "PATH": f"{bindir}:{os.environ['PATH']}"}
    script = ROOT / "userdata" / "sglang-kv-transport"
    proc = subprocess.run(
        [sys.executable, str(script), "devices", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return str(base / "sys" / "class" / "infiniband"), str(out)


def _resolve_pd(
    stack: str, tmp: Path, ib_value: str | None = None
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    ib_dir, device_map = _efa_node(str(tmp))
    spec = _spec(stack)
    out = []
    for node in _pd_nodes(stack):
        cases = []
        for p in node["processes"]:
            argv = list(p["argv"][3:])
            if IB_DEVICE_FLAG in argv:
                argv[argv.index(IB_DEVICE_FLAG) + 1] = ib_value or device_map
            cases.append({"argv": argv, "model_dir": _model_dir(spec.model)})
        payload_gpu = _gpu(node["instance_type"])
        results = run_json(
            Path(
                os.environ.get(
                    "SGLANG_RESOLVE_PYTHON", str(ROOT / ".tools" / "sglang-resolve-venv" / "bin" / "python")
                )
            ),
            "resolve_server_args.py",
            {"gpu": payload_gpu, "cases": cases, "infiniband": ib_dir},
            900,
        )
        out += [(node, r) for r in results]
    return out


@pytest.mark.parametrize("stack", PD_STACKS)
def test_pd_argvs_resolve_with_the_boot_scripts_device_map(stack: str, tmp_path: Path) -> None:
    spec = _spec(stack)
    _ib_dir, device_map = _efa_node(str(tmp_path))
    written = json.loads(Path(device_map).read_text())
    for node, res in _resolve_pd(stack, tmp_path):
        assert res["ok"], f"{stack}/{node['name']}: SGLang refused it: {res['error']}"
        r = res["resolved"]
        role = node["role"]
        pool = pool_spec(spec, role)
        assert r["device"] == "cuda"
        assert r["disaggregation_mode"] == role
        assert r["disaggregation_transfer_backend"] == spec.pd_transfer_backend
        assert r["tp_size"] == pool.tp_size
        # SGLang chose mem_fraction_static itself, and the pool's memory-fit check used that figure.
        assert r["mem_fraction_static"] == effective_mem_fraction_static(
            pool, lookup(pool.instance_type), role
        )
        if spec.pd_transfer_backend == "mooncake":
            # SGLang normalised the map the boot script wrote: every GPU, every name accepted.
            assert json.loads(r["disaggregation_ib_device"]) == written
            assert set(written) == {str(i) for i in range(lookup(pool.instance_type).gpus)}


def test_resolution_refuses_the_seeds_roce_device_on_an_efa_node(tmp_path: Path) -> None:
    """The book chapter's ``mlx5_roce0`` does not exist on an EFA node: SGLang 0.5.23 refuses it
    before any transfer engine starts (``validate_ib_devices``); so would a stale device list."""
    for _node, res in _resolve_pd("pd-disagg", tmp_path, ib_value="mlx5_roce0"):
        assert not res["ok"] and "Invalid IB devices" in res["error"], res


def test_resolution_refuses_a_missing_device_map(tmp_path: Path) -> None:
    """Without the boot script's file, SGLang stops at start (its parser reads the .json path)."""
    for _node, res in _resolve_pd("pd-disagg", tmp_path, ib_value=str(tmp_path / "absent.json")):
        assert not res["ok"] and "does not exist" in res["error"], res
