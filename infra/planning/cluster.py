"""The whole cluster as pure data: layout, interfaces, environment, user data, estimates.

:func:`plan_cluster` runs every check that needs no AWS (spec, layout, memory fit, user-data
size with worst-case addresses) before the program creates anything; the components only read
the result. The functions that need a node's head IP (:func:`server_node_boot`,
:func:`router_boot`) are pure too: the program calls them inside one ``Output.apply``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.planning import argv as argvs
from infra.planning import flags, gateway, pd
from infra.planning.bundle import MAX_BUCKET_NAME, bundle, bundle_env, check_object_tags
from infra.planning.capacity import CapacityPlan, check_capacity, plan_capacity
from infra.planning.catalog import PRICE_DATE, PRICE_SOURCE, InstanceType, lookup
from infra.planning.efa import NetworkInterfaceSpec, efa_count, network_interfaces
from infra.planning.fsx_sizing import StoreSizing, size_store
from infra.planning.gateway import Worker
from infra.planning.group import group_env
from infra.planning.image import resolve_image
from infra.planning.layout import Layout, NodePlan, plan_layout
from infra.planning.storage import (
    fsx_capacity_gib,
    is_local_model,
    model_path,
    model_source,
)
from infra.planning.transport import require_efa
from infra.planning.userdata import (
    ServerProcess,
    UserDataTooLargeError,
    router_user_data,
    server_user_data,
)
from infra.spec import SECRET_KEYS, SpecError, StackSpec, check_region, qualified

DLAMI_SSM_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
)
"""Public SSM parameter of the Base OSS Nvidia Driver DLAMI (driver, CUDA, EFA + aws-ofi-nccl,
GDRCopy, Docker + nvidia-container-toolkit):
https://docs.aws.amazon.com/dlami/latest/devguide/aws-deep-learning-x86-base-oss-gpu-ami-ubuntu-22-04.html"""

ROUTER_AMI_SSM_PARAMETER = (
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
)
"""Canonical's public SSM parameter for Ubuntu 24.04 LTS
(https://documentation.ubuntu.com/aws/aws-how-to/instances/find-ubuntu-images/)."""

WORST_CASE_IP = "255.255.255.255"
ECR_IMAGE = re.compile(r"^(\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com)/")
"""An image in ECR: nodes log in to the registry with their instance role before pulling."""


@dataclass(frozen=True)
class Runtime:
    """Values that exist only once resources do (Outputs), resolved before user data renders.

    Attributes:
        image: image reference nodes pull (an ECR URI in the mirror and build modes).
        fsx_dns: DNS name of the FSx file system ("" without a model store).
        fsx_mount_name: its Lustre mount name.
        bundle_bucket: name of the stack's bucket holding the node bundles
            (:mod:`infra.planning.bundle`); "" only in pure tests that never boot a node.
    """

    image: str
    fsx_dns: str = ""
    fsx_mount_name: str = ""
    bundle_bucket: str = ""


WORST_CASE_RUNTIME = Runtime(
    image="123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/" + "x" * 100 + ":sglang-0.5.23",
    fsx_dns="fs-0123456789abcdef0.fsx.ap-southeast-2.amazonaws.com",
    fsx_mount_name="abcdefgh",
    bundle_bucket=MAX_BUCKET_NAME,
)
"""Longest plausible values, for the size check before resources exist."""


@dataclass(frozen=True)
class Estimates:
    """What the stack costs while it runs.

    Attributes:
        gpus: GPUs of all GPU nodes.
        hourly_cost_usd: USD/hour of every node (router included) at the GPU nodes' capacity
            rate (on-demand, or a Capacity Block's effective rate), ``None`` when a price is
            unknown.
        price_source: where the prices come from, with their dates (the GPU nodes' and the
            router's when they differ, as with a Capacity Block).
        capacity: where the GPU nodes' capacity comes from and how it bills.
    """

    gpus: int
    hourly_cost_usd: float | None
    price_source: str
    capacity: CapacityPlan


