"""Server and router argv: full flag names only, every flag real for the pinned versions."""

from __future__ import annotations

import pytest

from infra.mockrun import load_stack_config, stack_file
from infra.planning import flags
from infra.planning.argv import router_argv, server_argv, split_dist_init
from infra.planning.cluster import plan_cluster
from infra.spec import parse_config
from tests.conftest import STACKS, base_config

FORBIDDEN = {
    "--tp",
    "--dp",
    "--pp",
    "--ep",
    "--enable-ep",
    "--enable-ep-moe",
    "--nccl-init-addr",
    "--enable-dp-attention",
}


def _all_argvs(stack: str) -> list[list[str]]:
    from infra.planning.cluster import router_boot, server_node_boot

    plan = plan_cluster(parse_config(load_stack_config(stack_file(stack)[1])), stack)
    heads = {g: f"10.0.1.{10 + g}" for g in range(plan.layout.groups)}
    out = [a for n in plan.layout.nodes for a in server_node_boot(plan, n, heads[n.group]).processes]
    return out + router_boot(plan, heads).processes


@pytest.mark.parametrize("stack", STACKS)
def test_no_abbreviated_or_unknown_flags(stack: str) -> None:
    server, router = flags.server_flags(), flags.router_flags()
    for argv in _all_argvs(stack):
        if argv[:2] != ["python3", "-m"]:
            continue  # our own sglang-router-sync helper
        known = router if argv[2] == "sglang_router.launch_router" else server
        used = [a for a in argv if a.startswith("--")]
        assert not FORBIDDEN & set(used), argv
        unknown = [a for a in used if a not in known]
        assert not unknown, f"{stack}: not exact flags of the pinned parser: {unknown}"


def test_tp16_ranks_share_dist_init_address() -> None:
    plan = plan_cluster(parse_config(base_config()), "t")
    s = plan.layout.servers[0]
    a0 = server_argv(plan.spec, s, 0, "10.0.1.10")
    a1 = server_argv(plan.spec, s, 1, "10.0.1.10")
    assert a0[a0.index("--node-rank") + 1] == "0" and a1[a1.index("--node-rank") + 1] == "1"
    assert a0[a0.index("--nnodes") + 1] == "2"
    assert a1[a1.index("--dist-init-addr") + 1] == "10.0.1.10:20000"
    assert a0[a0.index("--tp-size") + 1] == "16"


def test_attention_dp_uses_attn_dp_size() -> None:
    spec = parse_config(
        base_config(model="deepseek-ai/DeepSeek-V2-Lite", tp_size=16, dp_size=4, attention_dp=True)
    )
    plan = plan_cluster(spec, "t")
    a = server_argv(spec, plan.layout.servers[0], 0, "10.0.1.10")
    assert a[a.index("--attn-dp-size") + 1] == "4"
    assert "--dp-size" not in a and "--enable-dp-attention" not in a


def test_ep_uses_ep_size() -> None:
    spec = parse_config(base_config(model="Qwen/Qwen1.5-MoE-A2.7B", tp_size=8, ep_size=2))
    a = server_argv(spec, plan_cluster(spec, "t").layout.servers[0], 0, "")
    assert a[a.index("--ep-size") + 1] == "2"


def test_split_dist_init_removes_only_the_address() -> None:
    argv = ["python3", "-m", "x", "--nnodes", "2", "--dist-init-addr", "1.2.3.4:5", "--port", "1"]
    rest, addr = split_dist_init(argv)
    assert addr == "1.2.3.4:5" and rest == ["python3", "-m", "x", "--nnodes", "2", "--port", "1"]
    assert split_dist_init(["a"]) == (["a"], None)


def test_router_argv_lists_every_worker() -> None:
    spec = parse_config(base_config())
    urls = ["http://10.0.1.10:30000", "http://10.0.1.11:30000"]
    a = router_argv(spec, urls, 1980)
    i = a.index("--worker-urls")
    assert a[i + 1 : i + 3] == urls and a[i + 3] == "--policy"
    assert a[a.index("--worker-startup-timeout-secs") + 1] == "1980"


def test_router_health_check_timeout_covers_sglangs_health() -> None:
    """SGLang's /health runs a one-token generation (up to 20 s); the router's 5 s default would
    mark busy workers down."""
    a = router_argv(parse_config(base_config()), ["http://10.0.1.10:30000"], 1980)
    assert int(a[a.index("--health-check-timeout-secs") + 1]) >= 30
