"""``require_efa``: whether the nodes must prove that NCCL runs on EFA, and what that needs.

On a node, ``userdata/sglang-nccl-transport`` reads the serving container's NCCL log and names
the transport NCCL really picked (``efa``, ``socket``, ``ib``, ``libfabric-other``, ``unknown``);
with ``require_efa`` on, ``userdata/sglang-transport-check`` stops a server on anything but
``efa`` and ``sglang-server-run`` refuses to start it again (exit 78, which the unit's
``RestartPreventExitStatus=78`` makes final). This module decides, before any resource exists,
where that applies and refuses settings that would hide the lines the check reads.

Why: NCCL falls back to TCP sockets without an error when aws-ofi-nccl fails to load or finds no
EFA provider; NVIDIA measured a time to first token of about 98 s on that fallback against about
1 s on EFA (Dynamo EKS EFA guide, see ``shared/reference/aws-gpu-clusters.md``).
"""

from __future__ import annotations

from collections.abc import Mapping

from infra.planning.layout import Layout
from infra.spec import SpecError, StackSpec, qualified

LINES = "'NCCL INFO Using network ...' and 'NET/OFI Selected provider is ...'"
"""The INFO lines the check reads: NCCL ``src/init.cc`` (subsystem INIT) and aws-ofi-nccl
``src/nccl_ofi_net.cpp`` (subsystems INIT|NET)."""


def _subsys_has_init(value: str) -> bool:
    """True when ``NCCL_DEBUG_SUBSYS=value`` keeps the INIT subsystem.

    NCCL ``src/debug.cc`` (v2.28.9): a comma list of names (``ALL`` for all), a leading ``^``
    inverts the list; names compare case-insensitively.
    """
    invert = value.startswith("^")
    names = {n.strip().upper() for n in value.removeprefix("^").split(",")}
    listed = bool(names & {"INIT", "ALL"})
    return listed != invert


def _check_env(env: Mapping[str, str]) -> None:
    """Refuse ``server_env`` entries that hide or bypass the lines the check reads."""
    key = qualified("server_env")
    debug = env.get("NCCL_DEBUG")
    if debug is not None and debug.upper() != "INFO":
        raise SpecError(
            key,
            f"NCCL_DEBUG={debug} hides {LINES}, which require_efa needs; remove it (nccl_debug "
            "sets INFO) or set require_efa false",
        )
    subsys = env.get("NCCL_DEBUG_SUBSYS")
    if subsys is not None and not _subsys_has_init(subsys):
        raise SpecError(
            key,
            f"NCCL_DEBUG_SUBSYS={subsys} drops NCCL's INIT lines ({LINES}), which require_efa "
            "needs; include INIT or remove it, or set require_efa false",
        )
    if "NCCL_DEBUG_FILE" in env:
        raise SpecError(
            key,
            "NCCL_DEBUG_FILE sends NCCL's lines to a file inside the container, where the "
            "require_efa check cannot read them; remove it or set require_efa false",
        )
    net = env.get("NCCL_NET")
    if net is not None and "libfabric" not in net.lower():
        raise SpecError(
            key,
            f"NCCL_NET={net} keeps NCCL off aws-ofi-nccl (EFA), so require_efa would stop every "
            "server; remove it or set require_efa false",
        )


def require_efa(spec: StackSpec, layout: Layout) -> bool:
    """Whether GPU nodes must prove that NCCL runs on EFA, else stop their server.

    ``auto`` (the default) is true exactly when a server spans several nodes (``nnodes > 1``):
    only then does NCCL traffic cross nodes, and the layout planner already refuses such a server
    on a type without EFA. ``false`` turns the check off (the ready check on rank 0 still logs
    the transport). ``true`` where every server fits one node is refused: NCCL stays on NVLink
    inside the node, EFA carries none of its traffic, and the check would stop a server that
    runs at full speed.

    Args:
        spec: the validated spec.
        layout: its planned layout.

    Returns:
        True when the nodes enforce EFA (``SGLANG_REQUIRE_EFA=1`` in ``/etc/sglang/node.env``).

    Raises:
        SpecError: ``require_efa`` true with single-node servers or a type without EFA;
            ``nccl_debug`` other than INFO, or ``server_env`` with an ``NCCL_DEBUG``,
            ``NCCL_DEBUG_SUBSYS``, ``NCCL_DEBUG_FILE`` or ``NCCL_NET`` that hides NCCL's INFO
            lines or bypasses aws-ofi-nccl, while the check is on.
    """
    node = spec.node_type
    if spec.require_efa == "false":
        return False
    if spec.require_efa == "true" and not node.has_efa:
        raise SpecError(
            qualified("require_efa"),
            f"true needs EFA and {node.name} has none; leave require_efa unset (auto) or false",
        )
    if spec.require_efa == "true" and layout.nodes_per_server == 1:
        raise SpecError(
            qualified("require_efa"),
            f"true needs a server that spans nodes, and every server of this layout fits one "
            f"{node.name} ({layout.gpus_per_server} GPUs): NCCL stays inside the node and EFA "
            "carries none of its traffic; leave require_efa unset (auto) or false",
        )
    if layout.nodes_per_server == 1:
        return False
    if spec.nccl_debug != "INFO":
        raise SpecError(
            qualified("nccl_debug"),
            f"must be INFO while require_efa is on (got {spec.nccl_debug!r}): the check reads "
            f"{LINES}; set nccl_debug INFO or require_efa false",
        )
    _check_env(spec.env_map)
    return True