@dataclass(frozen=True)
class NodeBoot:
    """What one node runs and receives.

    Attributes:
        processes: full argv of every long-running process (what the container runs).
        user_data: the exact user data EC2 receives (before base64).
    """

    processes: list[list[str]]
    user_data: str

    @property
    def user_data_bytes(self) -> int:
        """Size of the user data in bytes."""
        return len(self.user_data.encode("utf-8"))


@dataclass(frozen=True)
class ClusterPlan:
    """Everything the program needs, decided before any resource exists.

    Attributes:
        stack: stack name.
        spec: the validated spec.
        layout: servers and nodes.
        node_type: catalog entry of the GPU nodes.
        interfaces: launch-template network interfaces of a GPU node.
        container_env: environment of the serving containers.
        root_volume_gib: root gp3 volume of a GPU node.
        router_startup_timeout_secs: ``--worker-startup-timeout-secs``.
        estimates: GPUs and cost.
        region: AWS region.
        fsx_capacity_gib: FSx capacity (0 without a model store).
        store: the model store's sizing for load time (``None`` without a store).
        secret_params: ``{secret key: SSM parameter name}`` for the secrets this stack sets.
    """

    stack: str
    region: str
    spec: StackSpec
    layout: Layout
    node_type: InstanceType
    interfaces: list[NetworkInterfaceSpec]
    container_env: dict[str, str]
    root_volume_gib: int
    router_startup_timeout_secs: int
    estimates: Estimates
    fsx_capacity_gib: int = 0
    secret_params: dict[str, str] = field(default_factory=dict)
    store: StoreSizing | None = None

    @property
    def log_group(self) -> str:
        """CloudWatch log group of the stack."""
        return f"/sglang/{self.stack}"

    @property
    def uses_model_store(self) -> bool:
        """True when an FSx for Lustre model store is created."""
        return self.spec.model_store

    @property
    def uses_ecr(self) -> bool:
        """True when the stack owns an ECR repository (mirror and build modes)."""
        return self.spec.image_source != "uri"

    def runtime_for_plan(self) -> Runtime:
        """The runtime of ``uri`` mode (no Output involved)."""
        return Runtime(image=self.spec.image)

    @property
    def efa_interfaces(self) -> int:
        """EFA interfaces per GPU node."""
        return efa_count(self.interfaces)

    @property
    def capacity(self) -> CapacityPlan:
        """On demand, ODCR or Capacity Block: the launch-template settings and billing."""
        return self.estimates.capacity

    @property
    def uses_placement_group(self) -> bool:
        """A ``cluster`` placement group is created: for EFA types, unless the GPU nodes use a
        Capacity Block or an existing ``placement_group_name``."""
        return self.capacity.placement == "created"

    @property
    def image_id(self) -> str:
        """Launch-template image id: the override, or ``resolve:ssm:`` of the DLAMI parameter.

        ``resolve:ssm:`` makes EC2 read the parameter at launch, so a new DLAMI release never
        shows as a diff that would replace running GPU nodes
        (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-systems-manager-parameter-to-find-AMI.html).
        """
        return self.spec.ami_id or f"resolve:ssm:{DLAMI_SSM_PARAMETER}"

    def head_nodes(self) -> list[NodePlan]:
        """Rank-0 node of every group."""
        return [n for n in self.layout.nodes if n.is_head]


def container_env(spec: StackSpec, node: InstanceType) -> dict[str, str]:
    """Environment of the serving containers.

    NCCL must load the aws-ofi-nccl plugin or it silently falls back to TCP sockets
    (``NCCL_NET_PLUGIN=ofi`` and the plugin on ``LD_LIBRARY_PATH``, which the EFA-complete
    image sets, ``docker/Dockerfile``); ``FI_EFA_USE_DEVICE_RDMA=1``
    only where GPUDirect RDMA exists (it aborts on G-series, aws-ofi-nccl #547).
    User entries win. ``NCCL_SOCKET_IFNAME`` and ``GLOO_SOCKET_IFNAME`` are not set here:
    ``sglang-server-run`` passes both as the node's primary interface found at boot, unless
    the user's ``server_env`` sets them: gloo takes interface names and does not understand
    NCCL's ``^docker,lo,veth`` exclusions
    (https://pytorch.org/docs/stable/distributed.html#choosing-the-network-interface-to-use).
    """
    env: dict[str, str] = {}
    if node.has_efa:
        env["FI_PROVIDER"] = "efa"
        env["NCCL_NET_PLUGIN"] = "ofi"
        if node.gpudirect_rdma:
            env["FI_EFA_USE_DEVICE_RDMA"] = "1"
    if spec.nccl_debug:
        env["NCCL_DEBUG"] = spec.nccl_debug
    # Prefill/decode pools: the KV transfer engine on EFA (infra/planning/pd.py).
    env.update(pd.transfer_env(spec))
    env.update(spec.env_map)
    return env


