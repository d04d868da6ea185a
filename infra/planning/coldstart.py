"""Cold-start model: seconds from ``pulumi up`` to the first token, phase by phase. Pure code.

The plan reports it as ``estimates.cold_start`` (``python -m infra plan STACK --format json``)
and in the text plan. Three scenarios:

- ``cold``: a fresh ``pulumi up``. Resources are created along the deploy graph (each resource's
  ``depends_on`` in the plan JSON) with a creation time per resource type; the last GPU node of
  the critical path reaches ``running``, boots (DLAMI boot, cloud-init, FSx mount), pulls the
  serving image, the weights reach the model store (hub download by the leader, S3 lazy load, or
  nothing), every node of the server reads them, and the server starts (NCCL init, CUDA graph
  capture) until the router answers.
- ``warm``: one GPU node reboots (weights already on FSx, image cached on the node): reboot,
  boot, weight read by that node alone (its peers keep the checkpoint in their page cache),
  server start.
- ``warm_replaced``: one GPU node is replaced (a new instance, weights on FSx, image pulled
  again unless a SOCI index makes the pull lazy).

Every constant lives in ``data/coldstart.json`` with its unit, source and date; those without a
public figure carry ``assumption: true`` and the plan says so. Everything a deployment choice
changes is an input of :class:`ColdStartInputs` (storage throughput, the launch order through
the deploy graph, the registry and SOCI, the docker data root, bytes each node reads), so a
changed default shows in the figures. Nothing here is tuned toward a target.

Weight bytes per node: SGLang 0.5.23's default loader reads every tensor of every safetensors
shard on every rank and keeps its own slice (``model_loader/weight_utils.py``
``buffered_multi_thread_safetensors_weights_iterator``: ``f.get_tensor(k)`` for each key), with
8 threads per rank (``model_loader/loader.py``: ``enable_multithread_load`` defaults to true,
``DEFAULT_NUM_THREADS = 8``); the ranks of one node share the Lustre client's page cache, so each
node reads the whole checkpoint once (``bytes_per_node_fraction`` 1.0) over about 8 streams.
A sharded load format lowers that fraction.

"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from infra.planning.cluster import ClusterPlan

DATA_FILE = Path(__file__).with_name("data") / "coldstart.json"
MB = 1e6
GB = 1e9
TIB = 2**40
GIB = 2**30

ImagePull = Literal["ecr", "ecr-soci", "docker-hub"]
ImageBuild = Literal["none", "mirror", "build"]
DiskKind = Literal["ebs", "nvme"]
ModelSource = Literal["hf", "s3", "local", "none"]
CFN_STACK = "aws:cloudformation/stack:Stack"
SLURM_CLUSTER_SUFFIX = "-cluster"
"""Name suffix of the stack holding ``Custom::PclusterCluster`` (``sglang-slurm-cluster``)."""
SLURM_FLEET = "slurm-compute-nodes"
"""The GPU nodes ParallelCluster launches once its cluster exists (no Pulumi resource of their
own): the model adds them to the deploy graph behind the cluster stack."""


@dataclass(frozen=True)
class Constant:
    """One constant of the model.

    Attributes:
        name: key in ``data/coldstart.json``.
        value: the figure (a number, or a table for per-tier figures).
        unit: its unit.
        source: a doc link or a published measurement.
        date: when the source was read (ISO date).
        assumption: True when no public figure exists.
    """

    name: str
    value: Any
    unit: str
    source: str
    date: str
    assumption: bool

    def doc(self) -> dict[str, Any]:
        """The JSON form the plan shows under a phase's ``source``."""
        return {
            "constant": self.name,
            "value": self.value,
            "unit": self.unit,
            "source": self.source,
            "date": self.date,
            "assumption": self.assumption,
        }


@cache
def constants() -> dict[str, Constant]:
    """Every constant of ``data/coldstart.json`` by name.

    Raises:
        ValueError: an entry lacks a unit, source, date or assumption flag.
    """
    raw = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    out: dict[str, Constant] = {}
    for name, entry in raw.items():
        if name.startswith("_"):
            continue
        missing = {"value", "unit", "source", "date", "assumption"} - set(entry)
        if missing:
            raise ValueError(f"{DATA_FILE.name}: {name} lacks {', '.join(sorted(missing))}")
        out[name] = Constant(
            name, entry["value"], entry["unit"], entry["source"], entry["date"], bool(entry["assumption"])
        )
    return out


def _c(name: str) -> Constant:
    return constants()[name]


def _v(name: str) -> float:
    return float(_c(name).value)


