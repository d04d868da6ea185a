"""Group restart of a multi-node SGLang server: port, timings and ``--dist-timeout``. Pure code.

A server spanning ``nnodes`` nodes is one torch.distributed world: rank 0 hosts the TCPStore at
``--dist-init-addr`` and every rank holds NCCL communicators with every other. When one rank
dies the others keep a stale rendezvous (a survivor on EFA sits in an NCCL collective until the
watchdog fires; a lone restarted rank reaches the old store and hangs in init), so the ranks
restart as a group, led by rank 0 (``userdata/sglang-group``, one ``sglang-group@SLOT`` unit per
multi-node server on every node):

- rank 0 runs a small HTTP coordinator on :func:`group_port`. Every start of rank 0's server
  opens a new *generation*; rank 0 launches SGLang only once every other rank has joined it;
- ranks >= 1 join the open generation before they start (``ExecStartPre``), restart when rank
  0's generation ends or changes, and stop to wait when rank 0 is silent for
  :data:`LOST_SECS`;
- rank 0 restarts (with exponential backoff, :data:`BACKOFF_SECS` up to
  :data:`BACKOFF_MAX_SECS`) when a joined rank stops, rejoins, or is silent for
  :data:`LOST_SECS`.

Only rank 0 opens generations, so there is one authority and no split brain: a partitioned
rank can only stop and wait. ``--dist-timeout`` (:data:`DIST_TIMEOUT_SECS`) is the backstop for
a hang the coordinator cannot see.
"""

from __future__ import annotations

from infra.planning.layout import DIST_PORT_STRIDE, ServerPlan

GROUP_PORT_OFFSET = DIST_PORT_STRIDE - 1
"""The coordinator listens on ``dist_init_port + 19``: the last port of the server's own
20-port dist-init block. SGLang 0.5.23 binds ``dist_init_port`` (TCPStore) and, with DP
attention, ``dist_init_port + 1 .. + 6`` (``server_args.py`` ``PortArgs.init_new``; the opt-in
``SGLANG_RUST_SERVER`` path adds ``+ 7 + dp_rank``); its NCCL port is picked free in
22000-29999. Multi-node servers run one per node (slot 0), so no other server's block is near."""

DIST_TIMEOUT_SECS = 600
"""``--dist-timeout`` (seconds, an int; SGLang 0.5.23 ``arg_groups/fields/parallel.py`` passes it
to ``torch.distributed.init_process_group(timeout=...)``). It bounds the TCPStore rendezvous
and every collective (NCCL watchdog, gloo CPU groups). Unset, torch 2.13 uses 10 min for NCCL
and the store, 30 min for SGLang's gloo CPU groups (``distributed_c10d._get_default_timeout``). Lower values risk a false failure: the first
collective after weight loading waits for the slowest rank, and ranks >= 1 wait in the
store for rank 0 to import and bind (rank 0 starts last, after every rank has joined)."""

POLL_SECS = 2
"""How often a rank asks rank 0's coordinator for the generation (also its heartbeat)."""
LOST_SECS = 30
"""Silence after which rank 0 counts a peer as gone, and a peer counts rank 0 as gone."""
BACKOFF_SECS = 15
"""Delay before the second coordinator-forced restart of rank 0; it doubles each time."""
BACKOFF_MAX_SECS = 300
"""Longest delay between two forced restarts; the count resets after a generation has served
``2 * BACKOFF_MAX_SECS`` without trouble."""

SYSTEMD_RESTART_SECS = 15
"""``RestartSec=`` of ``userdata/sglang-server@.service`` (the ``boot`` part owns that line)."""
DOCKER_STOP_SECS = 30
"""``docker stop --time`` of the server unit: a rank stuck in NCCL gets SIGKILL after this."""


def group_port(server: ServerPlan) -> int:
    """TCP port of rank 0's group coordinator for ``server`` (``dist_init_port + 19``).

    The nodes' security group allows all traffic between its members (``network.py``), and the
    router's group reaches only the server ports, so only the server's own nodes reach it.
    """
    return server.dist_init_port + GROUP_PORT_OFFSET


def group_env(server: ServerPlan) -> dict[str, str]:
    """``node.env`` entries the group scripts read; empty for a single-node server."""
    if server.nnodes <= 1:
        return {}
    return {
        "SGLANG_GROUP_PORT": str(group_port(server)),
        "SGLANG_GROUP_POLL_SECS": str(POLL_SECS),
        "SGLANG_GROUP_LOST_SECS": str(LOST_SECS),
        "SGLANG_GROUP_BACKOFF_SECS": f"{BACKOFF_SECS} {BACKOFF_MAX_SECS}",
    }


def regroup_bound_secs() -> int:
    """Worst case, in seconds, from a rank's process dying (node still up) until every rank runs
    SGLang again in a new generation; SGLang's own start-up (import, rendezvous, weights, CUDA
    graphs) comes on top.

    The slowest path is a rank that must be stopped: the coordinator sees the exit at once
    (``ExecStopPost``) or within one poll, ``docker stop`` may wait :data:`DOCKER_STOP_SECS` for a
    rank stuck in NCCL, the dead rank waits ``RestartSec``; then one poll to join, one for rank
    0 to see the last join and one for the ranks to see rank 0 launch; 5 s for the image check
    of ``sglang-server-prepare``.
    """
    stop = POLL_SECS + DOCKER_STOP_SECS
    return max(stop, SYSTEMD_RESTART_SECS) + 5 + 3 * POLL_SECS