def root_volume_gib(spec: StackSpec, total_weights_gib: float) -> int:
    """Root volume size in GiB: the spec's value, else OS + image (+ one checkpoint copy).

    150 GiB for the OS, Docker's copy of a 20-30 GB image and its unpacked layers; without a
    model store, plus 1.1 x the checkpoint (nodes without instance-store NVMe cache it on the
    root volume); rounded up to 50 GiB.

    Raises:
        SpecError: when ``root_volume_gib`` is set below that need.
    """
    local_copy = 0.0 if spec.model_store or is_local_model(spec) else 1.1 * total_weights_gib
    need = int(math.ceil((150 + local_copy) / 50) * 50)
    if spec.root_volume_gib and spec.root_volume_gib < need:
        raise SpecError(
            qualified("root_volume_gib"),
            f"{spec.root_volume_gib} GiB is below the {need} GiB the image and a "
            f"{total_weights_gib:.0f} GiB checkpoint need; set at least {need} or 0 (auto)",
        )
    return spec.root_volume_gib or need


def _estimates(spec: StackSpec, layout: Layout) -> Estimates:
    source = f"{PRICE_SOURCE} [{PRICE_DATE}]"
    capacity = plan_capacity(spec, spec.node_type.hourly_usd, source)
    gpu_price = capacity.gpu_node_hourly_usd
    router_price = spec.router_type.hourly_usd
    cost = None
    if gpu_price is not None and router_price is not None:
        cost = round(len(layout.nodes) * gpu_price + router_price, 2)
    if cost is not None and any(n.instance_type not in ("", spec.instance_type) for n in layout.nodes):
        # A PD pool of another type, on demand (a reservation holds one type: infra/spec/disaggregation.py).
        prices = [
            gpu_price if n.instance_type in ("", spec.instance_type) else lookup(n.instance_type).hourly_usd
            for n in layout.nodes
        ]
        cost = None if None in prices else round(sum(p or 0.0 for p in prices) + (router_price or 0.0), 2)
    if capacity.price_source != source:
        source = f"GPU nodes: {capacity.price_source}; router: {source}"
    return Estimates(layout.total_gpus, cost, source, capacity)


def cloudwatch_config(log_group: str, node_name: str, files: list[str]) -> dict[str, object]:
    """CloudWatch agent configuration: each file of ``/var/log/sglang`` to ``log_group``,
    stream ``<node name>/<file>``
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Configuration-File-Details.html)."""
    return {
        "agent": {"run_as_user": "root"},
        "logs": {
            "logs_collected": {
                "files": {
                    "collect_list": [
                        {
                            "file_path": f"/var/log/sglang/{f}",
                            "log_group_name": log_group,
                            "log_stream_name": f"{node_name}/{f}",
                        }
                        for f in files
                    ]
                }
            }
        },
    }


def _ecr_registry(image: str) -> str:
    m = ECR_IMAGE.match(image)
    return m.group(1) if m else ""