@dataclass(frozen=True)
class ColdStartInputs:
    """Everything the model reads from the stack. Each field is a knob a default can move.

    Attributes:
        checkpoint_bytes: bytes of the whole checkpoint.
        model_source: ``hf`` (leader downloads into FSx), ``s3`` (lazy load through the data
            repository association), ``local`` (already on the store), ``none`` (no store: every
            node downloads into its own cache).
        fsx_deployment_type: ``PERSISTENT_2`` or ``SCRATCH_2`` ("" without a store).
        fsx_capacity_gib: FSx storage capacity (0 without a store).
        fsx_mb_per_tib: PERSISTENT_2 per-unit throughput (MB/s/TiB; ignored for SCRATCH_2).
        fsx_use_burst: read at the disk burst rate instead of the baseline (no credit size is
            published, so the default is the baseline).
        gpu_nodes: GPU nodes in the stack (all read the checkpoint at a cold start).
        nodes_per_server: nodes one server spans (>1: NCCL init across nodes over EFA).
        bytes_per_node_fraction: share of the checkpoint one node reads (1.0 with the default
            loader; lower with a sharded load format).
        image_gb: serving image size in GB.
        image_pull: ``ecr`` (in-region), ``ecr-soci`` (lazy pull), ``docker-hub`` (via NAT).
        image_build: ``build``/``mirror`` when ``pulumi up`` pushes the image (deployer side,
            on the deploy graph), else ``none``.
        docker_root: where docker unpacks images: root EBS gp3 or instance-store NVMe.
        weights_cache: where a store-less node keeps its downloaded weights.
        decode_graph_sizes: decode CUDA graphs SGLang captures (0 when disabled).
        prefill_graph_sizes: prefill CUDA graphs SGLang captures (0 with PP or when disabled).
        loader_streams_per_node: parallel read streams of one node's weight loader (8 with
            SGLang 0.5.23's default multithreaded loader; 1 with ``enable_multithread_load``
            false; ``num_threads`` in ``--model-loader-extra-config`` sets it).
    """

    checkpoint_bytes: float
    model_source: ModelSource
    fsx_deployment_type: str
    fsx_capacity_gib: int
    fsx_mb_per_tib: int
    gpu_nodes: int
    nodes_per_server: int
    image_gb: float
    image_pull: ImagePull
    image_build: ImageBuild
    docker_root: DiskKind = "ebs"
    weights_cache: DiskKind = "ebs"
    fsx_use_burst: bool = False
    bytes_per_node_fraction: float = 1.0
    decode_graph_sizes: int = 0
    prefill_graph_sizes: int = 0
    loader_streams_per_node: int = 8


@dataclass(frozen=True)
class Phase:
    """One phase of a scenario.

    Attributes:
        name: phase name (``resources``, ``node_boot``, ``image_pull``, ``weights_fetch``,
            ``weight_load``, ``server_start``, ``router``).
        seconds: seconds this phase adds to the critical path.
        inputs: the figures it was computed from (units in the key names).
        sources: the constants it uses.
        note: how it was computed, in one sentence.
    """

    name: str
    seconds: float
    inputs: dict[str, Any]
    sources: tuple[Constant, ...]
    note: str = ""


@dataclass(frozen=True)
class Scenario:
    """A chain of phases; ``total_secs`` is their sum."""

    name: str
    phases: tuple[Phase, ...]

    @property
    def total_secs(self) -> float:
        """Seconds from the start of the scenario to the first token."""
        return sum(p.seconds for p in self.phases)


@dataclass(frozen=True)
class ColdStart:
    """The three scenarios and the critical path of the deploy graph."""

    cold: Scenario
    warm: Scenario
    warm_replaced: Scenario
    critical_path: tuple[tuple[str, str, float], ...] = field(default_factory=tuple)
    rank_launch: Literal["serial", "parallel"] = "parallel"


# --- resource creation along the deploy graph --------------------------------------------------


def image_push_secs(image_gb: float, build: ImageBuild) -> float:
    """Deployer-side seconds of the ``docker:index/image:Image`` resource.

    ``build``: pull the base image, run the EFA installer, push the whole image to the new ECR
    repository; ``mirror``: pull and push; ``none``: 0. The deployer's link rates apply to the
    compressed blobs (``image_compressed_fraction`` of ``image_gb``).
    """
    if build == "none":
        return 0.0
    # Links move compressed layer blobs, not the unpacked size the image is measured in.
    mb = image_gb * _v("image_compressed_fraction") * GB / MB
    secs = mb / _v("deployer_download_mb_per_s") + mb / _v("deployer_upload_mb_per_s")
    if build == "build":
        secs += _v("efa_installer_build_secs")
    return secs


