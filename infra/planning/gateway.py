"""The gateway (router) in front of the servers: its argv, its worker list, its refusals.

Pure code. One builder, :func:`gateway_argv`, for both packages the spec's ``gateway`` key
chooses:

- ``smg`` (default, PyPI ``smg==SMG_VERSION``, ``smg launch``): the maintained successor of
  sglang-router. Its workers come from a discovery manifest (``--discovery-provider file
  --discovery-file DISCOVERY_FILE``, :func:`discovery_manifest`) that smg rereads when it
  changes and every 30 s. smg 1.13.0, seen on loopback (``tests/conformance/test_gateway_live.py``):
  a manifest worker that is down when smg starts is registered as soon as it answers, long
  after ``--worker-startup-timeout-secs``; with ``--remove-unhealthy-workers`` (its default
  under discovery, rendered explicitly) a worker that fails ``--health-failure-threshold``
  checks is removed and the next reread registers it again once it is healthy. So no
  ``sglang-router-sync`` process runs next to smg. Discovery turns on smg's multi-model mode
  ("IGW"): OpenAI routes are unchanged, but a native ``/generate`` request must name its
  ``model``.
- ``sglang-router`` (PyPI ``sglang-router==0.3.2``, the last release, ``python3 -m
  sglang_router.launch_router``): workers on the command line (``--worker-urls``, or
  ``--prefill URL [BOOTSTRAP_PORT]`` / ``--decode URL`` in PD mode); it drops a worker that is
  not healthy within the start-up timeout, so ``userdata/sglang-router-sync`` re-adds it
  through ``POST /workers``.

Every flag is checked against each package's own argparse parser
(``tests/conformance/test_gateway_parser.py``). Flags and refusals: smg 1.13.0
``smg/router_args.py`` and sglang-router 0.3.2 ``sglang_router/router_args.py`` (PyPI wheels,
read 2026-11-21), and both binaries run on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from infra.planning import flags
from infra.planning.argv import ROUTER_MODULE, ROUTER_SYNC_ARGV
from infra.spec.base import SpecError, qualified

if TYPE_CHECKING:
    from infra.spec import StackSpec

SMG_VERSION = "1.13.0"
"""smg release the router node installs (latest on PyPI 2026-11-21)."""

GATEWAY_PACKAGES: dict[str, str] = {
    "smg": f"smg=={SMG_VERSION}",
    "sglang-router": f"sglang-router=={flags.ROUTER_VERSION}",
}
"""pip requirement of each gateway, installed into ``/opt/sglang-router`` on the router node."""

GATEWAY_MODULES: dict[str, str] = {"smg": "smg", "sglang-router": "sglang_router"}
"""Python package each gateway installs (``sglang-router-install`` imports it to skip a reinstall)."""

SMG_COMMAND = ("smg", "launch")

DISCOVERY_FILE = "/etc/sglang/gateway-workers.json"
"""smg's worker manifest on the router node (written from user data, read by smg)."""
DISCOVERY_VERSION = 1
"""The manifest format smg 1.13.0 reads (``{"version": 1, "workers": [...]}``; another version
is refused with "unsupported version")."""

Role = Literal["regular", "prefill", "decode"]


@dataclass(frozen=True)
class Worker:
    """One server the gateway routes to: rank 0 of a server group.

    Attributes:
        url: ``http://IP:PORT`` of the server's rank 0 (a rank >= 1 answers ``/health`` but
            404s requests).
        role: ``regular``, or ``prefill``/``decode`` in PD disaggregation.
        bootstrap_port: a prefill server's ``--disaggregation-bootstrap-port`` (None: the
            gateway leaves it out and SGLang's default 8998 applies).
    """

    url: str
    role: Role = "regular"
    bootstrap_port: int | None = None


def is_pd(workers: Sequence[Worker]) -> bool:
    """True when any worker is a prefill or decode worker (the gateway runs in PD mode)."""
    return any(w.role != "regular" for w in workers)