def server_node_env(plan: ClusterPlan, node: NodePlan, head_ip: str, runtime: Runtime) -> dict[str, str]:
    """``/etc/sglang/node.env`` of a GPU node: role, group, rank, nnodes, head address, port,
    image, model store, model source and the *names* of the SSM parameters holding secrets."""
    nnodes = node.servers[0].nnodes  # a PD stack's pools may differ
    multi = nnodes > 1
    spec = plan.spec
    return {
        "SGLANG_STACK": plan.stack,
        "SGLANG_ROLE": "server",
        "SGLANG_NODE_NAME": node.name,
        "SGLANG_GROUP": str(node.group),
        "SGLANG_NODE_RANK": str(node.rank),
        "SGLANG_NNODES": str(nnodes),
        "SGLANG_SLOTS": " ".join(str(s.slot) for s in node.servers),
        "SGLANG_DIST_INIT_HOST": head_ip if multi and not node.is_head else "",
        "SGLANG_DIST_INIT_PORT": str(node.servers[0].dist_init_port) if multi else "",
        "SGLANG_IMAGE": runtime.image,
        "SGLANG_ECR_REGISTRY": _ecr_registry(runtime.image),
        "SGLANG_VERSION": flags.SGLANG_VERSION,
        "SGLANG_REGION": plan.region,
        "SGLANG_LOG_GROUP": plan.log_group,
        "SGLANG_FSX_DNS": runtime.fsx_dns,
        "SGLANG_FSX_MOUNT_NAME": runtime.fsx_mount_name,
        "SGLANG_MODEL_ID": spec.model,
        "SGLANG_MODEL_DIR": model_path(spec),
        "SGLANG_MODEL_SOURCE": model_source(spec),
        "SGLANG_MODEL_LEADER": "1" if node.group == 0 and node.is_head else "0",
        "SGLANG_HF_TOKEN_PARAM": plan.secret_params.get("hf_token", ""),
        # require_efa: sglang-server-run watches NCCL's transport and stops a non-EFA server.
        # Per node: a PD pool whose servers fit one node does not cross nodes with NCCL even
        # when the other pool's do (equal to the stack-wide rule for regular stacks).
        "SGLANG_REQUIRE_EFA": "1" if require_efa(spec, plan.layout) and multi else "0",
        # Group restart of a multi-node server (userdata/sglang-group); nothing on single-node.
        **group_env(node.servers[0]),
        # PD: the pool, and the KV transfer engine sglang-kv-transport checks (empty: no PD).
        **pd.node_env(spec, node),
    }


def server_node_processes(plan: ClusterPlan, node: NodePlan, head_ip: str) -> list[list[str]]:
    """Full argv of every server rank on ``node`` (what :func:`server_node_boot` shows as
    ``processes``), without rendering the user data."""
    spec = pd.pool_spec(plan.spec, node.role) if node.role != "regular" else plan.spec
    return [argvs.server_argv(spec, s, node.rank, head_ip) for s in node.servers]


def server_node_boot(
    plan: ClusterPlan, node: NodePlan, head_ip: str, runtime: Runtime | None = None
) -> NodeBoot:
    """Processes and user data of one GPU node.

    Args:
        plan: the cluster plan.
        node: the node.
        head_ip: private IPv4 of the node's rank 0 (its own IP when ``node`` is rank 0; only
            shown in the plan's argv then, since rank 0 reads it from IMDS at boot).
        runtime: Output values (image URI, FSx names); ``None`` = ``uri`` mode, no store.

    Raises:
        UserDataTooLargeError: over 16384 bytes.
    """
    full = server_node_processes(plan, node, head_ip)
    procs = [
        ServerProcess(s.slot, argvs.split_dist_init(a)[0], node.is_head)
        for s, a in zip(node.servers, full, strict=True)
    ]
    runtime = runtime or plan.runtime_for_plan()
    logs = ["boot.log"] + [f"server-{p.slot}.log" for p in procs]
    logs += [f"ready-{p.slot}.log" for p in procs if p.is_head]
    ud = server_user_data(
        node.name,
        server_node_env(plan, node, head_ip, runtime),
        procs,
        plan.container_env,
        cloudwatch_config(plan.log_group, node.name, logs),
        bundle_env(bundle("server"), runtime.bundle_bucket, plan.region),
    )
    return NodeBoot(full, ud)