def resource_create_secs(rtype: str, inputs: ColdStartInputs, name: str = "") -> tuple[float, str]:
    """Creation seconds of one resource (by type, and by name for ParallelCluster's cluster
    stack) and the constant behind it.

    Components (``sglang:*``) and providers take no time of their own: the engine waits for
    their children. The CloudFormation stack holding ``Custom::PclusterCluster``
    (``*-cluster``, :mod:`infra.components.slurm_cluster`) takes ParallelCluster's own cluster
    creation (head node launch and bootstrap), not an API call's few seconds.
    """
    if rtype.startswith("sglang:") or rtype.startswith("pulumi:providers:"):
        return 0.0, ""
    if rtype == CFN_STACK and name.endswith(SLURM_CLUSTER_SUFFIX):
        return _v("parallelcluster_create_secs"), "parallelcluster_create_secs"
    table: dict[str, str] = {
        "aws:fsx/lustreFileSystem:LustreFileSystem": "fsx_create_secs",
        "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": "fsx_dra_create_secs",
        "aws:ec2/natGateway:NatGateway": "nat_gateway_create_secs",
        "aws:ec2/instance:Instance": "instance_launch_to_running_secs",
    }
    if rtype in table:
        return _v(table[rtype]), table[rtype]
    if rtype.startswith("docker:") and rtype.endswith(":Image"):
        return image_push_secs(inputs.image_gb, inputs.image_build), "deployer_upload_mb_per_s"
    slow: Mapping[str, float] = _c("slow_resource_create_secs").value
    if rtype in slow:
        return float(slow[rtype]), "slow_resource_create_secs"
    return _v("api_resource_create_secs"), "api_resource_create_secs"


def finish_times(
    resources: Sequence[Mapping[str, Any]], inputs: ColdStartInputs
) -> tuple[dict[str, float], dict[str, str]]:
    """Earliest finish time of every resource when each starts as soon as its ``depends_on``
    are done (what the Pulumi engine does, with unbounded parallelism).

    Args:
        resources: the plan's ``resources`` entries (``name``, ``type``, ``depends_on``).
        inputs: the model inputs (for the image resource).

    Returns:
        ``(finish seconds by name, predecessor on the longest path by name)``.

    Raises:
        ValueError: on a dependency cycle.
    """
    by_name = {r["name"]: r for r in resources}
    finish: dict[str, float] = {}
    pred: dict[str, str] = {}
    visiting: set[str] = set()

    def done(name: str) -> float:
        if name in finish:
            return finish[name]
        if name in visiting:
            raise ValueError(f"dependency cycle through {name}")
        visiting.add(name)
        r = by_name.get(name)
        start, before = 0.0, ""
        for d in r["depends_on"] if r else ():
            if d != name and d in by_name and done(d) >= start:
                start, before = finish[d], d
        own = resource_create_secs(r["type"], inputs, name)[0] if r else 0.0
        finish[name] = start + own
        if before:
            pred[name] = before
        visiting.discard(name)
        return finish[name]

    for name in by_name:
        done(name)
    return finish, pred


def critical_path(
    resources: Sequence[Mapping[str, Any]], inputs: ColdStartInputs, target: str
) -> list[tuple[str, str, float]]:
    """The longest chain of resources in front of ``target`` (inclusive), first to last, as
    ``(name, type, creation seconds)``."""
    _, pred = finish_times(resources, inputs)
    types = {r["name"]: r["type"] for r in resources}
    chain: list[tuple[str, str, float]] = []
    name: str | None = target
    while name:
        own = resource_create_secs(types[name], inputs, name)[0]
        if own > 0:
            chain.append((name, types[name], round(own, 1)))
        name = pred.get(name)
    return chain[::-1]


_GPU_NODE = re.compile(r"^(server|prefill|decode)-g\d+-r\d+$")
"""Names of the GPU instances (infra/planning/layout.py; prefill/decode pools: pd.py)."""


def is_gpu_instance(resource: Mapping[str, Any]) -> bool:
    """True for a GPU node's ``aws:ec2/instance:Instance`` in the plan's ``resources``."""
    return resource["type"] == "aws:ec2/instance:Instance" and bool(_GPU_NODE.match(resource["name"]))


def rank_launch_order(resources: Sequence[Mapping[str, Any]]) -> Literal["serial", "parallel"]:
    """``serial`` when a GPU instance waits for another GPU instance in the deploy graph
    (ranks >= 1 waiting for rank 0's private IP), else ``parallel``."""
    servers = {r["name"] for r in resources if is_gpu_instance(r)}
    return (
        "serial"
        if any(set(r["depends_on"]) & servers for r in resources if r["name"] in servers)
        else "parallel"
    )


def _path_constants(path: Sequence[tuple[str, str, float]], inputs: ColdStartInputs) -> set[str]:
    """Names of every constant behind the creation times of ``path`` (the image resource uses
    several)."""
    keys = {resource_create_secs(t, inputs, n)[1] for n, t, _ in path} - {""}
    if "deployer_upload_mb_per_s" in keys:
        keys |= {"deployer_download_mb_per_s", "image_compressed_fraction", "sglang_image_gb"}
        if inputs.image_build == "build":
            keys.add("efa_installer_build_secs")
    return keys


