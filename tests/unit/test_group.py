"""Group restart data: the coordinator port, node.env entries, ``--dist-timeout``, installed files."""

from __future__ import annotations

import shlex

import pytest

from infra.planning.argv import server_argv
from infra.planning.bundle import installed_files
from infra.planning.cluster import plan_cluster, server_node_boot, server_node_env
from infra.planning.group import (
    DIST_TIMEOUT_SECS,
    GROUP_PORT_OFFSET,
    group_port,
    regroup_bound_secs,
)
from infra.planning.layout import DIST_PORT_STRIDE, SERVER_PORT_STRIDE
from infra.planning.userdata import GROUP_DROP_IN
from infra.spec import parse_config
from tests.conftest import base_config

# SGLang 0.5.23 binds dist_init_port and, with DP attention, dist_init_port+1..+6
# (server_args.py PortArgs.init_new); its NCCL port is free-picked in 22000-29999.
SGLANG_DIST_PORTS = range(0, 7)


def _files(user_data: str) -> dict[str, dict]:
    """Every file the node has after boot: user data's write_files and its bundle's members."""
    return installed_files(user_data)


def _env(text: str) -> dict[str, str]:
    return {
        k: shlex.split(v)[0] if v != "''" else "" for k, v in (x.split("=", 1) for x in text.splitlines())
    }


def test_group_port_is_inside_the_servers_dist_block_and_clear_of_sglang() -> None:
    plan = plan_cluster(parse_config(base_config()), "prod")
    server = plan.layout.servers[0]
    port = group_port(server)
    assert port == server.dist_init_port + GROUP_PORT_OFFSET
    assert 0 < port - server.dist_init_port < DIST_PORT_STRIDE
    assert port - server.dist_init_port not in SGLANG_DIST_PORTS
    # Far from the HTTP ports the router reaches (server_port .. + stride per slot).
    assert abs(port - server.port) >= SERVER_PORT_STRIDE * 8
    assert not 22000 <= port <= 29999  # SGLang's free-picked NCCL port range (default ports)


@pytest.mark.parametrize("rank", [0, 1])
def test_multi_node_env_and_files(rank: int) -> None:
    plan = plan_cluster(parse_config(base_config()), "prod")
    node = plan.layout.nodes[rank]
    env = server_node_env(plan, node, "10.0.1.10", plan.runtime_for_plan())
    assert env["SGLANG_GROUP_PORT"] == "20019"
    assert env["SGLANG_GROUP_LOST_SECS"] == "30" and env["SGLANG_GROUP_BACKOFF_SECS"] == "15 300"
    boot = server_node_boot(plan, node, "10.0.1.10")
    files = _files(boot.user_data)
    assert _env(files["/etc/sglang/node.env"]["content"])["SGLANG_GROUP_PORT"] == "20019"
    assert files["/usr/local/bin/sglang-group"]["permissions"] == "0755"
    assert files["/usr/local/bin/sglang-group"]["content"].startswith("#!/usr/bin/env python3")
    assert "/etc/systemd/system/sglang-group@.service" in files
    drop_in = files[GROUP_DROP_IN[1]]["content"]
    assert "ExecStartPre=/usr/local/bin/sglang-group start %i" in drop_in
    assert GROUP_DROP_IN[1].startswith("/etc/systemd/system/sglang-server@.service.d/")
    argv = boot.processes[0]
    assert argv[argv.index("--dist-timeout") + 1] == str(DIST_TIMEOUT_SECS)
    assert argv[-2] == "--dist-init-addr"  # still last: rank 0 appends it at boot


def test_single_node_servers_get_none_of_it() -> None:
    plan = plan_cluster(parse_config(base_config(model="Qwen/Qwen2.5-14B-Instruct", tp_size=8)), "prod")
    node = plan.layout.nodes[0]
    env = server_node_env(plan, node, "", plan.runtime_for_plan())
    assert not any(k.startswith("SGLANG_GROUP_") for k in env)
    files = _files(server_node_boot(plan, node, "").user_data)
    # The group files are in every server bundle, but only the drop-in (multi-node user data)
    # starts them: the unit has no [Install] section and nothing else names it.
    assert GROUP_DROP_IN[1] not in files
    assert "[Install]" not in files["/etc/systemd/system/sglang-group@.service"]["content"]
    units = {p: f["content"] for p, f in files.items() if p.startswith("/etc/systemd/")}
    assert not [p for p, text in units.items() if "sglang-group" in text and "sglang-group@." not in p]
    assert "--dist-timeout" not in server_argv(plan.spec, plan.layout.servers[0], 0, "")


@pytest.mark.parametrize("extra", [["--dist-timeout", "1200"], ["--dist-timeout=1200"]])
def test_users_dist_timeout_wins(extra: list[str]) -> None:
    spec = parse_config(base_config(extra_server_args=extra))
    plan = plan_cluster(spec, "prod")
    argv = server_argv(spec, plan.layout.servers[0], 1, "10.0.1.10")
    assert sum(a.startswith("--dist-timeout") for a in argv) == 1
    i = argv.index(extra[0])
    assert argv[i : i + len(extra)] == extra and str(DIST_TIMEOUT_SECS) not in argv


def test_regroup_bound_is_what_the_readme_states() -> None:
    # RestartSec 15 s, docker stop 30 s, polls of 2 s: the README says "about 45 s".
    assert regroup_bound_secs() == 43
