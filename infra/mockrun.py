"""Run the real Pulumi program under the SDK's mock runtime: the offline plan and the tests.

No AWS account, no Pulumi CLI: :func:`run_program` registers every resource with a recording
mock monitor that hands back deterministic fake ids and private IPs, resolves the stack outputs
and returns what ``pulumi up`` would build. A mock stands in for AWS here because nothing else
can answer offline; every input the program sends is recorded as the provider would get it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs, Mocks

from infra.plangraph import name_of_urn, preview_inputs
from infra.spec import PROJECT

STACKS_DIR = Path(__file__).resolve().parents[1] / "stacks"
FAKE_ACCOUNT = "123456789012"
FAKE_PUBLIC_NET = "203.0.113.0/24"  # TEST-NET-3 (RFC 5737): never a real address
FAKE_BYO_NET = "10.0.1.0/24"

_ID_PREFIX = {
    "aws:ec2/instance:Instance": "i-",
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
    "aws:ec2/internetGateway:InternetGateway": "igw-",
    "aws:ec2/natGateway:NatGateway": "nat-",
    "aws:ec2/eip:Eip": "eipalloc-",
    "aws:ec2/networkInterface:NetworkInterface": "eni-",
    "aws:ec2/routeTable:RouteTable": "rtb-",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr-",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr-",
    "aws:fsx/lustreFileSystem:LustreFileSystem": "fs-",
    "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": "dra-",
}
FAKE_DIGEST = "sha256:" + "0" * 64


def stack_file(stack_or_file: str) -> tuple[str, Path]:
    """Resolve ``prod-tp16`` or a path to ``(stack name, stack file)``.

    Raises:
        FileNotFoundError: naming the known stacks.
    """
    p = Path(stack_or_file)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise FileNotFoundError(f"no stack file {p}")
        name = p.stem.removeprefix("Pulumi.")
        return name, p
    path = STACKS_DIR / f"Pulumi.{stack_or_file}.yaml"
    if not path.is_file():
        known = sorted(f.stem.removeprefix("Pulumi.") for f in STACKS_DIR.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(
            f"no stack {stack_or_file!r} (looked for {path}); known stacks: {', '.join(known)}"
        )
    return stack_or_file, path


def load_stack_config(path: Path) -> dict[str, str]:
    """A stack file's ``config:`` as the engine hands it to a program: string values, JSON for
    arrays, objects, numbers and booleans.

    Raises:
        ValueError: when the file is not a mapping with a ``config:`` mapping.
    """
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cfg = doc.get("config", {}) if isinstance(doc, dict) else None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a mapping with a 'config:' mapping")
    out: dict[str, str] = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and "secure" in value:
            out[str(key)] = json.dumps(value)  # refused by the spec for plain keys
        elif isinstance(value, str):
            out[str(key)] = value
        else:
            out[str(key)] = json.dumps(value)
    return out


@dataclass
class RecordedResource:
    """A resource the program registered: type token, logical name, parent's name, inputs.

    Attributes:
        inputs: the inputs as the mocks receive them (secrets wrapped, see ``unsecret`` in the
            tests).
        id: the fake id the mocks gave it.
        custom: a cloud resource (or the provider), not a component.
        depends_on: logical names of the resources the engine makes it wait for
            (``RegisterResourceRequest.dependencies``: explicit ``depends_on`` plus every
            resource an input Output came from; a component stands for its children).
        property_dependencies: input property name to the names it came from.
        preview_inputs: the inputs as ``pulumi preview --diff`` shows them, secrets as
            ``"[secret]"`` (:func:`infra.plangraph.preview_inputs`).
        secret_values: strings the SDK sent marked secret (never shown; searched for).
    """

    type: str
    name: str
    parent: str
    inputs: dict[str, Any]
    id: str = ""
    custom: bool = True
    depends_on: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    preview_inputs: dict[str, Any] = field(default_factory=dict)
    secret_values: list[str] = field(default_factory=list)
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    """``create``/``update``/``delete`` custom timeouts the program set (``"150m"``), if any."""
    delete_before_replace: bool = False
    """The program asked the engine to delete the old resource before creating its replacement."""


class _RecordingMonitor(MockMonitor):
    """Mock monitor that also remembers each resource's type, name and parent."""

    def __init__(self, mocks: PlanMocks) -> None:
        super().__init__(mocks)
        self.plan_mocks = mocks
        self.recorded: dict[str, RecordedResource] = {}
        self._names: dict[str, str] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        resp = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self._names[resp.urn] = request.name
            inputs = self.plan_mocks.inputs.get((request.type, request.name), {})
            parent = self._names.get(request.parent, "")
            shown, secret_values = preview_inputs(request.object)
            self.recorded[resp.urn] = RecordedResource(
                request.type,
                request.name,
                parent,
                inputs,
                id=resp.id,
                custom=bool(request.custom),
                depends_on=sorted({name_of_urn(u) for u in request.dependencies}),
                property_dependencies={
                    k: sorted({name_of_urn(u) for u in v.urns})
                    for k, v in sorted(request.propertyDependencies.items())
                },
                preview_inputs=shown,
                secret_values=secret_values,
                custom_timeouts={
                    k: v
                    for k in ("create", "update", "delete")
                    if (v := getattr(request.customTimeouts, k, ""))
                },
                delete_before_replace=bool(request.deleteBeforeReplace),
            )
        return resp