def worker_urls(plan: ClusterPlan, head_ips: Mapping[int, str]) -> dict[str, str]:
    """``{server name: http://IP:PORT}`` of rank 0 of every server.

    Args:
        head_ips: ``{group: private IPv4 of the group's rank-0 node}``.
    """
    return {s.name: f"http://{head_ips[s.group]}:{s.port}" for s in plan.layout.servers}


def gateway_workers(plan: ClusterPlan, head_ips: Mapping[int, str]) -> list[Worker]:
    """The gateway's workers: rank 0 of every server, with its prefill/decode role and (prefill)
    bootstrap port in a disaggregated stack (:func:`infra.planning.pd.pd_workers`)."""
    return pd.pd_workers(plan.layout, head_ips)


def router_boot(plan: ClusterPlan, head_ips: Mapping[int, str], bundle_bucket: str = "") -> NodeBoot:
    """Argv and user data of the router node (the gateway the spec's ``gateway`` chooses).

    Args:
        bundle_bucket: the stack's node-bundle bucket (:class:`Runtime`), "" when only the argv
            is wanted.

    Raises:
        UserDataTooLargeError: over 16384 bytes.
        SpecError: a gateway refusal (:func:`infra.planning.gateway.check_gateway`).
    """
    spec = plan.spec
    workers = gateway_workers(plan, head_ips)
    argv = gateway.gateway_argv(spec, workers, plan.router_startup_timeout_secs)
    env = {
        "SGLANG_STACK": plan.stack,
        "SGLANG_ROLE": "router",
        "SGLANG_GATEWAY": spec.gateway,
        "SGLANG_GATEWAY_PACKAGE": gateway.GATEWAY_PACKAGES[spec.gateway],
        "SGLANG_GATEWAY_MODULE": gateway.GATEWAY_MODULES[spec.gateway],
        "SGLANG_REGION": plan.region,
        "SGLANG_LOG_GROUP": plan.log_group,
        "SGLANG_API_KEY_PARAM": plan.secret_params.get("router_api_key", ""),
    }
    smg = spec.gateway == "smg"
    log_files = ["boot.log", "router.log"] + ([] if smg else ["router-sync.log"])
    logs = cloudwatch_config(plan.log_group, "router", log_files)
    files = {gateway.DISCOVERY_FILE: gateway.discovery_manifest_text(workers)} if smg else {}
    bundle_values = bundle_env(bundle("router"), bundle_bucket, plan.region)
    ud = router_user_data(env, argv, logs, bundle_values, extra_files=files, sync=not smg)
    return NodeBoot(gateway.gateway_processes(spec, argv), ud)


def secret_parameter(stack: str, key: str) -> str:
    """SSM parameter name of a secret key: ``/sglang/<stack>/<key with dashes>``."""
    return f"/sglang/{stack}/{key.replace('_', '-')}"


def _check_store(spec: StackSpec, stack: str, total_weights_gib: float) -> int:
    if not spec.model_store:
        return 0
    if spec.fsx_deployment_type == "SCRATCH_2" and not (stack == "dev" or stack.startswith("dev-")):
        raise SpecError(
            qualified("fsx_deployment_type"),
            f"SCRATCH_2 keeps one copy of the data and is allowed only for dev stacks; stack "
            f"{stack!r} needs PERSISTENT_2",
        )
    need = fsx_capacity_gib(total_weights_gib)
    if spec.fsx_capacity_gib and spec.fsx_capacity_gib < need:
        raise SpecError(
            qualified("fsx_capacity_gib"),
            f"{spec.fsx_capacity_gib} GiB is below the {need} GiB a {total_weights_gib:.0f} GiB "
            "checkpoint needs; set 0 (auto) or a larger valid size",
        )
    return spec.fsx_capacity_gib or need


SUBNET_RESERVED_ADDRESSES = 5
"""AWS reserves the first four and the last address of every subnet
(https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html)."""


