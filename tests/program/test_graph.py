"""The deploy graph and the plan JSON's ``depends_on``/``inputs``, from the program under mocks.

The SDK's mock runtime stands in for AWS and the engine (no account, no Pulumi CLI here). The
edges are read from what the SDK sends the engine: ``RegisterResourceRequest.dependencies``
(explicit ``depends_on`` plus every resource an input Output came from). Which resource is the
file system's group, the nodes' route table or the S3 endpoint is found from the inputs the
provider gets (ids, subnets, routes), never from logical names alone.

Stacks: the real files ``prod-tp16`` (created VPC, public router) and ``dev`` (no EFA,
SCRATCH_2), ``prod-tp16`` with a bring-your-own VPC, and with ``model_s3_uri`` (data
repository association).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import rpc

from infra import cli, plangraph
from infra.mockrun import ProgramRun, RecordedResource, load_stack_config, run_program, stack_file
from tests.conftest import STACKS

INSTANCE = "aws:ec2/instance:Instance"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
FSX = "aws:fsx/lustreFileSystem:LustreFileSystem"
DRA = "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation"
RT = "aws:ec2/routeTable:RouteTable"
RTA = "aws:ec2/routeTableAssociation:RouteTableAssociation"
NAT = "aws:ec2/natGateway:NatGateway"
IGW = "aws:ec2/internetGateway:InternetGateway"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
SSM_PARAM = "aws:ssm/parameter:Parameter"

HF_TOKEN = "hf_FAKEtokenFORgraphTests0123456789"
API_KEY = "sk-router-FAKE-graph-key-77"
BYO = {
    "sglang-cluster:vpc_id": "vpc-0a1b2c3d4e5f60718",
    "sglang-cluster:subnet_id": "subnet-0a1b2c3d4e5f60718",
    "sglang-cluster:router_subnet_id": "subnet-0f1e2d3c4b5a69788",
}
S3 = {"sglang-cluster:model_s3_uri": "s3://acme-weights/llm"}
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "prod-tp16": ("prod-tp16", {}),
    "dev": ("dev", {}),
    "byo-vpc": ("prod-tp16", BYO),
    "s3": ("prod-tp16", S3),
    "private-router": ("prod-tp16", {"sglang-cluster:router_public_ip": "false"}),
}
CREATED_VPC = ["prod-tp16", "dev", "s3", "private-router"]
WITH_STORE = ["prod-tp16", "dev", "byo-vpc", "s3"]


def config_of(stack: str, overrides: dict[str, str], secrets: bool = False) -> dict[str, str]:
    cfg = load_stack_config(stack_file(stack)[1])
    cfg.update(overrides)
    if secrets:
        cfg["sglang-cluster:hf_token"] = HF_TOKEN
        cfg["sglang-cluster:router_api_key"] = API_KEY
    return cfg


SECRET_CONFIG_KEYS = ("sglang-cluster:hf_token", "sglang-cluster:router_api_key")


def run_with_secrets(stack: str, cfg: dict[str, str]) -> ProgramRun:
    """:func:`run_program` with the secret keys present in ``cfg`` marked secret, as
    ``pulumi config set --secret`` would (plain secrets are refused)."""
    return run_program(stack, cfg, secret_keys=[k for k in SECRET_CONFIG_KEYS if k in cfg])


@cache
def run(variant: str, secrets: bool = False) -> ProgramRun:
    stack, overrides = VARIANTS[variant]
    return run_with_secrets(stack, config_of(stack, overrides, secrets))


def by_input(r: ProgramRun, type_token: str, key: str, value: Any) -> list[RecordedResource]:
    """Resources of a type whose input ``key`` equals ``value``."""
    return [x for x in r.of_type(type_token) if x.inputs.get(key) == value]


def rules_of_group(r: ProgramRun, group_id: str) -> list[RecordedResource]:
    """Every ingress and egress rule whose group is ``group_id``."""
    return by_input(r, INGRESS, "securityGroupId", group_id) + by_input(
        r, EGRESS, "securityGroupId", group_id
    )


def missing(r: ProgramRun, res: RecordedResource, wanted: list[RecordedResource]) -> list[str]:
    """Names in ``wanted`` that may still be in creation when ``res`` is created."""
    return sorted({w.name for w in wanted} - r.waits_for(res))


def node_subnet_and_group(r: ProgramRun) -> tuple[str, str]:
    eni = r.named("server-g0-r0-eni").inputs  # the primary interface carries both
    return eni["subnetId"], eni["securityGroups"][0]


def router_subnet_and_group(r: ProgramRun) -> tuple[str, str]:
    nic = r.named("router-lt").inputs["networkInterfaces"][0]
    return nic["subnetId"], nic["securityGroups"][0]


def route_of_subnet(r: ProgramRun, subnet_id: str) -> tuple[RecordedResource, RecordedResource]:
    """``(route table association, route table)`` that the subnet uses."""
    (rta,) = by_input(r, RTA, "subnetId", subnet_id)
    return rta, with_id(r, RT, rta.inputs["routeTableId"])


def with_id(r: ProgramRun, type_token: str, rid: str) -> RecordedResource:
    (res,) = [x for x in r.of_type(type_token) if x.id == rid]
    return res


def s3_endpoint(r: ProgramRun, route_table: RecordedResource) -> RecordedResource:
    """The S3 gateway endpoint attached to ``route_table``."""
    (ep,) = [
        e
        for e in r.of_type(ENDPOINT)
        if e.inputs["serviceName"].endswith(".s3") and route_table.id in e.inputs["routeTableIds"]
    ]
    return ep


def servers(r: ProgramRun) -> list[RecordedResource]:
    return [i for i in r.of_type(INSTANCE) if i.name != "router"]


# ----- FSx waits for its security group's rules (aws-parallelcluster#6181) -----


@pytest.mark.parametrize("variant", WITH_STORE)
def test_file_system_waits_for_every_rule_of_its_group(variant: str) -> None:
    """CreateFileSystem checks the groups' rules (InvalidNetworkSettings when they are still
    being created); pulumi-aws strips a new group's default egress, so egress counts too."""
    r = run(variant)
    (fs,) = r.of_type(FSX)
    (fs_group,) = fs.inputs["securityGroupIds"]
    own = rules_of_group(r, fs_group)
    assert {x.type for x in own} == {INGRESS, EGRESS}, "the FSx group needs ingress and egress rules"
    assert {x.inputs.get("fromPort") for x in own if x.type == INGRESS} == {988, 1018}
    # The client group's rules that exist for Lustre: callbacks from the file system.
    callbacks = by_input(r, INGRESS, "referencedSecurityGroupId", fs_group)
    callbacks = [x for x in callbacks if x.inputs["securityGroupId"] != fs_group]
    assert len(callbacks) == 2
    assert missing(r, fs, own + callbacks) == [], f"{fs.name} does not wait for these rules"


