"""The layout planner: servers, nodes, ranks, GPUs and ports from a spec. Pure code.

Terms:
- *server*: one ``sglang.launch_server`` instance (one OpenAI endpoint, one router worker). It
  uses ``tp_size * pp_size`` GPUs, times ``dp_size`` when ``dp_size`` replicas run inside it
  without attention DP.
- *node group*: the nodes that host the same servers. A server that needs more GPUs than a node
  has spans ``nodes_per_server`` whole nodes (node ranks 0..n-1); smaller servers are packed
  ``servers_per_node`` to a node with distinct ``--base-gpu-id`` and ports.
- Node names are ``server-g<group>-r<rank>``: stable for a given layout, never a list position
  that shifts when something else changes.

SGLang rules enforced here are the ones SGLang 0.5.23 itself checks at start-up (a node that
fails them burns an hour of p5 time before anyone reads the log), with the source file in
``sglang/srt/`` named at each rule; the project's own rules say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from infra.planning.catalog import InstanceType
from infra.planning.memory import MemoryFit, check_memory_fit
from infra.planning.shapes import ModelShape
from infra.spec import SpecError, StackSpec, qualified

Role = Literal["regular", "prefill", "decode"]
"""What a server does: serve whole requests (``regular``), or one side of prefill/decode
disaggregation (``--disaggregation-mode prefill|decode``, :mod:`infra.planning.pd`)."""

SERVER_PORT_STRIDE = 10
"""Port distance between servers packed on one node. SGLang 0.5.23 also binds
``port + 233`` for single-node DP attention (``ZMQ_TCP_PORT_DELTA``), far above 8 x 10."""

DIST_PORT_STRIDE = 20
"""Distance between ``--dist-init-addr`` ports on one node: SGLang binds the port, ``port+1``
to ``port+6`` and ``port+13`` with DP attention (``server_args.py`` ``PortArgs.init_new``)."""


@dataclass(frozen=True)
class ServerPlan:
    """One SGLang server.

    Attributes:
        index: server number, 0..replicas-1 (``s<index>`` in names).
        group: node group hosting it.
        slot: position among the servers of its node (0 for multi-node servers).
        nnodes: nodes the server spans (``--nnodes``).
        gpus: GPUs the server uses in total.
        gpus_per_node: GPUs it uses on each of its nodes.
        base_gpu_id: first GPU on each node (``--base-gpu-id``).
        port: HTTP port (``--port``); rank 0's is the router worker URL.
        dist_init_port: port of ``--dist-init-addr`` (used when ``nnodes > 1``).
        role: ``regular``, or ``prefill``/``decode`` in a disaggregated stack.
        bootstrap_port: ``--disaggregation-bootstrap-port`` of a prefill server (the port its
            decode peers fetch KV-transfer metadata from); ``None`` for other roles.
    """

    index: int
    group: int
    slot: int
    nnodes: int
    gpus: int
    gpus_per_node: int
    base_gpu_id: int
    port: int
    dist_init_port: int
    role: Role = "regular"
    bootstrap_port: int | None = None

    @property
    def name(self) -> str:
        """Stable server name, ``s<index>``."""
        return f"s{self.index}"


@dataclass(frozen=True)
class NodePlan:
    """One GPU node.

    Attributes:
        name: stable logical name ``server-g<group>-r<rank>``.
        group: node group index.
        rank: node rank inside the group (``--node-rank`` of its multi-node server).
        servers: servers with a rank on this node, by slot.
        instance_type: EC2 type of this node; ``""`` = the spec's ``instance_type`` (a
            disaggregated stack gives each pool its own type).
    """

    name: str
    group: int
    rank: int
    servers: tuple[ServerPlan, ...]
    instance_type: str = ""

    @property
    def role(self) -> Role:
        """The role of the node's servers (one pool per node group)."""
        return self.servers[0].role if self.servers else "regular"

    @property
    def is_head(self) -> bool:
        """True for rank 0, whose private IP is the others' dist-init address."""
        return self.rank == 0


