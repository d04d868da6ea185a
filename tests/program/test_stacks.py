"""The Pulumi program under the SDK's mock runtime, once per stack file in stacks/.

The mocks stand in for AWS (no account here); every input the program sends is checked as the
provider would receive it.
"""

from __future__ import annotations

import json
from functools import cache

import pytest

from infra.mockrun import ProgramRun, run_stack
from infra.planning.catalog import CATALOG
from infra.planning.cluster import DLAMI_SSM_PARAMETER, Runtime, server_node_boot
from infra.planning.userdata import MAX_USER_DATA_BYTES, unpack_b64
from tests.conftest import STACKS

INSTANCE = "aws:ec2/instance:Instance"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


@cache
def run(stack: str) -> ProgramRun:
    return run_stack(stack)


def user_data(r: ProgramRun, name: str) -> str:
    """The user data an instance gets, gunzipped (what cloud-init reads)."""
    return unpack_b64(r.named(name).inputs["userDataBase64"])


def runtime_of(r: ProgramRun) -> Runtime:
    store = r.outputs["model_store"] or {}
    bucket = r.named("sglang-bundles-bucket").id  # the node-bundle bucket's name
    return Runtime(r.outputs["image"], store.get("dns_name", ""), store.get("mount_name", ""), bucket)


def test_every_expected_stack_exists() -> None:
    assert {"dev", "prod-tp16", "tp8-dp2", "tp2-dp8", "tp8-pp2", "moe-ep"} <= set(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_one_instance_per_node_plus_router(stack: str) -> None:
    r = run(stack)
    names = sorted(i.name for i in r.of_type(INSTANCE))
    assert names == sorted([n.name for n in r.plan.layout.nodes] + ["router"])
    # One launch template per GPU node (each attaches that node's primary interface) + the router's.
    assert sorted(x.name for x in r.of_type(LT)) == sorted(f"{n}-lt" for n in names)


@pytest.mark.parametrize("stack", STACKS)
def test_launch_template_interfaces_follow_the_catalog(stack: str) -> None:
    r = run(stack)
    for node in r.plan.layout.nodes:
        lt = r.named(f"{node.name}-lt").inputs
        eni = r.named(f"{node.name}-eni")
        itype = CATALOG[lt["instanceType"]]
        nics = lt["networkInterfaces"]
        assert len(nics) == 1 + itype.max_efa
        # The primary (card 0, device 0) is the node's own ENA interface, created beforehand;
        # an existing interface gets no subnet, groups, type or delete flag in the template.
        assert nics[0] == {"networkCardIndex": 0, "deviceIndex": 0, "networkInterfaceId": eni.id}
        assert eni.inputs.get("interfaceType") in (None, "interface")
        assert [n["interfaceType"] for n in nics[1:]] == ["efa-only"] * itype.max_efa
        assert {n["subnetId"] for n in nics[1:]} <= {eni.inputs["subnetId"]}
        sg = r.named("sglang-net-nodes")
        for n in [eni.inputs, *nics[1:]]:
            assert n["securityGroups"] == [eni.inputs["securityGroups"][0]]
            assert "associatePublicIpAddress" not in n  # multi-interface launches get none anyway
        # ... and that group is the one with the EFA self rules.
        self_in = next(x for x in r.of_type(INGRESS) if x.name == "sglang-net-nodes-self-in")
        assert eni.inputs["securityGroups"][0] == self_in.inputs["securityGroupId"]
        assert sg.type == "aws:ec2/securityGroup:SecurityGroup"


@pytest.mark.parametrize("stack", STACKS)
def test_imdsv2_encrypted_gp3_and_dlami(stack: str) -> None:
    r = run(stack)
    gpu_templates = [f"{n.name}-lt" for n in r.plan.layout.nodes]  # one per GPU node
    for name in [*gpu_templates, "router-lt"]:
        lt = r.named(name).inputs
        md = lt["metadataOptions"]
        assert md["httpTokens"] == "required" and md["httpPutResponseHopLimit"] == 2
        ebs = lt["blockDeviceMappings"][0]["ebs"]
        assert ebs["volumeType"] == "gp3" and ebs["encrypted"] == "true"
    for name in gpu_templates:
        lt = r.named(name).inputs
        assert lt["imageId"] == f"resolve:ssm:{DLAMI_SSM_PARAMETER}"
        assert lt["blockDeviceMappings"][0]["ebs"]["volumeSize"] == r.plan.root_volume_gib


@pytest.mark.parametrize("stack", STACKS)
def test_placement_group_only_with_efa(stack: str) -> None:
    r = run(stack)
    pgs = r.of_type("aws:ec2/placementGroup:PlacementGroup")
    lts = [r.named(f"{n.name}-lt").inputs for n in r.plan.layout.nodes]
    if r.plan.node_type.has_efa:
        assert len(pgs) == 1 and pgs[0].inputs["strategy"] == "cluster"
        assert {lt["placement"]["groupName"] for lt in lts} == {r.outputs["placement_group"]}
    else:
        assert pgs == [] and all("placement" not in lt for lt in lts)
        assert r.outputs["placement_group"] is None


@pytest.mark.parametrize("stack", STACKS)
def test_efa_security_group_self_rules(stack: str) -> None:
    r = run(stack)
    ingress = [x.inputs for x in r.of_type(INGRESS) if x.name == "sglang-net-nodes-self-in"]
    egress = [x.inputs for x in r.of_type(EGRESS) if x.name == "sglang-net-nodes-self-out"]
    assert len(ingress) == 1 and len(egress) == 1
    for rule in ingress + egress:
        assert rule["ipProtocol"] == "-1"
        assert rule["referencedSecurityGroupId"] == rule["securityGroupId"]
        assert rule["securityGroupId"].startswith("sg-")
    # Both rules sit on the same group: the nodes' EFA group.
    assert ingress[0]["securityGroupId"] == egress[0]["securityGroupId"]


@pytest.mark.parametrize("stack", STACKS)
def test_router_port_open_to_client_cidrs_only(stack: str) -> None:
    r = run(stack)
    router_sg = [x.inputs for x in r.of_type(INGRESS) if x.name.startswith("sglang-net-router-")]
    if r.plan.spec.endpoint != "http":
        # Behind a load balancer the client CIDRs reach its listener only; the router admits
        # the load balancer's group (tests/program/test_endpoint_program.py).
        assert router_sg == []
        lb = [x.inputs for x in r.of_type(INGRESS) if x.name.startswith("sglang-endpoint-lb-in-")]
        assert {x.get("cidrIpv4") for x in lb} == set(r.plan.spec.client_cidrs)
        return
    assert router_sg, "no router ingress"
    cidrs = {x.get("cidrIpv4") for x in router_sg}
    assert cidrs == set(r.plan.spec.client_cidrs)
    assert "0.0.0.0/0" not in cidrs
    assert {x["fromPort"] for x in router_sg} == {r.plan.spec.router_port, r.plan.spec.router_prometheus_port}


@pytest.mark.parametrize("stack", STACKS)
def test_stable_names_and_parents(stack: str) -> None:
    r = run(stack)
    for node in r.plan.layout.nodes:
        inst = r.named(node.name)
        assert inst.parent == "sglang-servers"
        assert inst.inputs["tags"]["Name"] == f"{stack}-{node.name}"
        assert inst.inputs["userDataReplaceOnChange"] is True
    assert r.named("router").parent == "router"


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_matches_plan_and_head_ips(stack: str) -> None:
    r = run(stack)
    for node in r.plan.layout.nodes:
        head = next(n for n in r.plan.layout.nodes if n.group == node.group and n.is_head)
        head_ip = "" if node.is_head else r.ips[head.name]
        expected = server_node_boot(r.plan, node, head_ip, runtime_of(r)).user_data
        got = user_data(r, node.name)
        assert got == expected
        if not node.is_head:
            assert f"SGLANG_DIST_INIT_HOST={r.ips[head.name]}" in got
        import base64

        assert len(base64.b64decode(r.named(node.name).inputs["userDataBase64"])) <= MAX_USER_DATA_BYTES


@pytest.mark.parametrize("stack", STACKS)
def test_router_workers_are_rank0_of_every_server(stack: str) -> None:
    r = run(stack)
    ud = user_data(r, "router")
    urls = r.outputs["server_urls"]
    assert len(urls) == len(r.plan.layout.servers)  # replicas, or both PD pools
    heads = {r.ips[n.name] for n in r.plan.head_nodes()}
    non_heads = {r.ips[n.name] for n in r.plan.layout.nodes if not n.is_head}
    for url in urls.values():
        assert url in ud
        assert url.split("//")[1].split(":")[0] in heads
    for ip in non_heads:
        assert ip not in ud


@pytest.mark.parametrize("stack", STACKS)
def test_outputs(stack: str) -> None:
    r = run(stack)
    o = r.outputs
    scheme = "https://" if r.plan.spec.endpoint == "https" else "http://"
    assert o["router_url"].startswith(scheme) and o["openai_base_url"] == o["router_url"] + "/v1"
    assert o["health_url"] == o["router_url"] + "/health"
    assert o["total_gpus"] == r.plan.layout.total_gpus
    assert o["hourly_cost_usd"] > 0
    assert set(o["nodes"]) == {n.name for n in r.plan.layout.nodes} | {"router"}
    for v in o["nodes"].values():
        assert v["instance_id"].startswith("i-") and v["private_ip"]


def test_default_tags_on_the_provider() -> None:
    r = run("prod-tp16")
    prov = r.of_type("pulumi:providers:aws")[0].inputs
    assert prov["region"] == "us-east-1"
    tags = json.loads(prov["defaultTags"])["tags"]
    assert tags == {"managed-by": "pulumi", "project": "sglang-cluster", "stack": "prod-tp16", "env": "prod"}