def test_association_waits_for_the_file_system() -> None:
    """The S3 association needs the file system's id: an implicit edge through the Output.
    (This edge already held before the explicit edges were added; it guards it.)"""
    r = run("s3")
    (fs,) = r.of_type(FSX)
    (dra,) = r.of_type(DRA)
    assert dra.property_dependencies["fileSystemId"] == [fs.name]
    assert fs.name in dra.depends_on


# ----- instances wait for routes, NAT, S3 endpoint and their group rules -----


@pytest.mark.parametrize("variant", CREATED_VPC)
def test_gpu_instances_wait_for_private_route_nat_and_s3_endpoint(variant: str) -> None:
    r = run(variant)
    subnet, _ = node_subnet_and_group(r)
    rta, rt = route_of_subnet(r, subnet)
    (default_route,) = rt.inputs["routes"]
    assert default_route["cidrBlock"] == "0.0.0.0/0"
    nat = with_id(r, NAT, default_route["natGatewayId"])
    endpoint = s3_endpoint(r, rt)
    for inst in servers(r):
        assert missing(r, inst, [rta, rt, nat, endpoint]) == [], inst.name


@pytest.mark.parametrize("variant", ["prod-tp16", "dev", "s3"])
def test_public_router_waits_for_the_public_route_and_internet_gateway(variant: str) -> None:
    r = run(variant)
    subnet, _ = router_subnet_and_group(r)
    rta, rt = route_of_subnet(r, subnet)
    (default_route,) = rt.inputs["routes"]
    igw = with_id(r, IGW, default_route["gatewayId"])
    router = r.named("router")
    assert router.type == INSTANCE
    assert missing(r, router, [rta, rt, igw, s3_endpoint(r, rt)]) == []
    # ... and, as the issue asks of every instance, after the private route, NAT and S3
    # endpoint too (its own depends_on: it no longer waits for any GPU instance).
    private_rta, private_rt = route_of_subnet(r, node_subnet_and_group(r)[0])
    nat = with_id(r, NAT, private_rt.inputs["routes"][0]["natGatewayId"])
    assert missing(r, router, [private_rta, private_rt, nat, s3_endpoint(r, private_rt)]) == []