def gpu_node_names(resources: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the GPU nodes in the deploy graph: the ``server-*`` (or ``prefill-``/``decode-``)
    instances, or the compute
    fleet :func:`with_slurm_fleet` adds for a ParallelCluster stack."""
    return sorted(
        r["name"]
        for r in resources
        if is_gpu_instance(r) or (r["type"] == "aws:ec2/instance:Instance" and r["name"] == SLURM_FLEET)
    )


def with_slurm_fleet(resources: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``resources`` plus, for a ``backend: slurm`` stack (no ``server-*`` instance, a
    ParallelCluster cluster stack), its GPU compute nodes as one instance launched after the
    cluster stack completes (ParallelCluster's clustermgtd launches the static nodes once the
    head node is up)."""
    out = list(resources)
    if gpu_node_names(out):
        return out
    clusters = [r["name"] for r in out if r["type"] == CFN_STACK and r["name"].endswith(SLURM_CLUSTER_SUFFIX)]
    if clusters:
        out.append({"name": SLURM_FLEET, "type": "aws:ec2/instance:Instance", "depends_on": clusters})
    return out


# --- node-side phases ----------------------------------------------------------------------------


def node_boot_phase(inputs: ColdStartInputs) -> Phase:
    """DLAMI boot, cloud-init and the FSx mount (no mount without a store)."""
    names = ["os_boot_secs", "cloud_init_secs"] + (["fsx_mount_secs"] if inputs.fsx_capacity_gib else [])
    secs = sum(_v(n) for n in names)
    return Phase(
        "node_boot",
        secs,
        {"fsx_mount": bool(inputs.fsx_capacity_gib)},
        tuple(_c(n) for n in names),
        "boot + cloud-init + FSx mount",
    )


def image_pull_phase(inputs: ColdStartInputs, *, cached: bool = False) -> Phase:
    """Seconds to pull and unpack the serving image on one node.

    ``ecr``/``docker-hub``: image size / min(registry rate, docker-root write rate);
    ``ecr-soci``: the measured lazy-pull start plus the measured first-access fetch penalty;
    ``cached``: 0.
    """
    if cached:
        return Phase("image_pull", 0.0, {"image_cached": True}, (), "image already in the node's docker root")
    if inputs.image_pull == "ecr-soci":
        c, lazy = _c("soci_lazy_pull_secs"), _c("soci_lazy_run_penalty_secs")
        return Phase(
            "image_pull",
            float(c.value) + float(lazy.value),
            {"image_gb": inputs.image_gb, "pull": "ecr-soci"},
            (c, lazy),
            "SOCI lazy pull + files fetched on first access (measured for import torch: a lower bound)",
        )
    reg = _c(
        "docker_hub_pull_mb_per_s" if inputs.image_pull == "docker-hub" else "ecr_in_region_pull_mb_per_s"
    )
    disk = _c(
        "gp3_default_throughput_mb_per_s" if inputs.docker_root == "ebs" else "nvme_raid0_write_mb_per_s"
    )
    disk_mb_s = float(disk.value) * (2**20 / MB if inputs.docker_root == "ebs" else 1.0)
    rate = min(float(reg.value), disk_mb_s)
    secs = inputs.image_gb * GB / MB / rate
    return Phase(
        "image_pull",
        secs,
        {
            "image_gb": inputs.image_gb,
            "pull": inputs.image_pull,
            "docker_root": inputs.docker_root,
            "rate_mb_per_s": round(rate, 1),
        },
        (reg, disk),
        "image size / min(registry rate, docker data root write rate)",
    )


def fsx_rates_mb_per_s(inputs: ColdStartInputs) -> tuple[float, float, str]:
    """``(read MB/s, write MB/s, tier key)`` of the model store: min(disk, network) for the
    capacity and per-unit throughput; reads at the disk burst rate when ``fsx_use_burst``."""
    tib = inputs.fsx_capacity_gib * GIB / TIB
    key = (
        "SCRATCH_2" if inputs.fsx_deployment_type == "SCRATCH_2" else f"PERSISTENT_2-{inputs.fsx_mb_per_tib}"
    )
    disk = _c("fsx_disk_mb_per_s_per_tib").value[key]
    net = _c("fsx_network_mb_per_s_per_tib").value[key]
    level = "burst" if inputs.fsx_use_burst else "baseline"
    read = min(disk[level], net[level]) * tib
    # Writes run at the disk baseline; the table gives SCRATCH_2 a lower write figure.
    write = min(disk.get("write", disk["baseline"]), net["baseline"]) * tib
    return read, write, key


def fsx_oss_count(inputs: ColdStartInputs) -> int:
    """Object storage servers of the model store: ``ceil(capacity GiB / storage per OSS)``
    (2400 GiB for non-EFA PERSISTENT_2 and SCRATCH_2, ``using-fsx-lustre.html``); 0 without a
    store."""
    if not inputs.fsx_capacity_gib:
        return 0
    return math.ceil(inputs.fsx_capacity_gib / _v("fsx_storage_per_oss_gib"))


def node_read_cap_mb_per_s(capacity_gib: int, loader_streams: int) -> float:
    """MB/s one node can read from the model store: ``min(client limit, min(loader streams,
    file servers) x per-file-server limit)``. AWS documents 5 Gbit/s between one client and one
    FSx file server, and one file server per 2400 GiB (non-EFA PERSISTENT_2 and SCRATCH_2;
    ``fsx_client_per_oss_mb_per_s``, ``fsx_storage_per_oss_gib`` in the data file); 0 without a
    store. :mod:`infra.planning.fsx_sizing` sizes the store with the same limit."""
    if not capacity_gib:
        return 0.0
    oss = math.ceil(capacity_gib / _v("fsx_storage_per_oss_gib"))
    return min(_v("fsx_client_max_mb_per_s"), min(loader_streams, oss) * _v("fsx_client_per_oss_mb_per_s"))


def weights_fetch_secs(inputs: ColdStartInputs) -> tuple[float, dict[str, Any], tuple[Constant, ...], str]:
    """Seconds until the checkpoint is on the model store (or a store-less node's cache)."""
    mb = inputs.checkpoint_bytes / MB
    if inputs.model_source == "hf":
        _, write, key = fsx_rates_mb_per_s(inputs)
        hub = _c("hub_download_mb_per_s")
        rate = min(float(hub.value), write)
        return (
            mb / rate,
            {
                "checkpoint_gb": round(inputs.checkpoint_bytes / GB, 1),
                "fsx_tier": key,
                "rate_mb_per_s": round(rate, 1),
            },
            (hub, _c("fsx_disk_mb_per_s_per_tib"), _c("fsx_network_mb_per_s_per_tib")),
            "leader downloads from the hub into FSx: checkpoint / min(hub rate, FSx write baseline)",
        )
    if inputs.model_source == "none":
        hub = _c("hub_download_mb_per_s")
        disk = _c(
            "gp3_default_throughput_mb_per_s"
            if inputs.weights_cache == "ebs"
            else "nvme_raid0_write_mb_per_s"
        )
        disk_mb_s = float(disk.value) * (2**20 / MB if inputs.weights_cache == "ebs" else 1.0)
        rate = min(float(hub.value), disk_mb_s)
        return (
            mb / rate,
            {
                "checkpoint_gb": round(inputs.checkpoint_bytes / GB, 1),
                "cache": inputs.weights_cache,
                "rate_mb_per_s": round(rate, 1),
            },
            (hub, disk),
            "every node downloads into its own cache: checkpoint / min(hub rate, cache disk write)",
        )
    return 0.0, {}, (), ""


def weight_load_phase(inputs: ColdStartInputs, readers: int) -> Phase:
    """Seconds for ``readers`` nodes to read their share of the checkpoint at once.

    From FSx: ``readers x bytes per node / FSx read rate``, at least ``bytes per node / the
    per-client limit``; an S3-associated store first hydrates what the first reader touches
    (``checkpoint / min(S3 rate, FSx write baseline)``) and the other readers then read from
    FSx. Without a store the page cache still holds what the node just downloaded (counted in
    ``weights_fetch``).
    """
    per_node = inputs.checkpoint_bytes * inputs.bytes_per_node_fraction
    if inputs.model_source == "none":
        return Phase(
            "weight_load", 0.0, {"from": "page cache after download"}, (), "weights were just written"
        )
    read, write, key = fsx_rates_mb_per_s(inputs)
    client = _c("fsx_client_max_mb_per_s")
    srcs: tuple[Constant, ...] = (_c("fsx_disk_mb_per_s_per_tib"), _c("fsx_network_mb_per_s_per_tib"), client)
    per_oss = _c("fsx_client_per_oss_mb_per_s")
    srcs += (per_oss, _c("fsx_storage_per_oss_gib"))
    node_cap = node_read_cap_mb_per_s(inputs.fsx_capacity_gib, inputs.loader_streams_per_node)
    shared = readers * per_node / MB / read
    secs = max(shared, per_node / MB / node_cap)
    detail: dict[str, Any] = {
        "checkpoint_gb": round(inputs.checkpoint_bytes / GB, 1),
        "gb_per_node": round(per_node / GB, 1),
        "readers": readers,
        "fsx_tier": key,
        "fsx_capacity_gib": inputs.fsx_capacity_gib,
        "fsx_read_mb_per_s": round(read, 1),
        "rate": "burst" if inputs.fsx_use_burst else "baseline",
        "loader_streams_per_node": inputs.loader_streams_per_node,
        "fsx_oss": fsx_oss_count(inputs),
        "node_read_cap_mb_per_s": round(node_cap, 1),
    }
    note = (
        "max(readers x bytes per node / FSx read rate, bytes per node / the node's read cap: "
        "5 Gbit/s per file server it reads from (min(loader streams, OSS count)), at most the "
        "client limit)"
    )
    if inputs.model_source == "s3" and readers:
        s3 = _c("s3_hydrate_mb_per_s")
        first = per_node / MB / min(float(s3.value), write, node_cap)
        secs = first + max(
            (readers - 1) * per_node / MB / read, per_node / MB / node_cap if readers > 1 else 0.0
        )
        srcs += (s3,)
        detail["s3_hydrate_mb_per_s"] = round(min(float(s3.value), write), 1)
        note = "first reader hydrates from S3 (min(S3 rate, FSx write)), the others read from FSx"
    return Phase("weight_load", secs, detail, srcs, note)


def server_start_phase(inputs: ColdStartInputs) -> Phase:
    """NCCL init, CUDA graph capture and the rest of SGLang's start until ``/health``."""
    nccl = _c("nccl_init_secs" if inputs.nodes_per_server > 1 else "nccl_init_single_node_secs")
    graph = _c("cuda_graph_capture_secs_per_batch_size")
    over = _c("server_overhead_secs")
    sizes = inputs.decode_graph_sizes + inputs.prefill_graph_sizes
    secs = float(nccl.value) + sizes * float(graph.value) + float(over.value)
    return Phase(
        "server_start",
        secs,
        {
            "nodes_per_server": inputs.nodes_per_server,
            "decode_graph_sizes": inputs.decode_graph_sizes,
            "prefill_graph_sizes": inputs.prefill_graph_sizes,
        },
        (nccl, graph, over),
        "NCCL init + CUDA graphs x seconds per graph + imports, warmup, first /health",
    )


def router_phase() -> Phase:
    """The router's startup poll finds the worker ready (one ``--worker-startup-check-interval``
    at worst)."""
    c = _c("router_ready_secs")
    return Phase(
        "router", float(c.value), {}, (c,), "router's startup poll finds the ready worker (worst case)"
    )


# --- scenarios -----------------------------------------------------------------------------------


def model_cold_start(inputs: ColdStartInputs, resources: Sequence[Mapping[str, Any]]) -> ColdStart:
    """The three scenarios for a stack.

    Args:
        inputs: the stack's figures (:func:`inputs_from_plan`).
        resources: the plan's ``resources`` (``name``, ``type``, ``depends_on``).

    Returns:
        The :class:`ColdStart`; each scenario's phases add up to its total.
    """
    resources = with_slurm_fleet(resources)
    finish, _ = finish_times(resources, inputs)
    gpu = gpu_node_names(resources)
    boot = node_boot_phase(inputs)
    pull = image_pull_phase(inputs)
    fetch_secs, fetch_in, fetch_src, fetch_note = weights_fetch_secs(inputs)
    ready = {n: finish[n] + boot.seconds + pull.seconds for n in gpu}
    last = max(gpu, key=lambda n: (ready[n], n)) if gpu else ""
    # The node that downloads the weights into FSx: rank 0 of group 0 (server-, prefill- or
    # decode-g0-r0; infra/planning/layout.py and pd.py name the nodes).
    leader = next((n for n in gpu if n.endswith("-g0-r0")), last)
    # hf: the leader downloads after its own pull, everyone waits for the marker; none: every
    # node downloads for itself after its pull.
    if inputs.model_source == "hf" and leader:
        avail = ready[leader] + fetch_secs
        chain_node = leader if avail >= ready[last] else last
        fetch_on_path = fetch_secs if chain_node == leader else 0.0
        if chain_node == last and avail > ready[last]:
            fetch_on_path = avail - ready[last]
    elif inputs.model_source == "none":
        chain_node, fetch_on_path = last, fetch_secs
    else:
        chain_node, fetch_on_path = last, 0.0
    target = chain_node or ""
    path = tuple(critical_path(resources, inputs, target)) if target else ()
    resources_phase = Phase(
        "resources",
        finish.get(target, 0.0),
        {"critical_path": [f"{n} ({s:g} s)" for n, _, s in path], "until": f"{target} running"},
        tuple(_c(k) for k in sorted(_path_constants(path, inputs))),
        "longest chain of the deploy graph (depends_on) in front of the last GPU node's launch",
    )
    fetch = Phase(
        "weights_fetch",
        fetch_on_path,
        {**fetch_in, "full_secs": round(fetch_secs, 1), "source": inputs.model_source},
        fetch_src,
        fetch_note or "weights already on the store (or loaded lazily from S3 on first read)",
    )
    cold = Scenario(
        "cold",
        (
            resources_phase,
            boot,
            pull,
            fetch,
            weight_load_phase(inputs, inputs.gpu_nodes if inputs.model_source != "none" else 0),
            server_start_phase(inputs),
            router_phase(),
        ),
    )
    reboot = _c("instance_reboot_secs")
    single_read = weight_load_phase(
        replace(inputs, model_source="local") if inputs.model_source == "s3" else inputs, 1
    )
    if inputs.model_source == "none":
        single_read = Phase("weight_load", 0.0, {"from": "node cache"}, (), "weights in the node's own cache")
    warm = Scenario(
        "warm",
        (
            Phase("resources", float(reboot.value), {"event": "reboot"}, (reboot,), "EC2 reboot"),
            replace(
                boot,
                note=boot.note
                + " (as cold: cloud-init skips its per-instance steps on a reboot, so this over-counts)",
            ),
            image_pull_phase(inputs, cached=True),
            single_read,
            server_start_phase(inputs),
            router_phase(),
        ),
    )
    launch = _c("instance_launch_to_running_secs")
    replaced_fetch = (
        Phase(
            "weights_fetch",
            fetch_secs,
            {**fetch_in, "source": "none"},
            fetch_src,
            "a new node downloads into its own cache again",
        )
        if inputs.model_source == "none"
        else Phase("weights_fetch", 0.0, {"source": inputs.model_source}, (), "weights already on FSx")
    )
    warm_replaced = Scenario(
        "warm_replaced",
        (
            Phase(
                "resources", float(launch.value), {"event": "replace"}, (launch,), "new instance to running"
            ),
            boot,
            pull,
            replaced_fetch,
            single_read,
            server_start_phase(inputs),
            router_phase(),
        ),
    )
    return ColdStart(cold, warm, warm_replaced, path, rank_launch_order(resources))


def _decode_graph_sizes(max_bs: int) -> int:
    """How many decode CUDA graphs SGLang 0.5.23 captures up to ``max_bs`` (no speculative
    decoding): ``generate_decode_cuda_graph_batch_sizes`` in ``arg_groups/cuda_graph_hook.py``."""
    sizes = [1, 2, 4, 8, 12, *range(16, 257, 8), *range(272, 512, 16), *range(512, max_bs + 1, 32)]
    sizes = [s for s in sizes if s <= max_bs]
    return len(sizes) + (0 if max_bs in sizes else 1)


def loader_streams(extra_server_args: Sequence[str]) -> int:
    """Read streams of one rank's weight loader from ``--model-loader-extra-config``: SGLang
    0.5.23 loads with ``num_threads`` threads (default 8) unless ``enable_multithread_load`` is
    false (``model_loader/loader.py`` ``_get_weights_iterator``)."""
    args = list(extra_server_args)
    raw = ""
    for i, a in enumerate(args):
        if a == "--model-loader-extra-config" and i + 1 < len(args):
            raw = args[i + 1]
        elif a.startswith("--model-loader-extra-config="):
            raw = a.split("=", 1)[1]
    try:
        cfg = json.loads(raw) if raw else {}
    except ValueError:
        cfg = {}
    if not isinstance(cfg, dict):
        cfg = {}
    if cfg.get("enable_multithread_load", True) is False:
        return 1
    threads = cfg.get("num_threads", 8)
    return threads if isinstance(threads, int) and threads > 0 else 8


def inputs_from_plan(plan: ClusterPlan) -> ColdStartInputs:
    """The model's inputs as today's defaults set them for ``plan``.

    The ``fastboot`` changes connect here: FSx capacity and per-unit throughput
    (``fsx_capacity_gib``/``fsx_mb_per_tib``), the image source (``image_pull``: ``ecr``,
    ``ecr-soci``), the docker data root and weights cache (``docker_root``/``weights_cache``:
    ``nvme``) and the bytes each node reads (``bytes_per_node_fraction``); the rank launch order
    comes from the deploy graph itself.
    """
    from infra.planning.fastboot import nvme_present
    from infra.planning.memory import _prefill_graph_sizes, gpu_total_mib, sglang_capacity_defaults
    from infra.planning.storage import model_source

    spec = plan.spec
    node = plan.node_type
    disabled = "--disable-cuda-graph" in spec.extra_server_args
    chunk, max_bs = sglang_capacity_defaults(gpu_total_mib(node), spec.tp_size)
    decode = 0 if disabled else _decode_graph_sizes(max_bs)
    prefill = 0 if disabled or spec.pp_size > 1 else len(_prefill_graph_sizes(chunk))
    raw = model_source(spec)
    source: ModelSource = (
        "hf" if raw == "hf" else "s3" if raw == "s3" else "local" if raw == "local" else "none"
    )
    image_pull: ImagePull = (
        "ecr" if spec.image_source in ("mirror", "build") or ".dkr.ecr." in spec.image else "docker-hub"
    )
    build: ImageBuild = "none"
    if spec.image_source == "mirror":
        build = "mirror"
    elif spec.image_source == "build":
        build = "build"
    return ColdStartInputs(
        loader_streams_per_node=loader_streams(spec.extra_server_args),
        checkpoint_bytes=plan.layout.memory.total_weights_gib * GIB,
        model_source=source,
        fsx_deployment_type=spec.fsx_deployment_type if plan.fsx_capacity_gib else "",
        fsx_capacity_gib=plan.fsx_capacity_gib,
        # The per-unit throughput the planner sized for the load-time target (fastboot).
        fsx_mb_per_tib=plan.store.throughput_mb_per_tib if plan.store else spec.fsx_throughput_mb_per_tib,
        gpu_nodes=len(plan.layout.nodes),
        nodes_per_server=plan.layout.nodes_per_server,
        image_gb=_v("sglang_image_gb"),
        image_pull=image_pull,
        image_build=build,
        # sglang-lib.sh puts a store-less node's hub cache on /opt/dlami/nvme, which the DLAMI
        # mounts on the P types' instance store (shared/reference/aws-gpu-clusters.md).
        weights_cache="nvme" if node.name.startswith("p") else "ebs",
        # userdata/sglang-nvme moves docker's data root onto the instance-store RAID0.
        docker_root="nvme" if nvme_present(plan) else "ebs",
        decode_graph_sizes=decode,
        prefill_graph_sizes=prefill,
    )


# --- plan document -------------------------------------------------------------------------------


def _phase_doc(p: Phase) -> dict[str, Any]:
    return {
        "name": p.name,
        "seconds": round(p.seconds, 1),
        "inputs": p.inputs,
        "source": [c.doc() for c in p.sources],
        "note": p.note,
    }


def _scenario_doc(s: Scenario) -> dict[str, Any]:
    return {
        "total_secs": round(s.total_secs, 1),
        "total_min": round(s.total_secs / 60, 1),
        "phases": [_phase_doc(p) for p in s.phases],
    }


def cold_start_document(cs: ColdStart, inputs: ColdStartInputs) -> dict[str, Any]:
    """``estimates.cold_start`` of the plan JSON."""
    used = {c.name for s in (cs.cold, cs.warm, cs.warm_replaced) for p in s.phases for c in p.sources}
    return {
        "cold": _scenario_doc(cs.cold),
        "warm": _scenario_doc(cs.warm),
        "warm_replaced": _scenario_doc(cs.warm_replaced),
        "rank_launch": cs.rank_launch,
        "inputs": {
            "checkpoint_gb": round(inputs.checkpoint_bytes / GB, 1),
            "model_source": inputs.model_source,
            "fsx": (
                {
                    "deployment_type": inputs.fsx_deployment_type,
                    "capacity_gib": inputs.fsx_capacity_gib,
                    "mb_per_s_per_tib": inputs.fsx_mb_per_tib,
                    "read_mb_per_s": round(fsx_rates_mb_per_s(inputs)[0], 1),
                    "rate": "burst" if inputs.fsx_use_burst else "baseline",
                }
                if inputs.fsx_capacity_gib
                else None
            ),
            "image_gb": inputs.image_gb,
            "image_pull": inputs.image_pull,
            "image_build": inputs.image_build,
            "docker_root": inputs.docker_root,
            "bytes_per_node_fraction": inputs.bytes_per_node_fraction,
        },
        "assumptions": sorted(n for n in used if constants()[n].assumption),
        "constants_file": "infra/planning/data/coldstart.json",
    }


def cold_start_lines(doc: Mapping[str, Any]) -> list[str]:
    """The text plan's lines for ``estimates.cold_start``."""

    def mins(s: float) -> str:
        return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"

    lines = [
        f"Modeled time to first token: cold {mins(doc['cold']['total_secs'])}, warm (node reboot) "
        f"{mins(doc['warm']['total_secs'])}, node replaced {mins(doc['warm_replaced']['total_secs'])} "
        f"(ranks launch {doc['rank_launch']})"
    ]
    for scen in ("cold", "warm"):
        lines.append(f"  {scen}:")
        for p in doc[scen]["phases"]:
            flag = " [assumption]" if any(s["assumption"] for s in p["source"]) else ""
            lines.append(f"    {p['name']:<14} {mins(p['seconds']):>9}  {p['note']}{flag}")
    path = doc["cold"]["phases"][0]["inputs"].get("critical_path", [])
    if path:
        lines.append("  critical path: " + " -> ".join(path))
    if doc["assumptions"]:
        lines.append(
            "  assumptions (no public figure; see infra/planning/data/coldstart.json): "
            + ", ".join(doc["assumptions"])
        )
    return lines


def modeled_ttft_secs(doc: Mapping[str, Any]) -> tuple[float, float]:
    """``(cold, warm)`` totals in seconds, for the README stack table."""
    return float(doc["cold"]["total_secs"]), float(doc["warm"]["total_secs"])