def check_gateway(spec: StackSpec, workers: Sequence[Worker]) -> None:
    """Refuse what the gateway itself would refuse at start, before anything is created.

    Both gateways exit at start with "Power-of-two policy requires at least 2 workers" (and the
    "for prefill"/"for decode" variants for ``--prefill-policy``/``--decode-policy``); seen with
    smg 1.13.0 and sglang-router 0.3.2 on loopback, 2026-11-21. In PD mode a plain
    ``--policy power_of_two`` with one worker per pool is accepted by both, so it passes here.

    Raises:
        SpecError: power_of_two with fewer than two workers of the pool it routes; a PD layout
            without a prefill or without a decode worker; a prefill/decode policy without PD.
    """
    if not workers:
        raise SpecError("", "the gateway needs at least one worker")
    if not is_pd(workers):
        if spec.router_policy == "power_of_two" and len(workers) < 2:
            raise SpecError(
                qualified("router_policy"),
                "power_of_two needs at least 2 workers and this layout has 1 server (the "
                "gateway refuses to start); use cache_aware or add replicas",
            )
        for key in ("router_prefill_policy", "router_decode_policy"):
            if getattr(spec, key):
                raise SpecError(qualified(key), "applies to prefill/decode disaggregation only")
        return
    pools = {"prefill": 0, "decode": 0}
    for w in workers:
        if w.role == "regular":
            raise SpecError("", f"worker {w.url} is neither prefill nor decode in a PD layout")
        pools[w.role] += 1
    for role, count in pools.items():
        if count == 0:
            raise SpecError("", f"PD disaggregation needs at least one {role} server")
        key = f"router_{role}_policy"
        if getattr(spec, key) == "power_of_two" and count < 2:
            raise SpecError(
                qualified(key),
                f"power_of_two needs at least 2 {role} workers and the layout has {count} (the "
                "gateway refuses to start); use cache_aware or round_robin",
            )


def discovery_manifest(workers: Sequence[Worker]) -> dict[str, Any]:
    """smg's file-discovery manifest for ``workers``.

    Returns:
        ``{"version": 1, "workers": [{"url": ..., "worker_type": "regular"|"prefill"|"decode",
        "bootstrap_port": N}, ...]}`` (``bootstrap_port`` on prefill workers that have one).
        smg 1.13.0 accepts per worker only ``id``, ``url``, ``worker_type``,
        ``bootstrap_port``, ``model_id``, ``kv_connector``, ``kv_role``, ``kv_engine_id``
        (its error for an unknown field lists them).
    """
    out: list[dict[str, Any]] = []
    for w in workers:
        entry: dict[str, Any] = {"url": w.url, "worker_type": w.role}
        if w.role == "prefill" and w.bootstrap_port is not None:
            entry["bootstrap_port"] = w.bootstrap_port
        out.append(entry)
    return {"version": DISCOVERY_VERSION, "workers": out}


def discovery_manifest_text(workers: Sequence[Worker]) -> str:
    """:func:`discovery_manifest` as the file's text (stable key order, newline at the end)."""
    return json.dumps(discovery_manifest(workers), indent=1) + "\n"


def _common_flags(spec: StackSpec, startup_timeout_secs: int) -> list[str]:
    return [
        "--host",
        "0.0.0.0",
        "--port",
        str(spec.router_port),
        "--prometheus-host",
        spec.router_prometheus_host,
        "--prometheus-port",
        str(spec.router_prometheus_port),
        "--worker-startup-timeout-secs",
        str(startup_timeout_secs),
        "--health-check-interval-secs",
        str(spec.router_health_check_interval_secs),
        "--health-check-timeout-secs",
        str(spec.router_health_check_timeout_secs),
        "--health-failure-threshold",
        str(spec.router_health_failure_threshold),
        "--retry-max-retries",
        str(spec.router_max_retries),
    ]


def _policy_flags(spec: StackSpec, pd: bool) -> list[str]:
    out = [
        "--policy",
        spec.router_policy,
        "--cache-threshold",
        f"{spec.router_cache_threshold:g}",
        "--balance-abs-threshold",
        str(spec.router_balance_abs_threshold),
        "--balance-rel-threshold",
        f"{spec.router_balance_rel_threshold:g}",
    ]
    if pd and spec.router_prefill_policy:
        out += ["--prefill-policy", spec.router_prefill_policy]
    if pd and spec.router_decode_policy:
        out += ["--decode-policy", spec.router_decode_policy]
    return out


