"""Prefill/decode disaggregation: two server pools that move the KV cache over EFA. Pure code.

With ``pd_disaggregation: true`` a stack runs a *prefill* pool and a *decode* pool instead of
``replicas`` identical servers. Each pool has its own instance type, TP size and number of
servers (``prefill_instance_type``/``prefill_tp_size``/``prefill_replicas`` and the ``decode_``
keys; empty or 0 = the stack's ``instance_type``/``tp_size``); ``pp_size``, ``dp_size``,
``ep_size``, ``attention_dp`` and ``servers_per_node`` apply to both. Every pool is planned by
the ordinary layout planner (:func:`infra.planning.layout.plan_layout`, memory fit included) and
the two are joined: prefill node groups first (``prefill-g0-r0`` ...), decode groups after them
(``decode-g<P>-r0`` ...), so a group number still names one node group of the stack.

What SGLang 0.5.23 needs (read in its source, ``sglang/srt/disaggregation/`` and
``sglang/srt/distributed/device_communicators/mooncake_transfer_engine.py``, 2026-11-21):

- ``--disaggregation-mode prefill|decode`` and ``--disaggregation-transfer-backend
  mooncake|nixl`` on every rank.
- ``--disaggregation-bootstrap-port`` on prefill servers (default 8998): the decode side asks
  it for the KV layout and the transfer engine's session of each prefill rank. One port per
  prefill server: servers packed on one node get ``pd_bootstrap_port + slot * 10``.
- Mooncake over EFA: ``MOONCAKE_PROTOCOL=efa`` (SGLang's default is ``rdma``, which on EFA
  fails or, in an EFA build, installs Mooncake's TCP transport: the KV cache then crawls over
  TCP), a transfer engine built with ``USE_EFA`` (PyPI ``mooncake-transfer-engine-efa-cuda13``,
  ``docker/Dockerfile``) and ``FI_HMEM=cuda`` so libfabric registers GPU memory. Mooncake's EFA
  transport takes *ibverbs device names* of EFA NICs (``rdmap79s0``; it opens the libfabric
  domain ``<name>-rdm``, Mooncake ``efa_context.cpp``) as a comma list, or SGLang's per-GPU JSON
  map ``{"0": "dev,dev", ...}`` (a file path ending in ``.json``). Those names depend on the
  node's PCI layout, not on the instance type, so they are found at boot: ``sglang-kv-transport
  devices`` writes :data:`IB_DEVICE_FILE` from ``/sys/class/infiniband`` (devices whose driver is
  ``efa``, each GPU mapped to the EFA devices of its NUMA node) and the argv names that file.
  The seed's ``mlx5_roce0`` is a Mellanox RoCE name that no EFA node has.
- NIXL over libfabric: ``SGLANG_DISAGGREGATION_NIXL_BACKEND=LIBFABRIC`` (default ``UCX``).
  SGLang passes ``--disaggregation-ib-device`` only to NIXL's UCX backend; NIXL's libfabric
  plugin finds the EFA devices itself (hwloc topology, ``fi_getinfo``), so no device flag is
  rendered. ``NIXL_LOG_LEVEL=INFO`` makes NIXL print the provider it chose (its default level,
  WARN, hides it), which the boot check reads.

The router side (PD-mode gateway argv) belongs to :mod:`infra.planning.gateway`; this module
hands it :func:`pd_workers`: rank 0 of every server with its role and bootstrap port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Literal

from infra.planning.layout import SERVER_PORT_STRIDE, Layout, NodePlan, ServerPlan, plan_layout
from infra.spec import SpecError, StackSpec, qualified

if TYPE_CHECKING:
    from infra.planning.cluster import ClusterPlan
    from infra.planning.gateway import Worker

PoolRole = Literal["prefill", "decode"]
POOLS: tuple[PoolRole, PoolRole] = ("prefill", "decode")

IB_DEVICE_FILE = "/etc/sglang/efa-devices.json"
"""Per-GPU EFA device map that ``sglang-kv-transport devices`` writes at boot and
``sglang-server-run`` mounts read-only at the same path into the container; the argv passes it
as ``--disaggregation-ib-device`` (SGLang reads a value ending in ``.json`` as a file)."""

BOOTSTRAP_PORT_STRIDE = SERVER_PORT_STRIDE
"""Distance between the bootstrap ports of prefill servers packed on one node."""

MODE_FLAG = "--disaggregation-mode"
BACKEND_FLAG = "--disaggregation-transfer-backend"
BOOTSTRAP_FLAG = "--disaggregation-bootstrap-port"
IB_DEVICE_FLAG = "--disaggregation-ib-device"

OWNED_PD_DESTS: frozenset[str] = frozenset(
    {
        "disaggregation_mode",
        "disaggregation_transfer_backend",
        "disaggregation_bootstrap_port",
        "disaggregation_ib_device",
    }
)
"""Settings the project renders for prefill/decode servers (argparse dests of SGLang 0.5.23)."""


def enabled(spec: StackSpec) -> bool:
    """True when the stack runs prefill and decode pools (``pd_disaggregation``)."""
    return spec.pd_disaggregation


def pool_instance_type(spec: StackSpec, role: PoolRole) -> str:
    """EC2 type of a pool's nodes: ``<role>_instance_type``, else ``instance_type``."""
    own = spec.prefill_instance_type if role == "prefill" else spec.decode_instance_type
    return own or spec.instance_type


