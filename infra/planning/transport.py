"""``require_efa``: whether the nodes must prove that NCCL runs on EFA, and what that needs.

On a node, ``userdata/sglang-nccl-transport`` reads the serving container's NCCL log and names
the transport NCCL really picked (``efa``, ``socket``, ``ib``, ``libfabric-other``, ``unknown``);
with ``require_efa`` on, ``userdata/sglang-transport-check`` stops a server on anything but
``efa`` and ``sglang-server-run`` refuses to start it again (exit 78, which the unit's
``RestartPreventExitStatus=78`` makes final). This module decides, before any resource exists,
where that applies and refuses settings that would hide the lines the check reads.

How a node decides (``sglang-nccl-transport``; the shipped script keeps only a summary to save
user-data bytes):

- Per NCCL communicator (each NCCL init), NCCL's own ``Using network NAME`` line decides
  (NCCL v2.28.9-1 ``src/init.cc``: ``INFO(NCCL_INIT, "Using network %s")``): ``Socket`` and
  ``IB`` are NCCL's built-in transports (``src/transport/net_socket.cc``, ``net_ib.cc``);
  ``AWS Libfabric`` (aws-ofi-nccl 1.11 and older, or ``NCCL_NET="AWS Libfabric"``),
  ``Libfabric`` (newer) and ``OFI`` (with ``NCCL_NET=OFI``) are aws-ofi-nccl
  (``src/nccl_ofi_interface_nvidia.cpp``, ``nvidia_plugin_name_fixup``).
- Libfabric is ``efa`` only when aws-ofi-nccl chose libfabric's efa provider in the same process
  (NCCL's line prefix ``host:pid:tid [dev]``, ``src/debug.cc``): ``NET/OFI Selected provider is
  efa, fabric is efa-direct (found 32 nics)`` (aws-ofi-nccl >= 1.14, ``src/nccl_ofi_net.cpp``)
  or ``NET/OFI Selected Provider is efa (found 4 nics)`` (1.7 to 1.13). Any other provider
  (``tcp;ofi_rxm``, ``sockets``) is ``libfabric-other``: the plugin loaded, the bytes go over
  TCP. Libfabric without a provider line is ``unknown``.
- ``NET/OFI Initializing aws-ofi-nccl`` proves nothing: the plugin prints it before it chooses a
  provider; it can then find none (or refuse libfabric < 1.22 after selecting efa) and NCCL
  falls back to sockets. ``tests/fixtures/nccl/constructed/trap-*.log`` are those two cases.
- Ranks that disagree: the worst wins, in the order socket, libfabric-other, unknown, ib, efa.
  One rank on TCP makes every collective of the server wait for it, so the server is as slow as
  that rank; ``unknown`` ranks cannot vouch for EFA.
- Several NCCL inits of one rank (SGLang creates several communicators per rank): all count,
  worst wins. Several server starts appended to one file (``/var/log/sglang/server-SLOT.log``):
  only the latest start counts, because earlier processes are gone and cannot slow the server;
  a start begins at SGLang's ``server_args=`` line (logged once per launch_server before any
  rank initializes NCCL, ``sglang/srt/entrypoints/engine.py``) or at ``sglang-server-run``'s
  ``starting rank R of N`` line. A ``docker logs`` of the serving container holds one start (it
  is recreated on every start); a pid that prints NCCL's banner again is a new process.
- ``--ranks N`` (the watcher passes tp x pp / nnodes, this node's ranks): ``unknown`` until N
  ranks logged a network, unless one already shows socket or libfabric-other.

How the server fails (systemd, every node of the server): ``sglang-server-run`` starts
``sglang-transport-check SLOT`` in the background, inside the server unit's cgroup, so it lives
and dies with that start. It polls ``docker logs`` every 10 s until this node's ranks decide
(NCCL picks its network when the ranks initialize it, before the weights load); after 1800 s it
decides on the ranks that printed a network, and when none did (a peer node still pulling its
image: the rendezvous is not done) it logs one WARNING and keeps watching, because stopping then
would turn a slow peer into a final failure (the rendezvous timeout and rank 0's bounded ready
check end that wait). On anything but efa it writes
one ``ERROR:`` line (transport, deciding rank, the server log and ``/etc/sglang/container.env``
to look at, how to retry) to the server log and the journal, leaves
``/run/sglang/server-SLOT.transport-failed`` and ``docker kill``s the container. systemd restarts
the failed unit once (``Restart=always``); ``sglang-server-run`` sees the marker and exits
78, which ``RestartPreventExitStatus=78`` makes final: the unit stays failed, no loop, until
someone removes the marker (or reboots: ``/run`` is tmpfs). On rank 0, ``sglang-wait-ready``
fails as soon as the marker exists and, once the server answers, takes one more reading
(``--once``) before it writes the ready file; the router only ever sees an unhealthy worker.

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
    if net is not None and not ("libfabric" in net.lower() or net.lower() == "ofi"):
        raise SpecError(
            key,
            f"NCCL_NET={net} keeps NCCL off aws-ofi-nccl (EFA), so require_efa would stop every "
            "server; remove it or set require_efa false",
        )
    _check_plugin_env(env)


def _check_plugin_env(env: Mapping[str, str]) -> None:
    """Refuse ``server_env`` entries that keep aws-ofi-nccl or libfabric's efa provider from
    loading, so the server would only be stopped once its nodes have booted and pulled the image.

    - ``NCCL_NET_PLUGIN``: NCCL 2.28 opens ``libnccl-net-NAME.so`` (or the path given) and uses
      its internal Socket/IB transports when it is ``none`` or another plugin (NCCL
      ``src/plugin/plugin_open.cc``); only aws-ofi-nccl (``ofi``, ``libnccl-net-ofi.so`` or a
      path to it) reaches EFA.
    - ``FI_PROVIDER``: libfabric uses only the providers listed (a ``^`` list excludes them);
      without ``efa`` aws-ofi-nccl selects ``tcp``/``sockets`` or none (libfabric ``fi_getinfo``,
      ``man fi_provider``).
    - ``LD_LIBRARY_PATH``: ``docker run --env-file`` passes the value as written, with no
      ``${...}`` expansion, and it replaces the image's own value, which puts the plugin and the
      installer's libfabric on the loader path (``docker/Dockerfile``); without those two
      directories NCCL does not find ``libnccl-net-ofi.so`` or the plugin binds a distro
      libfabric, and NCCL falls back to sockets.
    """
    key = qualified("server_env")
    plugin = env.get("NCCL_NET_PLUGIN")
    if plugin is not None and "ofi" not in plugin.lower():
        raise SpecError(
            key,
            f"NCCL_NET_PLUGIN={plugin} keeps NCCL from loading aws-ofi-nccl "
            "(libnccl-net-ofi.so), so NCCL uses TCP sockets and require_efa would stop every "
            "server; remove it (the container sets NCCL_NET_PLUGIN=ofi) or set require_efa false",
        )
    providers = env.get("FI_PROVIDER")
    if providers is not None:
        names = [p.strip().lower().split(";")[0] for p in providers.removeprefix("^").split(",")]
        if providers.startswith("^") == ("efa" in names):
            raise SpecError(
                key,
                f"FI_PROVIDER={providers} keeps libfabric off its efa provider, so aws-ofi-nccl "
                "cannot use EFA and require_efa would stop every server; remove it (the "
                "container sets FI_PROVIDER=efa) or set require_efa false",
            )
    path = env.get("LD_LIBRARY_PATH")
    if path is not None:
        entries = path.split(":")
        missing = [
            d for d in (OFI_NCCL_DIR, EFA_LIB_DIR) if not any(e.rstrip("/").startswith(d) for e in entries)
        ]
        if "$" in path or missing:
            why = (
                "docker passes it without expanding ${...}"
                if "$" in path
                else f"it lacks {' and '.join(missing)}"
            )
            raise SpecError(
                key,
                f"LD_LIBRARY_PATH={path} replaces the image's own value and {why}: NCCL would "
                f"not load aws-ofi-nccl from {OFI_NCCL_DIR}/lib with the EFA installer's "
                f"libfabric ({EFA_LIB_DIR}/lib) and would fall back to TCP sockets; remove it, or "
                f"start it with {OFI_NCCL_DIR}/lib:{EFA_LIB_DIR}/lib, or set require_efa false",
            )


OFI_NCCL_DIR = "/opt/amazon/ofi-nccl"
"""Where the EFA installer puts aws-ofi-nccl (``lib/libnccl-net-ofi.so``; ``docker/Dockerfile``)."""
EFA_LIB_DIR = "/opt/amazon/efa"
"""Where the EFA installer puts libfabric (``lib/libfabric.so.1``)."""


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
            lines or bypasses aws-ofi-nccl, or with an ``NCCL_NET_PLUGIN``, ``FI_PROVIDER`` or
            ``LD_LIBRARY_PATH`` that keeps aws-ofi-nccl or the efa provider from loading
            (:func:`_check_plugin_env`), while the check is on.
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
