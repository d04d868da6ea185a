"""Prefill/decode pools: spec keys, the joined layout, the rendered argv and environment, the
gateway's worker list, the plan JSON and the refusals (each through the real CLI, exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import main, plan_document
from infra.mockrun import run_stack
from infra.planning.argv import server_argv
from infra.planning.bundle import installed_files
from infra.planning.cluster import container_env, plan_cluster
from infra.planning.gateway import Worker
from infra.planning.pd import IB_DEVICE_FILE, plan_pd_layout, pool_spec
from infra.planning.userdata import split_mime
from infra.spec import parse_config
from tests.conftest import base_config


def pd_config(**overrides: Any) -> dict[str, Any]:
    return base_config(**{"tp_size": 8, "pd_disaggregation": True, **overrides})


def _write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.pd.yaml"
    path.write_text(
        yaml.safe_dump({"config": {(k if ":" in k else f"sglang-cluster:{k}"): v for k, v in cfg.items()}})
    )
    return path


def test_pools_are_planned_and_joined_prefill_first() -> None:
    spec = parse_config(
        pd_config(
            prefill_replicas=2,
            prefill_tp_size=4,
            decode_tp_size=8,
            model="Qwen/Qwen2.5-14B-Instruct",
        )
    )
    lay = plan_pd_layout(spec)
    assert [(n.name, n.role) for n in lay.nodes] == [("prefill-g0-r0", "prefill"), ("decode-g1-r0", "decode")]
    prefill = lay.nodes[0].servers
    # Two TP4 prefill servers packed on one node: distinct GPUs, ports and bootstrap ports.
    assert [(s.base_gpu_id, s.port, s.bootstrap_port) for s in prefill] == [
        (0, 30000, 8998),
        (4, 30010, 9008),
    ]
    assert [s.index for s in lay.servers] == [0, 1, 2]
    assert lay.nodes[1].servers[0].bootstrap_port is None
    assert lay.total_gpus == 16 and lay.used_gpus == 16


def test_argv_per_pool() -> None:
    spec = parse_config(pd_config(decode_tp_size=8, prefill_tp_size=8))
    lay = plan_pd_layout(spec)
    prefill = server_argv(pool_spec(spec, "prefill"), lay.nodes[0].servers[0], 0, "10.0.0.1")
    decode = server_argv(pool_spec(spec, "decode"), lay.nodes[1].servers[0], 0, "10.0.0.2")
    assert prefill[prefill.index("--disaggregation-mode") + 1] == "prefill"
    assert prefill[prefill.index("--disaggregation-bootstrap-port") + 1] == "8998"
    assert decode[decode.index("--disaggregation-mode") + 1] == "decode"
    assert "--disaggregation-bootstrap-port" not in decode
    for argv in (prefill, decode):
        assert argv[argv.index("--disaggregation-transfer-backend") + 1] == "mooncake"
        assert argv[argv.index("--disaggregation-ib-device") + 1] == IB_DEVICE_FILE
        assert "mlx5_roce0" not in argv


def test_nixl_renders_no_device_flag_and_its_own_env() -> None:
    spec = parse_config(pd_config(pd_transfer_backend="nixl"))
    lay = plan_pd_layout(spec)
    argv = server_argv(pool_spec(spec, "decode"), lay.nodes[1].servers[0], 0, "10.0.0.2")
    assert argv[argv.index("--disaggregation-transfer-backend") + 1] == "nixl"
    assert "--disaggregation-ib-device" not in argv
    env = container_env(spec, spec.node_type)
    assert env["SGLANG_DISAGGREGATION_NIXL_BACKEND"] == "LIBFABRIC" and env["NIXL_LOG_LEVEL"] == "INFO"
    assert "MOONCAKE_PROTOCOL" not in env


def test_mooncake_env_and_no_env_without_pd() -> None:
    env = container_env(parse_config(pd_config()), parse_config(pd_config()).node_type)
    assert env["MOONCAKE_PROTOCOL"] == "efa" and env["FI_HMEM"] == "cuda" and env["GLOG_logtostderr"] == "1"
    regular = container_env(parse_config(base_config()), parse_config(base_config()).node_type)
    assert not {"MOONCAKE_PROTOCOL", "FI_HMEM", "SGLANG_DISAGGREGATION_NIXL_BACKEND"} & set(regular)


def test_pools_of_different_types_and_sizes() -> None:
    spec = parse_config(
        pd_config(prefill_instance_type="p5en.48xlarge", prefill_tp_size=8, decode_tp_size=16, node_count=3)
    )
    plan = plan_cluster(spec, "pd")
    types = [(n.name, n.instance_type, n.servers[0].nnodes) for n in plan.layout.nodes]
    assert types == [
        ("prefill-g0-r0", "p5en.48xlarge", 1),
        ("decode-g1-r0", "p5.48xlarge", 2),
        ("decode-g1-r1", "p5.48xlarge", 2),
    ]
    from infra.planning.catalog import lookup
    from infra.planning.cluster import server_node_env

    # NCCL crosses nodes only in the TP16 decode pool: only its nodes enforce require_efa.
    enforce = {
        n.name: server_node_env(plan, n, "10.0.0.1", plan.runtime_for_plan())["SGLANG_REQUIRE_EFA"]
        for n in plan.layout.nodes
    }
    assert enforce == {"prefill-g0-r0": "0", "decode-g1-r0": "1", "decode-g1-r1": "1"}

    assert plan.estimates.hourly_cost_usd == round(
        (lookup("p5en.48xlarge").hourly_usd or 0)
        + 2 * (lookup("p5.48xlarge").hourly_usd or 0)
        + (lookup("c7i.xlarge").hourly_usd or 0),
        2,
    )
    assert plan.spec.image_source == "build"  # the transfer engine must be in the image


def test_pd_stack_plan_json() -> None:
    doc = plan_document(run_stack("pd-disagg"))
    roles = {n["name"]: n["role"] for n in doc["nodes"]}
    assert roles == {"prefill-g0-r0": "prefill", "decode-g1-r0": "decode", "router": "router"}
    pd = doc["pd"]
    assert pd["transfer_backend"] == "mooncake"
    ips = {n["name"]: n["private_ip"] for n in doc["nodes"]}
    assert pd["workers"] == [
        {"url": f"http://{ips['prefill-g0-r0']}:30000", "role": "prefill", "bootstrap_port": 8998},
        {"url": f"http://{ips['decode-g1-r0']}:30000", "role": "decode", "bootstrap_port": None},
    ]
    assert pd["pools"]["prefill"]["instance_type"] == "p5.48xlarge" and pd["pools"]["decode"]["tp_size"] == 8
    assert doc["estimates"]["gpus"] == 16
    for name in ("prefill-g0-r0", "decode-g1-r0"):
        node = next(n for n in doc["nodes"] if n["name"] == name)
        cfg = split_mime(node["user_data"])["text/cloud-config"]
        assert (
            installed_files(node["user_data"])["/usr/local/bin/sglang-kv-transport"]["permissions"] == "0755"
        )
        assert "SGLANG_KV_TRANSPORT=mooncake" in cfg and f"SGLANG_KV_DEVICES={IB_DEVICE_FILE}" in cfg
        assert "MOONCAKE_PROTOCOL=efa" in cfg and "FI_HMEM=cuda" in cfg
        assert node["user_data_bytes"] < 16384


def _guarded(script: str, line: int) -> bool:
    """Line ``line`` of ``script`` sits in an ``if`` block on a ``SGLANG_KV_*`` node.env value."""
    for text in script.splitlines()[:line][::-1]:
        if text.startswith(("if ", "fi")):
            return text.startswith("if ") and "${SGLANG_KV_" in text
    return False


def test_regular_stacks_carry_no_pd_script() -> None:
    doc = plan_document(run_stack("prod-tp16"))
    assert "pd" not in doc
    for node in doc["nodes"]:
        # The script is in every server bundle (one bundle per node kind) but runs only where
        # node.env sets SGLANG_KV_TRANSPORT (sglang-server-run), which no node here does.
        assert "path: /usr/local/bin/sglang-kv-transport" not in node["user_data"]
        assert "\n    SGLANG_KV_TRANSPORT=" not in node["user_data"]  # no node.env entry
    run = installed_files(doc["nodes"][0]["user_data"])["/usr/local/bin/sglang-server-run"]["content"]
    calls = [i for i, line in enumerate(run.splitlines()) if "sglang-kv-transport " in line]
    assert len(calls) == 2 and all(_guarded(run, i) for i in calls)
    assert all("SGLANG_KV_DEVICES=" not in n["user_data"] for n in doc["nodes"])


def test_pool_worker_list_is_the_gateway_shape() -> None:
    """Same fields, order and defaults as the gateway's ``Worker`` (the brief's interface), so
    the lead can swap this class for ``infra.planning.gateway.Worker``."""
    from dataclasses import MISSING, fields

    assert [(f.name, f.default) for f in fields(Worker)] == [
        ("url", MISSING),
        ("role", "regular"),
        ("bootstrap_port", None),
    ]
    assert Worker.__dataclass_params__.frozen  # type: ignore[attr-defined]  # dataclass internals


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("pool key without pd", {"prefill_tp_size": 8}, "sglang-cluster:prefill_tp_size"),
    ("replicas with pd", {"pd_disaggregation": True, "replicas": 2}, "sglang-cluster:replicas"),
    (
        "pool type without GPUDirect RDMA",
        {"pd_disaggregation": True, "decode_instance_type": "g6e.48xlarge"},
        "sglang-cluster:decode_instance_type",
    ),
    (
        "unknown pool type",
        {"pd_disaggregation": True, "prefill_instance_type": "p9.x"},
        "sglang-cluster:prefill_instance_type",
    ),
    (
        "pool that does not fit",
        {"pd_disaggregation": True, "decode_tp_size": 1},
        "sglang-cluster:decode_tp_size",
    ),
    (
        "pool tp not filling nodes",
        {"pd_disaggregation": True, "prefill_tp_size": 12},
        "sglang-cluster:prefill_tp_size",
    ),
    (
        "node count of one pool",
        {"pd_disaggregation": True, "node_count": 1},
        "sglang-cluster:node_count",
    ),
    (
        "transport env that forces TCP",
        {"pd_disaggregation": True, "server_env": ["MC_FORCE_TCP=1"]},
        "sglang-cluster:server_env",
    ),
    (
        "CUDA VMM allocator with mooncake over EFA",
        {"pd_disaggregation": True, "server_env": ["PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"]},
        "sglang-cluster:server_env",
    ),
    (
        "transfer backend in extra args",
        {
            "pd_disaggregation": True,
            "extra_server_args": ["--disaggregation-transfer-backend", "mooncake_tcp"],
        },
        "sglang-cluster:extra_server_args",
    ),
    (
        "roce device in extra args",
        {"pd_disaggregation": True, "extra_server_args": ["--disaggregation-ib-device", "mlx5_roce0"]},
        "sglang-cluster:extra_server_args",
    ),
    (
        "mode in extra args even with pd",
        {"pd_disaggregation": True, "extra_server_args": ["--disaggregation-mode", "decode"]},
        "sglang-cluster:extra_server_args",
    ),
    (
        "bootstrap port next to the server port",
        {"pd_disaggregation": True, "pd_bootstrap_port": 30500},
        "sglang-cluster:pd_bootstrap_port",
    ),
    (
        "reservation with two pool types",
        {
            "pd_disaggregation": True,
            "prefill_instance_type": "p5en.48xlarge",
            "capacity_reservation_id": "cr-0123456789abcdef0",
        },
        "sglang-cluster:capacity_reservation_id",
    ),
    (
        "public image run as is",
        {"pd_disaggregation": True, "image_source": "uri"},
        "sglang-cluster:image_source",
    ),
]


@pytest.mark.parametrize(("what", "overrides", "key"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, overrides: dict[str, Any], key: str
) -> None:
    path = _write(tmp_path, base_config(tp_size=8, **overrides))
    assert main(["plan", str(path)]) == 2, what
    out, err = capsys.readouterr()
    assert out == "" and key in err, f"{what}: {err!r}"
    assert len(err.strip().splitlines()) == 1


def test_valid_pd_base_plans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(_write(tmp_path, pd_config()))]) == 0
    assert "prefill-g0-r0" in capsys.readouterr().out