@dataclass(frozen=True)
class Layout:
    """The planned layout of one stack.

    Attributes:
        gpus_per_server: GPUs one server uses.
        nodes_per_server: nodes one server spans (1 when servers are packed).
        servers_per_node: servers on one node (1 when a server spans nodes).
        groups: number of node groups.
        servers: every server, by index.
        nodes: every GPU node, by group then rank.
        total_gpus: GPUs of all nodes (including idle ones).
        used_gpus: GPUs the servers use.
        memory: the memory-fit figures for one GPU.
    """

    gpus_per_server: int
    nodes_per_server: int
    servers_per_node: int
    groups: int
    servers: tuple[ServerPlan, ...]
    nodes: tuple[NodePlan, ...]
    total_gpus: int
    used_gpus: int
    memory: MemoryFit


def _server_gpus(spec: StackSpec) -> int:
    per_replica = spec.tp_size * spec.pp_size
    return per_replica if spec.attention_dp else per_replica * spec.dp_size


def _check_parallelism(spec: StackSpec, shape: ModelShape, node: InstanceType) -> None:
    """Rules on tp/pp/dp/ep that SGLang 0.5.23 checks, plus the model-shape ones."""
    if spec.attention_dp:
        if spec.dp_size < 2:
            raise SpecError(
                qualified("dp_size"),
                f"attention_dp needs dp_size > 1 (got {spec.dp_size}); SGLang renders it as "
                "--attn-dp-size dp_size",
            )
        if spec.tp_size % spec.dp_size:
            raise SpecError(
                qualified("dp_size"),
                f"with attention_dp, dp_size ({spec.dp_size}) must divide tp_size "
                f"({spec.tp_size}): attention runs tp_size/dp_size-way TP inside each DP rank",
            )
    if spec.ep_size > 1:
        if not shape.is_moe and shape.layers:
            raise SpecError(
                qualified("ep_size"),
                f"{spec.model} is a dense model; expert parallelism (ep_size {spec.ep_size}) "
                "applies to MoE models only, set ep_size to 1",
            )
        if spec.tp_size % spec.ep_size:
            raise SpecError(
                qualified("ep_size"),
                f"ep_size ({spec.ep_size}) must divide tp_size ({spec.tp_size}): SGLang places "
                "expert parallelism inside the TP group (moe_tp_size = tp_size / ep_size)",
            )
        if shape.experts and shape.experts % spec.ep_size:
            raise SpecError(
                qualified("ep_size"),
                f"{spec.model} has {shape.experts} experts, not divisible by ep_size {spec.ep_size}",
            )
    if shape.attention_heads:
        attn_tp = spec.tp_size // spec.dp_size if spec.attention_dp else spec.tp_size
        if shape.attention_heads % attn_tp:
            raise SpecError(
                qualified("tp_size"),
                f"{spec.model} has {shape.attention_heads} attention heads, not divisible by "
                f"the attention TP size {attn_tp}; pick a tp_size that divides "
                f"{shape.attention_heads}",
            )
    if shape.layers and spec.pp_size > shape.layers:
        raise SpecError(
            qualified("pp_size"),
            f"pp_size ({spec.pp_size}) exceeds the {shape.layers} layers of {spec.model}",
        )
    gpus = _server_gpus(spec)
    if spec.dp_size > 1 and not spec.attention_dp and gpus > node.gpus:
        raise SpecError(
            qualified("dp_size"),
            f"dp_size {spec.dp_size} without attention_dp runs {spec.dp_size} replicas inside one "
            f"server ({gpus} GPUs), more than one {node.name} has ({node.gpus}); SGLang does not "
            "run multi-node --dp-size replicas without DP attention. Use replicas "
            f"{spec.dp_size * spec.replicas} with dp_size 1 (independent servers behind the "
            "router) or set attention_dp",
        )