def check_private_subnet_room(spec: StackSpec, layout: Layout) -> None:
    """Refuse a created VPC whose private subnet cannot address every GPU node.

    The project creates a /24 private subnet (``infra/components/network.py``
    ``subnet_cidrs``): 256 - 5 reserved = 251 addresses for the GPU nodes' primary interfaces,
    a private router and FSx's own network interfaces (not counted here). A brought subnet
    (``vpc_id``/``subnet_id``) is not checked offline.

    Raises:
        SpecError: naming ``replicas`` with the counts and what to do instead.
    """
    if not spec.creates_vpc:
        return
    # The private subnet is the VPC's second /24 (network.py subnet_cidrs; that module imports
    # pulumi_aws, which planning code never does): only its size matters here.
    private = list(ipaddress.ip_network(spec.vpc_cidr).subnets(new_prefix=24))[1]
    room = private.num_addresses - SUBNET_RESERVED_ADDRESSES
    need = len(layout.nodes) + (0 if spec.router_public_ip else 1)
    if need > room:
        raise SpecError(
            qualified("replicas"),
            f"{len(layout.nodes)} GPU nodes need {need} addresses in the created private subnet "
            f"{private} ({room} usable: AWS reserves {SUBNET_RESERVED_ADDRESSES}); bring a larger "
            "subnet with vpc_id and subnet_id, or plan fewer nodes",
        )


def plan_cluster(
    spec: StackSpec, stack: str, region: str = "us-east-1", secrets: frozenset[str] = frozenset()
) -> ClusterPlan:
    """Plan the cluster and run every offline check.

    Args:
        spec: the validated spec.
        stack: the Pulumi stack name.
        region: the AWS region.
        secrets: the secret keys (``SECRET_KEYS``) this stack sets.

    Returns:
        The :class:`ClusterPlan`.

    Raises:
        SpecError: any layout, capacity, memory, disk or user-data-size problem, naming the key.
    """
    check_region(spec, region)
    layout = pd.plan_pd_layout(spec) if pd.enabled(spec) else plan_layout(spec)
    check_private_subnet_room(spec, layout)
    check_capacity(spec, region)
    spec = resolve_image(spec, layout)  # image_source "auto" resolved; EFA-less images refused
    require_efa(spec, layout)  # refuses settings that would hide NCCL's transport lines
    node_type = spec.node_type
    unknown = secrets - set(SECRET_KEYS)
    if unknown:
        raise SpecError(qualified(sorted(unknown)[0]), "is not a secret key this program reads")
    store_capacity = _check_store(spec, stack, layout.memory.total_weights_gib)
    # Load-time sizing (issue 10): every GPU node reads the checkpoint at once at start.
    store = size_store(spec, layout.memory.total_weights_gib, len(layout.nodes)) if store_capacity else None
    plan = ClusterPlan(
        stack=stack,
        region=region,
        spec=spec,
        layout=layout,
        node_type=node_type,
        interfaces=network_interfaces(node_type),
        container_env=container_env(spec, node_type),
        root_volume_gib=root_volume_gib(spec, layout.memory.total_weights_gib),
        router_startup_timeout_secs=argvs.router_worker_startup_timeout(
            spec, layout.memory.total_weights_gib
        ),
        estimates=_estimates(spec, layout),
        fsx_capacity_gib=store.capacity_gib if store else 0,
        secret_params={k: secret_parameter(stack, k) for k in sorted(secrets)},
        store=store,
    )
    if spec.backend == "slurm":
        # No user data on this backend: ParallelCluster boots the nodes (infra/planning/slurm.py).
        from infra.planning.slurm import check_slurm

        check_slurm(plan)
        return plan
    check_object_tags(spec.tag_map)  # the node bundles are S3 objects (default tags land on them)
    # User data with the longest possible addresses must fit before anything is created.
    worst = {g: WORST_CASE_IP for g in range(layout.groups)}
    try:
        for node in layout.nodes:
            server_node_boot(plan, node, WORST_CASE_IP, WORST_CASE_RUNTIME)
        router_boot(plan, worst, MAX_BUCKET_NAME)
    except UserDataTooLargeError as e:
        raise SpecError(
            qualified("extra_server_args"),
            f"{e}; shorten extra_server_args/server_env or pack fewer servers per node",
        ) from None
    return plan
