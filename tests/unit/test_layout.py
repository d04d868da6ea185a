"""The layout planner: groups, ranks, GPUs, base GPU ids and ports, valid and invalid."""

from __future__ import annotations

import pytest

from infra.planning.layout import DIST_PORT_STRIDE, SERVER_PORT_STRIDE, plan_layout
from infra.spec import SpecError, parse_config
from tests.conftest import base_config

UNKNOWN = {"model": "acme/no-shape", "model_params_billion": "1", "model_dtype": "bfloat16"}


def layout(**kw: object):
    return plan_layout(parse_config(base_config(**kw)))


def test_tp16_spans_two_nodes_with_ranks() -> None:
    lay = layout()
    assert [n.name for n in lay.nodes] == ["server-g0-r0", "server-g0-r1"]
    assert [n.rank for n in lay.nodes] == [0, 1]
    (s,) = lay.servers
    assert s.nnodes == 2 and s.gpus == 16 and s.gpus_per_node == 8 and s.base_gpu_id == 0
    assert lay.total_gpus == 16 and lay.used_gpus == 16


def test_tp8_pp2_is_tp_times_pp_gpus() -> None:
    lay = layout(model="deepseek-ai/DeepSeek-V2-Lite", tp_size=8, pp_size=2)
    assert lay.gpus_per_server == 16 and lay.nodes_per_server == 2


def test_replicas_get_one_group_each() -> None:
    lay = layout(model="Qwen/Qwen2.5-14B-Instruct", tp_size=8, replicas=2)
    assert [n.name for n in lay.nodes] == ["server-g0-r0", "server-g1-r0"]
    assert [s.group for s in lay.servers] == [0, 1]
    assert all(s.nnodes == 1 for s in lay.servers)


def test_packed_servers_get_distinct_gpus_and_ports() -> None:
    lay = layout(model="Qwen/Qwen2.5-14B-Instruct", tp_size=2, replicas=8, servers_per_node=4)
    assert len(lay.nodes) == 2 and lay.servers_per_node == 4
    node0 = lay.nodes[0].servers
    assert [s.base_gpu_id for s in node0] == [0, 2, 4, 6]
    assert [s.port for s in node0] == [30000 + i * SERVER_PORT_STRIDE for i in range(4)]
    assert len({s.dist_init_port for s in node0}) == 4
    assert node0[1].dist_init_port - node0[0].dist_init_port == DIST_PORT_STRIDE
    # The second node repeats the same slots.
    assert [s.port for s in lay.nodes[1].servers] == [s.port for s in node0]


def test_packing_defaults_to_as_many_as_fit() -> None:
    lay = layout(model="Qwen/Qwen2.5-14B-Instruct", tp_size=2, replicas=8)
    assert lay.servers_per_node == 4 and len(lay.nodes) == 2


def test_dp_inside_one_node_multiplies_gpus() -> None:
    lay = layout(model="Qwen/Qwen2.5-14B-Instruct", tp_size=4, dp_size=2)
    assert lay.gpus_per_server == 8 and lay.nodes_per_server == 1


def test_attention_dp_keeps_tp_gpus() -> None:
    lay = layout(model="deepseek-ai/DeepSeek-V2-Lite", tp_size=16, dp_size=4, attention_dp=True)
    assert lay.gpus_per_server == 16 and lay.nodes_per_server == 2


def test_ep_within_tp_accepted() -> None:
    lay = layout(model="Qwen/Qwen1.5-MoE-A2.7B", tp_size=8, ep_size=2)
    assert lay.gpus_per_server == 8


def test_node_count_matching_is_accepted() -> None:
    assert len(layout(node_count=2).nodes) == 2


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"tp_size": 12, **UNKNOWN}, "tp_size", "whole number"),
        ({"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 3}, "tp_size", "40 attention heads"),
        ({"tp_size": 3, "instance_type": "g6e.48xlarge", **UNKNOWN}, "tp_size", "does not divide"),
        ({"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 8, "dp_size": 2}, "dp_size", "multi-node"),
        ({"attention_dp": True}, "dp_size", "dp_size > 1"),
        ({"model": "Qwen/Qwen1.5-MoE-A2.7B", "tp_size": 8, "ep_size": 16}, "ep_size", "must divide"),
        ({"ep_size": 2}, "ep_size", "dense"),
        ({"model": "Qwen/Qwen3-0.6B", "instance_type": "g6e.xlarge", "tp_size": 2}, "instance_type", "EFA"),
        ({"node_count": 4}, "node_count", "needs 2"),
        ({"servers_per_node": 2}, "servers_per_node", "0 or 1"),
        (
            {"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 2, "replicas": 3, "servers_per_node": 2},
            "replicas",
            "multiple",
        ),
    ],
)
def test_layout_refusals(overrides: dict, key: str, words: str) -> None:
    with pytest.raises(SpecError) as e:
        layout(**overrides)
    assert e.value.key == f"sglang-cluster:{key}"
    assert words in e.value.message