def gateway_argv(spec: StackSpec, workers: Sequence[Worker], startup_timeout_secs: int) -> list[str]:
    """The gateway's argv on the router node (without ``--api-key``: ``sglang-router-run``
    appends it from the secret it reads at boot, so the key never reaches user data or plan).

    Args:
        spec: the stack spec (``gateway``, ``router_*`` keys).
        workers: rank 0 of every server; PD mode when any has a prefill/decode role.
        startup_timeout_secs: ``--worker-startup-timeout-secs`` (seconds).

    Returns:
        smg: ``["smg", "launch", "--discovery-provider", "file", "--discovery-file",
        DISCOVERY_FILE, ...]`` (the workers are in :func:`discovery_manifest`, and PD mode adds
        ``--pd-disaggregation``); sglang-router: ``["python3", "-m",
        "sglang_router.launch_router", "--worker-urls", URL, ...]`` or, in PD mode,
        ``--pd-disaggregation --prefill URL [BOOTSTRAP_PORT] ... --decode URL ...``. Full flag
        names of each package's parser, no ``--model-path`` (the HTTP gateway passes requests
        through; see :func:`infra.planning.argv.router_argv`).

    Raises:
        SpecError: what :func:`check_gateway` refuses.
    """
    check_gateway(spec, workers)
    pd = is_pd(workers)
    if spec.gateway == "smg":
        argv = [*SMG_COMMAND, "--discovery-provider", "file", "--discovery-file", DISCOVERY_FILE]
        # Under discovery smg removes a worker that failed its health checks so the next
        # manifest reread registers it again when it is back; rendered, not left to the default.
        argv.append("--remove-unhealthy-workers")
        if pd:
            argv.append("--pd-disaggregation")
    elif pd:
        argv = [*ROUTER_MODULE, "--pd-disaggregation"]
        for w in workers:
            if w.role == "prefill":
                argv += ["--prefill", w.url]
                if w.bootstrap_port is not None:
                    argv.append(str(w.bootstrap_port))
        for w in workers:
            if w.role == "decode":
                argv += ["--decode", w.url]
    else:
        argv = [*ROUTER_MODULE, "--worker-urls", *(w.url for w in workers)]
    from infra.planning.endpoint import gateway_keepalive_args

    # Behind a load balancer smg must keep idle connections open longer than the ALB does, or a
    # request can land on a connection smg is closing (502): infra/planning/endpoint.py.
    return (
        argv
        + _policy_flags(spec, pd)
        + _common_flags(spec, startup_timeout_secs)
        + gateway_keepalive_args(spec, spec.gateway)
    )


def gateway_processes(spec: StackSpec, argv: list[str]) -> list[list[str]]:
    """Every long-running process of the router node: the gateway, plus the worker re-adder
    with sglang-router (smg discovers its workers itself)."""
    if spec.gateway == "smg":
        return [argv]
    return [argv, list(ROUTER_SYNC_ARGV)]


def gateway_warnings(spec: StackSpec, api_key_set: bool) -> list[str]:
    """Plain plan warnings about the gateway itself.

    Args:
        spec: the stack spec (``client_cidrs``).
        api_key_set: whether the stack sets ``router_api_key``.

    Returns:
        One line when no API key is set: both gateways then answer their control plane
        (``POST /workers``, ``DELETE /workers/{id}``) without authentication, so any client in
        ``client_cidrs`` can register its own URL as a worker and receive prompts, or remove
        the real ones (smg 1.13.0 and sglang-router 0.3.2 on loopback, 2026-11-21: ``POST
        /workers`` 202 without a key, 401 with ``--api-key`` set;
        ``tests/conformance/test_gateway_native_generate.py``).
    """
    if api_key_set:
        return []
    return [
        f"{qualified('router_api_key')}: not set: the gateway's worker API (POST /workers, DELETE "
        f"/workers/ID) answers without authentication, so any client in client_cidrs "
        f"({', '.join(spec.client_cidrs) or 'none'}) can add its own URL as a worker (and receive "
        "prompts) or remove yours. Set it: pulumi config set --secret router_api_key sk-..."
    ]