def pool_spec(spec: StackSpec, role: PoolRole) -> StackSpec:
    """The spec one pool is planned and rendered with: the stack's spec with the pool's
    ``instance_type``, ``tp_size`` and ``replicas`` (``node_count`` is checked for both pools
    together by :func:`plan_pd_layout`)."""
    if role == "prefill":
        tp, replicas = spec.prefill_tp_size, spec.prefill_replicas
    else:
        tp, replicas = spec.decode_tp_size, spec.decode_replicas
    return spec.model_copy(
        update={
            "instance_type": pool_instance_type(spec, role),
            "tp_size": tp or spec.tp_size,
            "replicas": replicas,
            "node_count": 0,
        }
    )


_POOL_KEYS = {"instance_type", "tp_size", "replicas"}


def _pool_error(err: SpecError, role: PoolRole) -> SpecError:
    """Re-key a layout error of one pool to the pool's own key (``prefill_tp_size``)."""
    bare = err.key.partition(":")[2]
    key = qualified(f"{role}_{bare}") if bare in _POOL_KEYS else err.key
    return SpecError(key, f"{role} pool: {err.message}")


def bootstrap_port(spec: StackSpec, slot: int) -> int:
    """``--disaggregation-bootstrap-port`` of the prefill server in ``slot`` of its node."""
    return spec.pd_bootstrap_port + slot * BOOTSTRAP_PORT_STRIDE


def plan_pd_layout(spec: StackSpec) -> Layout:
    """Plan the prefill pool and the decode pool and join them into one layout.

    Args:
        spec: a validated spec with ``pd_disaggregation`` on.

    Returns:
        A :class:`~infra.planning.layout.Layout` whose servers carry ``role`` and (prefill)
        ``bootstrap_port``, and whose nodes carry their pool's ``instance_type``. Prefill
        servers and groups come first. ``gpus_per_server`` and ``nodes_per_server`` are the
        larger of the two pools' (so a rule that asks "does any server span nodes" sees both);
        ``memory`` is the prefill pool's (both pools load the same weights).

    Raises:
        SpecError: a pool that its layout rules refuse (keyed ``prefill_tp_size``,
            ``decode_instance_type``...), or ``node_count`` unequal to the two pools' sum.
    """
    servers: list[ServerPlan] = []
    nodes: list[NodePlan] = []
    layouts: list[Layout] = []
    for role in POOLS:
        try:
            lay = plan_layout(pool_spec(spec, role), role)
        except SpecError as e:
            raise _pool_error(e, role) from None
        layouts.append(lay)
        index0, group0 = len(servers), sum(x.groups for x in layouts[:-1])
        mapped = {
            s.index: replace(
                s,
                index=s.index + index0,
                group=s.group + group0,
                role=role,
                bootstrap_port=bootstrap_port(spec, s.slot) if role == "prefill" else None,
            )
            for s in lay.servers
        }
        servers += mapped.values()
        nodes += [
            NodePlan(
                name=f"{role}-g{n.group + group0}-r{n.rank}",
                group=n.group + group0,
                rank=n.rank,
                servers=tuple(mapped[s.index] for s in n.servers),
                instance_type=pool_instance_type(spec, role),
            )
            for n in lay.nodes
        ]
    if spec.node_count and spec.node_count != len(nodes):
        counts = ", ".join(f"{len([n for n in nodes if n.role == r])} {r}" for r in POOLS)
        raise SpecError(
            qualified("node_count"),
            f"the prefill and decode pools need {len(nodes)} nodes ({counts}), not "
            f"{spec.node_count}; fix node_count or the pool keys",
        )
    prefill, decode = layouts
    return Layout(
        gpus_per_server=max(prefill.gpus_per_server, decode.gpus_per_server),
        nodes_per_server=max(prefill.nodes_per_server, decode.nodes_per_server),
        servers_per_node=max(prefill.servers_per_node, decode.servers_per_node),
        groups=prefill.groups + decode.groups,
        servers=tuple(servers),
        nodes=tuple(nodes),
        total_gpus=prefill.total_gpus + decode.total_gpus,
        used_gpus=prefill.used_gpus + decode.used_gpus,
        memory=prefill.memory,
    )


def disaggregation_args(spec: StackSpec, server: ServerPlan) -> list[str]:
    """The ``--disaggregation-*`` flags of one prefill or decode rank (none for ``regular``).

    Full flag names of SGLang 0.5.23's parser: the mode, the transfer backend, the bootstrap
    port (prefill only: the decode side learns each prefill server's port from the router's
    request, which the gateway fills from its worker list), and with Mooncake the per-GPU EFA
    device map :data:`IB_DEVICE_FILE` written at boot.
    """
    if server.role == "regular":
        return []
    argv = [MODE_FLAG, server.role, BACKEND_FLAG, spec.pd_transfer_backend]
    if server.bootstrap_port is not None:
        argv += [BOOTSTRAP_FLAG, str(server.bootstrap_port)]
    if spec.pd_transfer_backend == "mooncake":
        argv += [IB_DEVICE_FLAG, IB_DEVICE_FILE]
    return argv


