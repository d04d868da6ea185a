"""The group coordinator's port under the Pulumi mocks: every node of a multi-node server may
reach it (ingress and egress between members of the nodes' group), the router may not, and no
client CIDR may. Rules are matched the way EC2 evaluates them: protocol ``-1`` (all) or a TCP
range covering the port, from a referenced group or a CIDR."""

from __future__ import annotations

from typing import Any

import pytest

from infra.planning.group import group_port
from tests.conftest import STACKS
from tests.program.test_stacks import EGRESS, INGRESS, run

MULTI_NODE = [s for s in STACKS if run(s).plan.layout.nodes_per_server > 1]


def _covers(rule: dict[str, Any], port: int) -> bool:
    if rule["ipProtocol"] == "-1":
        return True
    return rule["ipProtocol"] == "tcp" and rule["fromPort"] <= port <= rule["toPort"]


def test_there_are_multi_node_stacks() -> None:
    assert {"prod-tp16", "tp8-pp2"} <= set(MULTI_NODE)


@pytest.mark.parametrize("stack", MULTI_NODE)
def test_group_port_open_between_nodes_only(stack: str) -> None:
    r = run(stack)
    port = group_port(r.plan.layout.servers[0])
    nodes_sg = r.named("sglang-net-nodes-self-in").inputs["securityGroupId"]
    into_nodes = [x.inputs for x in r.of_type(INGRESS) if x.inputs["securityGroupId"] == nodes_sg]
    allowed = [x for x in into_nodes if _covers(x, port)]
    assert allowed, f"no ingress rule of the nodes' group covers {port}"
    assert all(x.get("referencedSecurityGroupId") == nodes_sg for x in allowed), allowed
    assert not any("cidrIpv4" in x or "cidrIpv6" in x for x in allowed)
    out = [x.inputs for x in r.of_type(EGRESS) if x.inputs["securityGroupId"] == nodes_sg]
    assert any(_covers(x, port) and x.get("referencedSecurityGroupId") == nodes_sg for x in out)


def test_a_narrowed_group_would_be_caught() -> None:
    """The check is not vacuous: the router's rule into the nodes covers only server ports."""
    r = run("prod-tp16")
    port = group_port(r.plan.layout.servers[0])
    router_rule = r.named("sglang-net-nodes-from-router").inputs
    assert not _covers(router_rule, port) and _covers(router_rule, r.plan.spec.server_port)
