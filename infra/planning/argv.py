"""Command lines of the SGLang server ranks and the router. Pure code, full flag names only.

Flag names are those of ``sglang==0.5.23`` and ``sglang-router==0.3.2`` (see
:mod:`infra.planning.flags`); ``tests/conformance`` re-parses every rendered argv with the real
parsers. Never abbreviations: ``--tp`` and ``--dp`` only work as argparse prefixes, ``--pp`` is
ambiguous since SGLang 0.5.8, and ``--enable-ep`` silently means ``--enable-eplb``
(``shared/reference/sglang-serving.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.planning.group import DIST_TIMEOUT_SECS
from infra.planning.layout import ServerPlan
from infra.planning.pd import disaggregation_args
from infra.planning.serving import serving_default_args
from infra.planning.storage import model_path

if TYPE_CHECKING:
    from infra.spec import StackSpec

SERVER_MODULE = ("python3", "-m", "sglang.launch_server")
ROUTER_MODULE = ("python3", "-m", "sglang_router.launch_router")
DIST_INIT_FLAG = "--dist-init-addr"
DIST_TIMEOUT_FLAG = "--dist-timeout"
ROUTER_SYNC_ARGV = ("/usr/bin/python3", "/usr/local/bin/sglang-router-sync", "--interval", "30")
"""The router node's second process (``userdata/sglang-router-sync.service`` runs exactly this):
it re-adds workers the router dropped after ``--worker-startup-timeout-secs``."""


def server_argv(spec: StackSpec, server: ServerPlan, node_rank: int, head_ip: str) -> list[str]:
    """The argv of one server rank, as it runs inside the container.

    Args:
        spec: the stack spec.
        server: the server this rank belongs to.
        node_rank: this node's rank in the server (0 for single-node servers).
        head_ip: private IPv4 of the server's rank-0 node (its own IP on rank 0); ignored for
            single-node servers.

    Returns:
        ``["python3", "-m", "sglang.launch_server", "--model-path", ...]``; the model path is the
        FSx copy (``/fsx/models/<id>``) when the stack has a model store. A prefill or decode
        server (``server.role``) gets :func:`infra.planning.pd.disaggregation_args`; pass the
        pool's spec (:func:`infra.planning.pd.pool_spec`) so ``--tp-size`` is the pool's.
        Multi-node servers get
        ``--dist-timeout`` (:data:`infra.planning.group.DIST_TIMEOUT_SECS` seconds) and end with
        ``--dist-init-addr HEAD_IP:PORT`` (see :func:`split_dist_init`).
    """
    argv = [
        *SERVER_MODULE,
        "--model-path",
        model_path(spec),
        "--served-model-name",
        spec.served_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(server.port),
        "--tp-size",
        str(spec.tp_size),
    ]
    if spec.pp_size > 1:
        argv += ["--pp-size", str(spec.pp_size)]
    if spec.attention_dp:
        # SGLang 0.5.22 deprecated "--dp-size N --enable-dp-attention" for "--attn-dp-size N".
        argv += ["--attn-dp-size", str(spec.dp_size)]
    elif spec.dp_size > 1:
        argv += ["--dp-size", str(spec.dp_size)]
    if spec.ep_size > 1:
        argv += ["--ep-size", str(spec.ep_size)]
    argv += ["--base-gpu-id", str(server.base_gpu_id)]
    if spec.mem_fraction_static:
        # Unset by default: SGLang 0.5.23 then picks it per layout (infra/planning/memory.py).
        argv += ["--mem-fraction-static", f"{spec.mem_fraction_static:g}"]
    if spec.trust_remote_code:
        argv.append("--trust-remote-code")
    argv += serving_default_args(spec)
    # Prefill/decode pools: --disaggregation-mode, transfer backend, bootstrap port, EFA devices.
    argv += disaggregation_args(spec, server)
    argv += list(spec.extra_server_args)
    if server.nnodes > 1:
        # Group restart (issue 6 part 4): bound the rendezvous and collective waits, unless the
        # user set their own value in extra_server_args.
        if not any(a.split("=", 1)[0] == DIST_TIMEOUT_FLAG for a in spec.extra_server_args):
            argv += [DIST_TIMEOUT_FLAG, str(DIST_TIMEOUT_SECS)]
        argv += [
            "--nnodes",
            str(server.nnodes),
            "--node-rank",
            str(node_rank),
            DIST_INIT_FLAG,
            f"{head_ip}:{server.dist_init_port}",
        ]
    return argv


def split_dist_init(argv: list[str]) -> tuple[list[str], str | None]:
    """Split a server argv into the part written to the node and the dist-init address.

    Rank 0 cannot know its own private IP before it exists, so the node receives the argv
    without ``--dist-init-addr``, plus the address in ``node.env``; the boot script appends
    ``--dist-init-addr`` with the head's IP (its own, from IMDS, on rank 0). The plan shows the
    full argv, which is what the container runs.

    Returns:
        ``(argv_without_dist_init, "HOST:PORT" or None)``.
    """
    if DIST_INIT_FLAG not in argv:
        return list(argv), None
    i = argv.index(DIST_INIT_FLAG)
    return argv[:i] + argv[i + 2 :], argv[i + 1]


def router_worker_startup_timeout(spec: StackSpec, total_weights_gib: float) -> int:
    """Seconds the router waits for workers: the spec's value, else sized from the weights.

    A cold node pulls a 20-30 GB image, downloads the checkpoint and loads it; 600 s plus 10 s
    per GiB of weights, at least 1800 s (72B in bf16, 135 GiB: 1980 s). SGLang router issue
    sgl-project/sglang#2778 is the time-out a smaller default causes.
    """
    if spec.router_worker_startup_timeout_secs:
        return spec.router_worker_startup_timeout_secs
    secs = max(1800, 600 + 10 * total_weights_gib)
    return int(-(-secs // 60) * 60)


ROUTER_HEALTH_CHECK_TIMEOUT_SECS = 30
"""``--health-check-timeout-secs`` of the router (sglang-router 0.3.2 defaults to 5 s, checked
with its parser). SGLang's ``/health`` runs a one-token generation and may take up to 20 s on
a busy server (``sglang/srt/entrypoints/http_server.py``, shared/reference "Checked 2026-11"),
so 5 s marks a loaded, healthy worker down after three checks."""


def router_argv(spec: StackSpec, worker_urls: list[str], startup_timeout_secs: int) -> list[str]:
    """The router's argv.

    Args:
        spec: the stack spec.
        worker_urls: ``http://IP:PORT`` of rank 0 of every server (only rank 0 serves requests;
            a rank-1 URL answers ``/health`` but 404s requests).
        startup_timeout_secs: ``--worker-startup-timeout-secs``.

    Returns:
        ``["python3", "-m", "sglang_router.launch_router", "--worker-urls", ...]``.

    No ``--model-path``/``--tokenizer-path``: the HTTP router forwards requests as they are and
    needs no tokenizer. When it registers a worker, 0.3.2 tries the worker's reported
    ``tokenizer_path`` (``/fsx/models/<id>`` with a model store, absent on the router) and
    only logs a WARN after activating the worker; with ``--model-path`` it would load that
    tokenizer at start and exit when the hub is unreachable or the model gated (both run with
    the real binary in ``tests/conformance/test_router_fsx_model_path.py``).
    """
    return [
        *ROUTER_MODULE,
        "--worker-urls",
        *worker_urls,
        "--policy",
        spec.router_policy,
        "--host",
        "0.0.0.0",
        "--port",
        str(spec.router_port),
        "--prometheus-host",
        "0.0.0.0",
        "--prometheus-port",
        str(spec.router_prometheus_port),
        "--worker-startup-timeout-secs",
        str(startup_timeout_secs),
        "--health-check-timeout-secs",
        str(ROUTER_HEALTH_CHECK_TIMEOUT_SECS),
    ]