class PlanMocks(Mocks):
    """Deterministic fake cloud: ids from a hash of the logical name, planned private IPs."""

    def __init__(self, ips: dict[str, str], public_ips: dict[str, str], region: str) -> None:
        self.ips = ips
        self.public_ips = public_ips
        self.region = region
        self.inputs: dict[tuple[str, str], dict[str, Any]] = {}
        self.invokes: list[tuple[str, str]] = []
        """``(function token, provider reference)`` of every invoke, in call order."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        digest = hashlib.sha256(f"{args.typ}/{args.name}".encode()).hexdigest()
        rid = _ID_PREFIX.get(args.typ, "") + digest[:17]
        self.inputs[(args.typ, args.name)] = dict(args.inputs)
        state = dict(args.inputs)
        if args.typ == "aws:ec2/instance:Instance":
            state["private_ip"] = self.ips.get(args.name, "10.255.255.254")
            state["public_ip"] = self.public_ips.get(args.name, "")
            state["arn"] = f"arn:aws:ec2:{self.region}:{FAKE_ACCOUNT}:instance/{rid}"
        elif args.typ == "aws:ec2/networkInterface:NetworkInterface":
            # A GPU node's primary interface (``<node>-eni``): the node's planned address.
            state["private_ip"] = self.ips.get(args.name.removesuffix("-eni"), "10.255.255.253")
        elif args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1  # the engine's name: the SDK casts it to int as for a real run
            state["name"] = f"{args.name}-{digest[:7]}"
        elif args.typ == "aws:ec2/placementGroup:PlacementGroup":
            state["name"] = f"{args.name}-{digest[:7]}"
            rid = state["name"]
        elif args.typ == "aws:ec2/securityGroup:SecurityGroup":
            state["arn"] = f"arn:aws:ec2:{self.region}:{FAKE_ACCOUNT}:security-group/{rid}"
        elif args.typ == "aws:fsx/lustreFileSystem:LustreFileSystem":
            state["dns_name"] = f"{rid}.fsx.{self.region}.amazonaws.com"
            state["mount_name"] = digest[:8]
            state["arn"] = f"arn:aws:fsx:{self.region}:{FAKE_ACCOUNT}:file-system/{rid}"
        elif args.typ == "aws:ecr/repository:Repository":
            repo = f"{args.name}-{digest[:7]}"
            state["name"] = repo
            state["registry_id"] = FAKE_ACCOUNT
            state["repository_url"] = f"{FAKE_ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/{repo}"
            state["arn"] = f"arn:aws:ecr:{self.region}:{FAKE_ACCOUNT}:repository/{repo}"
        elif args.typ == "docker:index/image:Image":
            name = str(args.inputs.get("imageName", ""))
            state["repo_digest"] = f"{name.rsplit(':', 1)[0]}@{FAKE_DIGEST}"
            state["image_name"] = name
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{self.region}:{FAKE_ACCOUNT}:log-group:{args.inputs.get('name')}"
        elif args.typ == "aws:kms/key:Key":
            rid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
            state["key_id"] = rid
            state["arn"] = f"arn:aws:kms:{self.region}:{FAKE_ACCOUNT}:key/{rid}"
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            lb = f"{args.name}-{digest[:7]}"[:32]
            internal = "internal-" if args.inputs.get("internal") else ""
            state["arn"] = (
                f"arn:aws:elasticloadbalancing:{self.region}:{FAKE_ACCOUNT}:loadbalancer/app/{lb}/{digest[:16]}"
            )
            state["dns_name"] = f"{internal}{lb}-{int(digest[:8], 16)}.{self.region}.elb.amazonaws.com"
            rid = state["arn"]
        elif args.typ in ("aws:lb/targetGroup:TargetGroup", "aws:lb/listener:Listener"):
            kind = "targetgroup" if args.typ.endswith(":TargetGroup") else "listener/app"
            state["arn"] = (
                f"arn:aws:elasticloadbalancing:{self.region}:{FAKE_ACCOUNT}:{kind}/{args.name}/{digest[:16]}"
            )
            rid = state["arn"]
        elif args.typ == "aws:ec2/eip:Eip":
            state["public_ip"] = self.eip_address(args.name)
            state["allocation_id"] = rid
        elif args.typ == "aws:cloudformation/stack:Stack":
            state["outputs"] = self.stack_outputs(args.name, args.inputs, digest)
            rid = f"arn:aws:cloudformation:{self.region}:{FAKE_ACCOUNT}:stack/{args.inputs.get('name', args.name)}/{digest[:8]}"
        elif args.typ == "aws:iam/policy:Policy":
            state["name"] = f"{args.name}-{digest[:7]}"
            state["arn"] = f"arn:aws:iam::{FAKE_ACCOUNT}:policy{args.inputs.get('path', '/')}{state['name']}"
            rid = state["arn"]
        elif args.typ == "aws:s3/bucket:Bucket":
            rid = f"{args.name}-{digest[:12]}"
            state["bucket"] = rid
            state["arn"] = f"arn:aws:s3:::{rid}"
        elif args.typ in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"):
            kind = "role" if args.typ.endswith(":Role") else "instance-profile"
            state["name"] = f"{args.name}-{digest[:7]}"
            state["arn"] = f"arn:aws:iam::{FAKE_ACCOUNT}:{kind}/{state['name']}"
            rid = state["name"]
        return rid, state

    def stack_outputs(self, name: str, inputs: dict[str, Any], digest: str) -> dict[str, str]:
        """Outputs of a CloudFormation stack: the ParallelCluster provider's ``ServiceToken``;
        for a stack holding ``Custom::PclusterCluster``, the outputs its template declares, the
        head node at the router's planned addresses (it plays the router's part)."""
        body = str(inputs.get("templateBody", ""))
        if "Custom::PclusterCluster" not in body:
            fn = f"pcluster-cfn-{digest[:8]}"
            return {"ServiceToken": f"arn:aws:lambda:{self.region}:{FAKE_ACCOUNT}:function:{fn}"}
        declared = json.loads(body).get("Outputs", {})
        values = {
            "ClusterName": json.loads(body)["Resources"]["PclusterCluster"]["Properties"]["ClusterName"],
            "HeadNodeInstanceId": "i-" + digest[:17],
            "HeadNodePrivateIp": self.ips.get("router", "10.255.255.253"),
            "HeadNodePublicIp": self.public_ips.get("router", ""),
            "ValidationMessages": "[]",
        }
        return {k: values[k] for k in declared}

    @staticmethod
    def eip_address(name: str) -> str:
        """A deterministic TEST-NET-3 address for the Elastic IP named ``name``."""
        hosts = list(ipaddress.ip_network(FAKE_PUBLIC_NET).hosts())
        return str(hosts[20 + int(hashlib.sha256(name.encode()).hexdigest(), 16) % 200])

    def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append((args.token, args.provider))
        if args.token == "aws:iam/getSessionContext:getSessionContext":
            return {
                "arn": args.args.get("arn", ""),
                "id": args.args.get("arn", ""),
                "issuerArn": f"arn:aws:iam::{FAKE_ACCOUNT}:role/plan-deployer",
                "issuerId": "AROAPLAN",
                "issuerName": "plan-deployer",
                "sessionName": "plan",
            }, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # Three zones, as most regions show; which ones (and how many: us-west-1 shows an
            # account two) is AWS's answer at deploy time.
            names = [f"{self.region}{z}" for z in "abc"]
            return {"id": self.region, "names": names, "zoneIds": names, "groupNames": names}, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": FAKE_ACCOUNT,
                "arn": f"arn:aws:sts::{FAKE_ACCOUNT}:assumed-role/plan-deployer/plan",
                "id": FAKE_ACCOUNT,
                "userId": "AIDAPLAN",
            }, []
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "authorizationToken": "bW9jazptb2Nr",
                "expiresAt": "2026-01-01T00:00:00Z",
                "id": FAKE_ACCOUNT,
                "password": "mock-registry-password",
                "proxyEndpoint": f"https://{FAKE_ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com",
                "userName": "AWS",
            }, []
        return {}, []


@dataclass
class ProgramRun:
    """What one mocked run of the program produced.

    Attributes:
        stack: stack name. config: the config it ran with. plan: the cluster plan.
        resources: every registered resource, in URN order. outputs: resolved stack outputs.
        ips: planned private IP per node name. invokes: ``(function token, provider
        reference)`` of every invoke (an empty reference = the default provider).
    """

    stack: str
    config: dict[str, str]
    plan: Any
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    ips: dict[str, str] = field(default_factory=dict)
    invokes: list[tuple[str, str]] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        """Resources of one type token (``aws:ec2/instance:Instance``)."""
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> RecordedResource:
        """The resource with logical name ``name``.

        Raises:
            KeyError: when there is none.
        """
        for r in self.resources:
            if r.name == name:
                return r
        raise KeyError(name)

    def waits_for(self, res: RecordedResource) -> set[str]:
        """Logical names of every cloud resource the engine creates before ``res``: its
        ``depends_on``, transitively."""
        deps = {x.name: x.depends_on for x in self.resources if x.custom}
        seen: set[str] = set()
        todo = list(res.depends_on)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += deps[name]
        return seen


def _fake_addresses(plan: Any) -> tuple[dict[str, str], dict[str, str]]:
    from infra.components.network import subnet_cidrs

    spec = plan.spec
    if spec.creates_vpc:
        public_net, private_net = (ipaddress.ip_network(c) for c in subnet_cidrs(spec.vpc_cidr))
    else:
        public_net = private_net = ipaddress.ip_network(FAKE_BYO_NET)
        # A brought subnet's size is unknown offline: widen the fake one until every node,
        # the router and a margin fit (a created VPC's /24 is refused earlier instead).
        while private_net.num_addresses < len(plan.layout.nodes) + 16:
            public_net = private_net = private_net.supernet()
    hosts = list(private_net.hosts())
    ips = {n.name: str(hosts[9 + i]) for i, n in enumerate(plan.layout.nodes)}
    router_net = public_net if spec.router_public_ip else private_net
    ips["router"] = str(list(router_net.hosts())[4] if router_net != private_net else hosts[4])
    public = {"router": str(list(ipaddress.ip_network(FAKE_PUBLIC_NET).hosts())[9])}
    return ips, (public if spec.router_public_ip else {})


def is_secure_value(value: Any) -> bool:
    """True for a stack file's ``secure:`` value as :func:`load_stack_config` passes it on
    (``{"secure": "v1:..."}`` serialized), i.e. a key set with ``pulumi config set --secret``."""
    if not isinstance(value, str) or not value.startswith("{"):
        return False
    try:
        doc = json.loads(value)
    except ValueError:
        return False
    return isinstance(doc, dict) and "secure" in doc


ENGINE_LOG = logging.getLogger("infra.mockrun.engine")
"""Where the mock engine sends the program's ``pulumi.log`` messages (``pulumi up`` shows them
as diagnostics). Silent by default: the plan prints its own warnings; tests attach a handler."""
ENGINE_LOG.addHandler(logging.NullHandler())
ENGINE_LOG.propagate = False


def run_program(stack: str, config: dict[str, str], secret_keys: list[str] | None = None) -> ProgramRun:
    """Run the program for ``stack`` with ``config`` under mocks.

    Args:
        stack: stack name.
        config: qualified keys to string values (see :func:`load_stack_config`).
        secret_keys: qualified keys the engine would mark secret; ``None`` = the keys whose
            value is a stack file's ``secure:`` value (:func:`is_secure_value`). Tests pass
            plain values with their keys here to stand in for ``pulumi config set --secret``.

    Returns:
        The :class:`ProgramRun`.

    Raises:
        SpecError: when the spec or layout is invalid (before any resource is registered).
    """
    from infra.plain_secrets import refuse_plain_secret_keys, refuse_secrets_in_spec
    from infra.planning.cluster import plan_cluster
    from infra.program import build, region_of
    from infra.spec import SECRET_KEYS, parse_config

    region = region_of(config)
    if secret_keys is None:
        secret_keys = [k for k, v in config.items() if is_secure_value(v)]
    refuse_plain_secret_keys(config, secret_keys, stack)
    present = frozenset(k for k in SECRET_KEYS if config.get(f"{PROJECT}:{k}"))
    spec = parse_config(config)
    refuse_secrets_in_spec(spec, stack)
    plan = plan_cluster(spec, stack, region, present)  # refuse bad specs first
    ips, public_ips = _fake_addresses(plan)
    mocks = PlanMocks(ips, public_ips, region)
    monitor = _RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor, logger=ENGINE_LOG
    )
    pulumi.runtime.set_all_config(dict(config), secret_keys)
    run = ProgramRun(stack=stack, config=config, plan=plan, ips=ips, invokes=mocks.invokes)

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        outs = build(stack, config, plan)
        return pulumi.Output.from_input(outs).apply(run.outputs.update)

    program()
    run.resources = [monitor.recorded[u] for u in sorted(monitor.recorded)]
    return run


def run_stack(stack_or_file: str) -> ProgramRun:
    """:func:`run_program` for a stack name or stack file path."""
    name, path = stack_file(stack_or_file)
    return run_program(name, load_stack_config(path))