def transfer_env(spec: StackSpec) -> dict[str, str]:
    """Container environment that puts the KV transfer engine on EFA (empty without PD).

    Mooncake: ``MOONCAKE_PROTOCOL=efa`` (SGLang ``environ.py``; default ``rdma``) and
    ``FI_HMEM=cuda`` (libfabric's HMEM interface for GPU buffers; the EFA wheel does not set it,
    Mooncake ``efa_context.cpp`` only defaults it to ``system`` in non-CUDA builds), and
    ``GLOG_logtostderr=1``: Mooncake logs through glog without ``InitGoogleLogging``, which
    writes to stderr, but glog initialized by anything else in the process would send the
    lines the boot check reads to files under ``/tmp`` inside the container.
    NIXL: ``SGLANG_DISAGGREGATION_NIXL_BACKEND=LIBFABRIC`` (SGLang ``environ.py``; default
    ``UCX``) and ``NIXL_LOG_LEVEL=INFO`` (NIXL ``src/utils/common/nixl_log.cpp``; default WARN
    hides the ``Created N rails using provider=efa`` line the boot check reads).
    """
    if not enabled(spec):
        return {}
    if spec.pd_transfer_backend == "mooncake":
        return {"MOONCAKE_PROTOCOL": "efa", "FI_HMEM": "cuda", "GLOG_logtostderr": "1"}
    return {"SGLANG_DISAGGREGATION_NIXL_BACKEND": "LIBFABRIC", "NIXL_LOG_LEVEL": "INFO"}


def node_env(spec: StackSpec, node: NodePlan) -> dict[str, str]:
    """``node.env`` entries of a prefill or decode node (none for a regular node).

    ``SGLANG_POOL`` (``prefill``/``decode``), ``SGLANG_KV_TRANSPORT`` (``mooncake``/``nixl``:
    ``sglang-server-run`` then runs ``sglang-kv-transport watch``, which stops the server when
    the engine did not choose EFA) and ``SGLANG_KV_DEVICES`` (Mooncake only: where
    ``sglang-kv-transport devices`` writes the per-GPU EFA device map at boot).
    """
    if node.role == "regular":
        return {}
    return {
        "SGLANG_POOL": node.role,
        "SGLANG_KV_TRANSPORT": spec.pd_transfer_backend,
        "SGLANG_KV_DEVICES": IB_DEVICE_FILE if spec.pd_transfer_backend == "mooncake" else "",
    }


def image_build_args(spec: StackSpec) -> dict[str, str]:
    """Extra ``docker/Dockerfile`` build args of a PD stack: ``KV_TRANSFER_ENGINE`` =
    ``mooncake`` or ``nixl`` (the Dockerfile installs that engine's EFA build). Empty without
    PD, so the other stacks' build (and their image digest) does not change."""
    return {"KV_TRANSFER_ENGINE": spec.pd_transfer_backend} if enabled(spec) else {}


def pd_workers(layout: Layout, head_ips: Mapping[int, str]) -> list[Worker]:
    """Rank 0 of every server as a router worker, prefill servers first.

    Args:
        layout: the planned layout (:func:`plan_pd_layout`, or a regular one: then every
            worker is ``regular``).
        head_ips: ``{group: private IPv4 of the group's rank-0 node}``.

    Returns:
        One :class:`Worker` per server: ``http://IP:PORT`` of rank 0, its role and (prefill)
        its bootstrap port. Ranks >= 1 are never registered: they answer ``/health`` but 404
        requests (``shared/reference/sglang-serving.md``).
    """
    from infra.planning.gateway import Worker  # gateway -> argv -> pd: imported at call time

    return [Worker(f"http://{head_ips[s.group]}:{s.port}", s.role, s.bootstrap_port) for s in layout.servers]


def pd_document(plan: ClusterPlan, head_ips: Mapping[int, str]) -> dict[str, object]:
    """The plan JSON's ``pd`` section (``{}`` for a stack without PD).

    Returns:
        ``{"pd": {"transfer_backend", "container_env", "pools": {role: {"instance_type",
        "tp_size", "replicas", "nodes"}}, "workers": [{"url", "role", "bootstrap_port"}]}}``;
        ``workers`` is :func:`pd_workers`, what the PD-mode gateway is started with.
    """
    spec = plan.spec
    if not enabled(spec):
        return {}
    pools: dict[str, object] = {}
    for role in POOLS:
        ps = pool_spec(spec, role)
        pools[role] = {
            "instance_type": ps.instance_type,
            "tp_size": ps.tp_size,
            "replicas": ps.replicas,
            "nodes": [n.name for n in plan.layout.nodes if n.role == role],
        }
    return {
        "pd": {
            "transfer_backend": spec.pd_transfer_backend,
            "container_env": transfer_env(spec),
            "pools": pools,
            "workers": [asdict(w) for w in pd_workers(plan.layout, head_ips)],
        }
    }