def plan_layout(spec: StackSpec, role: Role = "regular") -> Layout:
    """Plan servers and nodes for ``spec`` (one PD pool's spec with its ``role``,
    :mod:`infra.planning.pd`; the role only changes the memory-fit figures).

    Returns:
        The :class:`Layout`; ``len(layout.nodes)`` GPU nodes of ``spec.instance_type``.

    Raises:
        SpecError: when SGLang would refuse the layout, when servers would straddle nodes
            partially, when a multi-node server has no EFA, when ``node_count`` disagrees, or when
            the weights do not fit (message in GiB).
    """
    node = spec.node_type
    shape = spec.shape()
    _check_parallelism(spec, shape, node)

    gpus = _server_gpus(spec)
    n = node.gpus
    if gpus > n:
        # SGLang: (tp_size * pp_size) % nnodes == 0, and our rule: a server fills whole nodes.
        if gpus % n:
            raise SpecError(
                qualified("tp_size"),
                f"a server needs {gpus} GPUs (tp_size {spec.tp_size} x pp_size {spec.pp_size}), "
                f"which is not a whole number of {node.name} nodes ({n} GPUs each); use a "
                f"multiple of {n}",
            )
        nodes_per_server = gpus // n
        if not node.has_efa:
            raise SpecError(
                qualified("instance_type"),
                f"a server spanning {nodes_per_server} nodes needs EFA for NCCL, and "
                f"{node.name} has none (NCCL would run over TCP sockets); pick a type with EFA "
                "or a layout that fits one node",
            )
        if spec.servers_per_node not in (0, 1):
            raise SpecError(
                qualified("servers_per_node"),
                f"must be 0 or 1 when a server spans {nodes_per_server} nodes (got {spec.servers_per_node})",
            )
        servers_per_node = 1
    else:
        if n % gpus:
            raise SpecError(
                qualified("tp_size"),
                f"a server needs {gpus} GPUs, which does not divide the {n} GPUs of a "
                f"{node.name}; servers never straddle nodes partially, use a divisor of {n}",
            )
        nodes_per_server = 1
        fit = n // gpus
        servers_per_node = spec.servers_per_node or min(fit, spec.replicas)
        if servers_per_node > fit:
            raise SpecError(
                qualified("servers_per_node"),
                f"{servers_per_node} servers of {gpus} GPUs do not fit a {node.name} ({n} GPUs); "
                f"allowed: 1 to {fit}",
            )
        if spec.replicas % servers_per_node:
            raise SpecError(
                qualified("replicas"),
                f"replicas ({spec.replicas}) must be a multiple of servers_per_node "
                f"({servers_per_node}) so every node runs the same servers",
            )

    groups = math.ceil(spec.replicas / servers_per_node)
    node_total = groups * nodes_per_server
    if spec.node_count and spec.node_count != node_total:
        raise SpecError(
            qualified("node_count"),
            f"the layout needs {node_total} x {node.name} ({spec.replicas} replicas x "
            f"{gpus} GPUs), not {spec.node_count}; fix node_count or the layout keys",
        )

    memory = check_memory_fit(spec, shape, node, role)

    servers: list[ServerPlan] = []
    for index in range(spec.replicas):
        group, slot = divmod(index, servers_per_node)
        servers.append(
            ServerPlan(
                index=index,
                group=group,
                slot=slot,
                nnodes=nodes_per_server,
                gpus=gpus,
                gpus_per_node=min(gpus, n),
                base_gpu_id=slot * gpus if nodes_per_server == 1 else 0,
                port=spec.server_port + slot * SERVER_PORT_STRIDE,
                dist_init_port=spec.dist_init_port + slot * DIST_PORT_STRIDE,
            )
        )
    nodes = tuple(
        NodePlan(
            name=f"server-g{g}-r{r}",
            group=g,
            rank=r,
            servers=tuple(s for s in servers if s.group == g),
        )
        for g in range(groups)
        for r in range(nodes_per_server)
    )
    return Layout(
        gpus_per_server=gpus,
        nodes_per_server=nodes_per_server,
        servers_per_node=servers_per_node,
        groups=groups,
        servers=tuple(servers),
        nodes=nodes,
        total_gpus=node_total * n,
        used_gpus=gpus * spec.replicas,
        memory=memory,
    )