def test_private_router_waits_for_the_private_route_and_nat() -> None:
    r = run("private-router")
    subnet, _ = router_subnet_and_group(r)
    assert subnet == node_subnet_and_group(r)[0]
    rta, rt = route_of_subnet(r, subnet)
    nat = with_id(r, NAT, rt.inputs["routes"][0]["natGatewayId"])
    assert missing(r, r.named("router"), [rta, rt, nat, s3_endpoint(r, rt)]) == []


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_instances_wait_for_every_rule_of_their_group(variant: str) -> None:
    """EFA self rules in AND out (NCCL hangs without egress) exist before a node boots."""
    r = run(variant)
    _, node_group = node_subnet_and_group(r)
    node_rules = rules_of_group(r, node_group)
    self_rules = [x for x in node_rules if x.inputs.get("referencedSecurityGroupId") == node_group]
    assert {x.type for x in self_rules} == {INGRESS, EGRESS}
    for inst in servers(r):
        assert missing(r, inst, node_rules) == [], inst.name
    _, router_group = router_subnet_and_group(r)
    assert missing(r, r.named("router"), rules_of_group(r, router_group)) == []


@pytest.mark.parametrize("variant", ["prod-tp16", "private-router"])
def test_new_instance_edges_are_ordering_only(variant: str) -> None:
    """The route, NAT, endpoint and rule edges carry no input: when one of those is replaced
    delete-first, the engine replaces a dependent only through a property dependency on it
    (pulumi ``step_generator.go`` ``calculateDependentReplacements``), so a p5 node is never
    replaced for them."""
    r = run(variant)
    ordering = {x.name for x in r.resources if x.type in (RT, RTA, NAT, IGW, ENDPOINT, INGRESS, EGRESS)}
    for inst in r.of_type(INSTANCE):
        via_inputs = {n for names in inst.property_dependencies.values() for n in names}
        assert ordering & set(inst.depends_on), inst.name
        assert not ordering & via_inputs, inst.name


