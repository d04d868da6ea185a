"""``require_efa``: where the EFA check is on, what it refuses, and what nodes receive."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import main
from infra.planning.bundle import installed_files
from infra.planning.cluster import plan_cluster, server_node_boot
from infra.planning.userdata import SERVER_SCRIPTS, split_mime
from infra.spec import SpecError, parse_config
from tests.conftest import base_config

TP8_DP2 = {"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 8, "replicas": 2}
SINGLE_P5 = {"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 8}
DEV = {"model": "Qwen/Qwen3-0.6B", "instance_type": "g6e.xlarge", "tp_size": 1}


def node_env(**overrides: Any) -> list[dict[str, str]]:
    """``/etc/sglang/node.env`` of every GPU node, as cloud-init writes it."""
    plan = plan_cluster(parse_config(base_config(**overrides)), "prod")
    out = []
    for node in plan.layout.nodes:
        doc = yaml.safe_load(
            split_mime(server_node_boot(plan, node, "10.0.1.10").user_data)["text/cloud-config"]
        )
        env = next(f["content"] for f in doc["write_files"] if f["path"] == "/etc/sglang/node.env")
        out.append(
            {
                k: shlex.split(v)[0] if v != "''" else ""
                for k, v in (x.split("=", 1) for x in env.splitlines())
            }
        )
    return out


def refusal(**overrides: Any) -> SpecError:
    with pytest.raises(SpecError) as e:
        plan_cluster(parse_config(base_config(**overrides)), "prod")
    return e.value


def test_auto_is_on_for_every_node_of_a_multi_node_server() -> None:
    envs = node_env()
    assert [e["SGLANG_NODE_RANK"] for e in envs] == ["0", "1"]
    assert [e["SGLANG_REQUIRE_EFA"] for e in envs] == ["1", "1"]


@pytest.mark.parametrize("layout", [TP8_DP2, SINGLE_P5, DEV], ids=["tp8-dp2", "one-p5", "g6e"])
def test_auto_is_off_where_nccl_stays_in_one_node(layout: dict[str, Any]) -> None:
    assert {e["SGLANG_REQUIRE_EFA"] for e in node_env(**layout)} == {"0"}


@pytest.mark.parametrize("value", [False, "false", "False"])
def test_false_turns_it_off(value: object) -> None:
    assert {e["SGLANG_REQUIRE_EFA"] for e in node_env(require_efa=value)} == {"0"}


@pytest.mark.parametrize("value", [True, "true", "TRUE"])
def test_true_on_a_multi_node_server(value: object) -> None:
    assert {e["SGLANG_REQUIRE_EFA"] for e in node_env(require_efa=value)} == {"1"}


def test_true_where_servers_fit_one_node_is_refused() -> None:
    err = refusal(require_efa=True, **SINGLE_P5)
    assert err.key == "sglang-cluster:require_efa" and "spans nodes" in err.message


def test_true_on_a_type_without_efa_is_refused() -> None:
    err = refusal(require_efa="true", **DEV)
    assert err.key == "sglang-cluster:require_efa" and "g6e.xlarge has none" in err.message


def test_other_values_are_refused() -> None:
    with pytest.raises(SpecError) as e:
        parse_config(base_config(require_efa="yes"))
    assert e.value.key == "sglang-cluster:require_efa"


@pytest.mark.parametrize("debug", ["WARN", ""])
def test_nccl_debug_must_be_info_while_on(debug: str) -> None:
    err = refusal(nccl_debug=debug)
    assert err.key == "sglang-cluster:nccl_debug" and "require_efa" in err.message
    # Off, or where auto is off, any level is allowed.
    assert node_env(nccl_debug=debug, require_efa=False)
    assert node_env(nccl_debug=debug, **TP8_DP2)


@pytest.mark.parametrize(
    "entry",
    [
        "NCCL_DEBUG=WARN",
        "NCCL_DEBUG_SUBSYS=COLL,NET",
        "NCCL_DEBUG_SUBSYS=^INIT",
        "NCCL_DEBUG_SUBSYS=^ALL",
        "NCCL_DEBUG_FILE=/tmp/nccl.%h.%p",
        "NCCL_NET=Socket",
    ],
)
def test_server_env_that_hides_or_bypasses_the_lines_is_refused(entry: str) -> None:
    err = refusal(server_env=[entry])
    assert err.key == "sglang-cluster:server_env"
    assert entry.split("=")[0] in err.message and "require_efa" in err.message
    assert node_env(server_env=[entry], require_efa="false")


@pytest.mark.parametrize(
    "entry",
    [
        "NCCL_DEBUG=info",
        "NCCL_DEBUG_SUBSYS=INIT,NET",
        "NCCL_DEBUG_SUBSYS=^COLL",
        "NCCL_NET=Libfabric",
        "NCCL_NET=OFI",
    ],
)
def test_server_env_that_keeps_the_lines_is_allowed(entry: str) -> None:
    assert {e["SGLANG_REQUIRE_EFA"] for e in node_env(server_env=[entry])} == {"1"}


def test_the_cli_refuses_before_anything_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {(k if ":" in k else f"sglang-cluster:{k}"): v for k, v in base_config(nccl_debug="WARN").items()}
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(yaml.safe_dump({"config": cfg}), encoding="utf-8")
    assert main(["plan", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "sglang-cluster:nccl_debug" in err and "require_efa" in err


def test_scripts_ship_to_gpu_nodes() -> None:
    assert {"sglang-nccl-transport", "sglang-transport-check"} <= set(SERVER_SCRIPTS)
    plan = plan_cluster(parse_config(base_config()), "prod")
    files = installed_files(server_node_boot(plan, plan.layout.nodes[1], "10.0.1.10").user_data)
    paths = {p: f["permissions"] for p, f in files.items()}
    assert paths["/usr/local/bin/sglang-nccl-transport"] == "0755"
    assert paths["/usr/local/bin/sglang-transport-check"] == "0755"
