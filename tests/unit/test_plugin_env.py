"""``server_env`` entries that keep aws-ofi-nccl or libfabric's efa provider from loading are
refused before anything exists while ``require_efa`` is on: otherwise every GPU node boots,
pulls the image, initializes NCCL on TCP sockets and only then gets stopped by the transport
check (``infra/planning/transport.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.planning.cluster import plan_cluster
from infra.spec import SpecError, parse_config
from tests.conftest import base_config

BUILT = "/opt/amazon/ofi-nccl/lib:/opt/amazon/efa/lib"


def plan(**overrides: Any) -> object:
    return plan_cluster(parse_config(base_config(**overrides)), "prod")


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("NCCL_NET_PLUGIN=none", "aws-ofi-nccl"),
        ("NCCL_NET_PLUGIN=libnccl-net-custom.so", "aws-ofi-nccl"),
        ("FI_PROVIDER=tcp", "efa provider"),
        ("FI_PROVIDER=tcp;ofi_rxm", "efa provider"),
        ("FI_PROVIDER=sockets,tcp", "efa provider"),
        ("FI_PROVIDER=^efa", "efa provider"),
        ("FI_PROVIDER=^tcp,efa", "efa provider"),
        ("LD_LIBRARY_PATH=/usr/local/lib", "/opt/amazon/ofi-nccl and /opt/amazon/efa"),
        ("LD_LIBRARY_PATH=/opt/amazon/ofi-nccl/lib", "lacks /opt/amazon/efa"),
        (f"LD_LIBRARY_PATH=/usr/local/lib:{BUILT}:${{LD_LIBRARY_PATH}}", "without expanding"),
    ],
)
def test_entries_that_keep_nccl_off_efa_are_refused(entry: str, words: str) -> None:
    with pytest.raises(SpecError) as e:
        plan(server_env=[entry])
    assert e.value.key == "sglang-cluster:server_env"
    assert entry.split("=")[0] in e.value.message and words in e.value.message
    assert "require_efa false" in e.value.message
    # The user may accept TCP explicitly, and single-node servers never cross nodes.
    assert plan(server_env=[entry], require_efa="false")
    assert plan(server_env=[entry], model="Qwen/Qwen2.5-14B-Instruct", tp_size=8, replicas=2)


@pytest.mark.parametrize(
    "entry",
    [
        "NCCL_NET_PLUGIN=ofi",
        "NCCL_NET_PLUGIN=/opt/amazon/ofi-nccl/lib/libnccl-net-ofi.so",
        "FI_PROVIDER=efa",
        "FI_PROVIDER=efa;ofi_rxd,shm",
        "FI_PROVIDER=^tcp,sockets",
        f"LD_LIBRARY_PATH={BUILT}:/usr/local/nvidia/lib64",
        "LD_LIBRARY_PATH=/opt/amazon/ofi-nccl/lib/x86_64-linux-gnu:/opt/amazon/efa/lib64",
    ],
)
def test_entries_that_keep_efa_are_allowed(entry: str) -> None:
    assert plan(server_env=[entry])