def test_bring_your_own_vpc_has_no_route_resources() -> None:
    r = run("byo-vpc")
    for t in (RT, RTA, NAT, IGW, ENDPOINT):
        assert r.of_type(t) == []
    assert node_subnet_and_group(r)[0] == BYO["sglang-cluster:subnet_id"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_deploy_graph_has_no_cycle_and_instances_come_last(variant: str) -> None:
    r = run(variant)
    custom = {x.name: x.depends_on for x in r.resources if x.custom}
    waves = plangraph.deploy_waves(custom)
    step = {name: i for i, wave in enumerate(waves) for name in wave}
    (fs,) = r.of_type(FSX)
    for inst in servers(r):
        assert step[inst.name] > step[fs.name]


# ----- plan JSON: depends_on and inputs of every resource -----


@cache
def plan_doc(variant: str, secrets: bool = False) -> dict[str, Any]:
    return cli.plan_document(run(variant, secrets))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_resource_has_depends_on_and_inputs(variant: str) -> None:
    r = run(variant)
    doc = json.loads(json.dumps(plan_doc(variant)))  # what `--format json` prints
    entries = doc["resources"]
    assert len(entries) == len(r.resources)
    custom_names = [x.name for x in r.resources if x.custom]
    assert len(custom_names) == len(set(custom_names)), "depends_on names must be unambiguous"
    for e, rec in zip(entries, r.resources, strict=True):
        assert isinstance(e["depends_on"], list) and isinstance(e["inputs"], dict), e["name"]
        # A component stands for its children: only cloud resources are waited for.
        assert set(e["depends_on"]) <= set(custom_names), e["name"]
        assert e["depends_on"] == rec.depends_on
    fs = next(e for e in entries if e["type"] == FSX)
    assert fs["inputs"]["storageCapacity"] == r.plan.fsx_capacity_gib
    lt = next(e for e in entries if e["name"] == "server-g0-r0-lt")
    assert lt["inputs"] == json.loads(json.dumps(r.named("server-g0-r0-lt").inputs))


@pytest.mark.parametrize("variant", ["prod-tp16", "dev"])
def test_user_data_input_is_summarized_with_the_size_ec2_counts(variant: str) -> None:
    """Decision: the ~10 KB base64 of gzip is unreadable; the entry gives the bytes EC2 counts
    and a hash of the exact string (it changes exactly when the node would be replaced)."""
    import hashlib

    r, doc = run(variant), plan_doc(variant)
    nodes = {n["name"]: n for n in doc["nodes"]}
    for e in doc["resources"]:
        if e["type"] != INSTANCE:
            continue
        raw = r.named(e["name"]).inputs["userDataBase64"]
        summary = e["inputs"]["userDataBase64"]
        assert f"{nodes[e['name']]['user_data_bytes']} bytes" in summary
        assert hashlib.sha256(raw.encode()).hexdigest()[:16] in summary
        assert raw not in json.dumps(doc)


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_anywhere_in_the_plan_json(stack: str) -> None:
    """Known fake secrets set as Pulumi secrets: the JSON shows "[secret]" where the SDK marked
    them and the values nowhere."""
    r = run_with_secrets(stack, config_of(stack, {}, secrets=True))
    text = json.dumps(cli.plan_document(r))
    assert HF_TOKEN not in text and API_KEY not in text
    params = [e for e in cli.plan_document(r)["resources"] if e["type"] == SSM_PARAM]
    assert len(params) == 2 and all(p["inputs"]["value"] == "[secret]" for p in params)
    # The values did reach the provider, marked secret.
    assert sorted(v for x in r.of_type(SSM_PARAM) for v in x.secret_values) == sorted([HF_TOKEN, API_KEY])


def test_nested_secret_is_masked_where_it_is_marked() -> None:
    """The ECR password inside ``registry`` is "[secret]"; server and username stay visible
    (the SDK's own deserializer would mark the whole map secret)."""
    stack, overrides = "tp8-dp2", {"sglang-cluster:image_source": "mirror"}
    r = run_with_secrets(stack, config_of(stack, overrides, secrets=True))
    (img,) = [e for e in cli.plan_document(r)["resources"] if e["type"] == "docker:index/image:Image"]
    reg = img["inputs"]["registry"]
    assert reg["password"] == "[secret]" and reg["username"] == "AWS"
    assert reg["server"].endswith(".amazonaws.com/" + reg["server"].rsplit("/", 1)[1])
    assert "mock-registry-password" not in json.dumps(cli.plan_document(r))


def test_a_secret_in_plain_text_stops_the_plan(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """A secret whose value also reaches a provider unmarked (here: equal to the model id,
    which is in plain tags and user data) makes the plan refuse, naming where, never what."""
    cfg = config_of("prod-tp16", {})
    model = cfg["sglang-cluster:model"]
    cfg["sglang-cluster:hf_token"] = model
    r = run_with_secrets("prod-tp16", cfg)
    with pytest.raises(cli.SecretInPlanError) as err:
        cli.plan_document(r)
    assert err.value.paths and model not in str(err.value)
    assert any(p.startswith("nodes[") for p in err.value.paths)
    import infra.mockrun

    monkeypatch.setattr(infra.mockrun, "run_stack", lambda _stack: r)
    assert cli.main(["plan", "prod-tp16", "--format", "json"]) == cli.EXIT_SECRET
    out, errout = capsys.readouterr()
    assert out == "" and "secret value shows in plain text" in errout and model not in errout


# ----- the SDK's wire format, read directly -----


def test_signatures_match_the_sdk() -> None:
    assert plangraph.SIG_KEY == rpc._special_sig_key
    assert plangraph.SECRET_SIG == rpc._special_secret_sig
    assert plangraph.RESOURCE_SIG == rpc._special_resource_sig
    assert plangraph.OUTPUT_VALUE_SIG == rpc._special_output_value_sig
    assert plangraph.ASSET_SIG == rpc._special_asset_sig
    assert plangraph.ARCHIVE_SIG == rpc._special_archive_sig
    assert plangraph.UNKNOWN == rpc.UNKNOWN


def test_preview_inputs_masks_secrets_at_any_depth() -> None:
    obj = struct_pb2.Struct()
    obj.update(
        {
            "plain": "visible",
            "count": 3.0,
            "ratio": 0.5,
            "later": rpc.UNKNOWN,
            "__defaults": [],
            "nested": {
                "keep": "me",
                "pw": {rpc._special_sig_key: rpc._special_secret_sig, "value": "s3cr3t-value"},
            },
            "list": [1.0, {rpc._special_sig_key: rpc._special_secret_sig, "value": {"a": ["deep-secret-1"]}}],
        }
    )
    shown, secrets = plangraph.preview_inputs(obj)
    assert shown == {
        "plain": "visible",
        "count": 3,
        "ratio": 0.5,
        "later": "[unknown]",
        "nested": {"keep": "me", "pw": "[secret]"},
        "list": [1, "[secret]"],
    }
    assert sorted(secrets) == ["deep-secret-1", "s3cr3t-value"]


def test_deploy_waves_refuse_a_cycle() -> None:
    assert plangraph.deploy_waves({"a": [], "b": ["a"], "c": ["a", "b"]}) == [["a"], ["b"], ["c"]]
    with pytest.raises(ValueError, match="cycle"):
        plangraph.deploy_waves({"a": ["b"], "b": ["a"]})


def test_a_component_dependency_expands_to_its_children() -> None:
    """What the plan's ``depends_on`` records is what the SDK sends: a resource that depends on
    a (local) component waits for each of the component's resources, never the component."""
    import pulumi
    import pulumi_aws as aws

    from infra.mockrun import PlanMocks, _RecordingMonitor

    mocks = PlanMocks({}, {}, "us-east-1")
    monitor = _RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="sglang-cluster", stack="graph", preview=False, monitor=monitor)

    class Pair(pulumi.ComponentResource):
        def __init__(self, name: str) -> None:
            super().__init__("test:index:Pair", name, None, None)
            child = pulumi.ResourceOptions(parent=self)
            self.a = aws.ec2.SecurityGroup(f"{name}-a", opts=child)
            aws.ec2.SecurityGroup(f"{name}-b", vpc_id=self.a.vpc_id, opts=child)
            self.register_outputs({})

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        pair = Pair("pair")
        waiter = aws.ec2.SecurityGroup(
            "waiter", description=pair.a.id, opts=pulumi.ResourceOptions(depends_on=[pair])
        )
        return waiter.urn

    program()
    (waiter,) = [x for x in monitor.recorded.values() if x.name == "waiter"]
    assert waiter.depends_on == ["pair-a", "pair-b"]
    assert waiter.property_dependencies == {"description": ["pair-a"]}
