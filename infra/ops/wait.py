"""``python -m infra wait STACK``: poll until the cluster really serves, or say where to look.

Each poll checks:

- the router's ``GET /readiness`` (200 once it has a healthy worker: sglang-router 0.3.2 and
  smg answer 503 with zero workers; ``shared/reference/sglang-serving.md``) and, with known
  servers, its ``GET /workers``: every server's rank-0 URL listed healthy (one healthy worker
  is enough for ``/readiness``);
- rank 0 of each server: ``GET /health`` and ``GET /v1/models`` (ranks >= 1 answer
  ``/health`` unconditionally, so only rank 0 says whether a server is ready); a rank-0 URL
  that cannot be reached from this machine (private subnet) is shown as ``unreachable`` and
  does not block: the router's readiness then speaks for it;
- for servers whose ranks span nodes, the NCCL transport the nodes reported: the
  ``NCCL transport`` lines ``sglang-wait-ready`` / ``sglang-transport-check`` write to
  ``ready-<slot>.log`` / ``server-<slot>.log``, which the CloudWatch agent ships to the stack's
  log group (``logs:FilterLogEvents``; a seam tests fill). ``efa`` passes; ``socket`` or any
  other word fails at once (the server will not be fast, or with ``require_efa`` not serve).

The deadline is the plan's cold-start estimate (``estimates.cold_start``: its longest path
without the ``resources`` phase, which ``pulumi up`` has already waited for) times
:data:`DEADLINE_FACTOR`, else :data:`DEFAULT_DEADLINE_SECS`;
``--timeout`` overrides both. On timeout it prints the SSM command that reads cloud-init's and
the units' logs on a node, and the CloudWatch log group.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from infra.ops import http
from infra.ops.report import Check, Status

DEFAULT_DEADLINE_SECS = 3600
"""Without a cold-start estimate: 60 min. A 72B model from cold takes about 15-30 min on p5
(weights from the hub to FSx, image pull, load, CUDA graphs; README "The real path")."""

DEADLINE_FACTOR = 1.5
"""Margin on the modeled cold start (the model is an estimate, not a bound)."""

MIN_DEADLINE_SECS = 600

TRANSPORT_LINE = re.compile(
    r"server (?P<slot>\d+): NCCL transport(?:: | is )(?P<word>efa|socket|ib|libfabric-other|unknown)\b"
)
"""The lines userdata/sglang-wait-ready and sglang-transport-check log (``server 0: NCCL
transport: efa (...)`` / ``... NCCL transport is socket, not EFA ...``)."""


@dataclass(frozen=True)
class ServerTarget:
    """One server as ``wait`` watches it.

    Attributes:
        index: group index (``server-g<index>-r0`` is its rank 0).
        url: rank 0's base URL (``http://10.0.1.10:30000``).
        multi_node: its ranks span nodes (NCCL crosses EFA), so its transport is checked.
        head_node: logical name of its rank-0 node (``server-g0-r0``); its other nodes are
            ``server-g0-r1``, ...
    """

    index: int
    url: str
    multi_node: bool = False
    head_node: str = ""


@dataclass
class WaitTarget:
    """Everything ``wait`` polls, and where to send the operator on timeout.

    Attributes:
        router_url: the router's root URL.
        servers: rank 0 of every server (may be empty with only ``--url``).
        api_key: router key ("" = none).
        region / log_group / instance_ids: for the timeout hints (``nodes`` output).
    """

    router_url: str
    servers: list[ServerTarget] = field(default_factory=list)
    api_key: str = ""
    region: str = ""
    log_group: str = ""
    instance_ids: dict[str, str] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)
    """Extra lines for the timeout hints (a SLURM stack's ``squeue_command``)."""


TransportReader = Callable[[], dict[str, str]]
"""Returns ``{node name/slot: transport word}`` read so far (``server-g0-r0/0: efa``)."""


def cloudwatch_transports(log_group: str, region: str, client: Any = None) -> TransportReader:
    """A :data:`TransportReader` on CloudWatch Logs (``FilterLogEvents``, read-only).

    Streams are ``<node name>/<file>`` (``infra.planning.cluster.cloudwatch_config``); the
    newest line per node and slot wins.
    """

    def read() -> dict[str, str]:
        import boto3

        logs = client or boto3.client("logs", region_name=region)
        found: dict[str, tuple[int, str]] = {}
        kwargs: dict[str, Any] = {"logGroupName": log_group, "filterPattern": '"NCCL transport"'}
        for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
            for ev in page.get("events", []):
                m = TRANSPORT_LINE.search(str(ev.get("message", "")))
                if not m:
                    continue
                node = str(ev.get("logStreamName", "")).split("/", 1)[0]
                key = f"{node}/{m.group('slot')}"
                ts = int(ev.get("timestamp", 0))
                if key not in found or ts >= found[key][0]:
                    found[key] = (ts, m.group("word"))
        return {k: v for k, (_, v) in found.items()}

    return read


def deadline_from_plan(doc: Mapping[str, Any]) -> tuple[int, str]:
    """Deadline in seconds and where it came from, from a plan document.

    Reads ``estimates.cold_start`` (``infra/planning/coldstart.py``): for each path in it
    (``cold``, ``warm``, ``warm_replaced``) the sum of its ``phases`` other than
    ``resources`` (``wait`` runs after ``pulumi up`` returned, so the image build and the
    instance launches are behind it); the longest of these times :data:`DEADLINE_FACTOR`, at
    least :data:`MIN_DEADLINE_SECS`. A path without phases counts with its ``total_secs``.
    Without an estimate, :data:`DEFAULT_DEADLINE_SECS`.
    """
    cold = (doc.get("estimates") or {}).get("cold_start")
    totals: list[tuple[float, str]] = []

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def walk(x: Any, name: str) -> None:
        if isinstance(x, Mapping):
            phases = x.get("phases")
            if isinstance(phases, list) and phases and all(isinstance(p, Mapping) for p in phases):
                rest = sum(
                    float(p["seconds"])
                    for p in phases
                    if p.get("name") != "resources" and number(p.get("seconds"))
                )
                totals.append((rest, f"{name} path after pulumi up"))
                return
            for k, v in x.items():
                if number(v) and str(k).endswith(("total_secs", "total_seconds")):
                    totals.append((float(v), f"{name or 'total'}"))
                else:
                    walk(v, str(k))
        elif isinstance(x, list):
            for v in x:
                walk(v, name)

    walk(cold, "")
    if totals:
        est, which = max(totals)
        secs = max(MIN_DEADLINE_SECS, int(est * DEADLINE_FACTOR))
        return secs, f"{DEADLINE_FACTOR} x the plan's cold-start estimate of {est:.0f} s ({which})"
    return DEFAULT_DEADLINE_SECS, f"default {DEFAULT_DEADLINE_SECS} s (the plan has no cold-start estimate)"


def servers_from(doc: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[ServerTarget]:
    """Rank-0 targets from the stack outputs and the plan.

    ``server_urls`` is ``{server name: rank-0 URL}`` (``infra.planning.cluster.worker_urls``;
    a list is accepted too). A server's head node is the rank-0 node whose private IP is the
    URL's host: ``nodes`` of the outputs, else the plan's nodes (``server-g0-r0``, or
    ``prefill-g0-r0`` / ``decode-g1-r0`` in a PD stack).
    """
    raw = outputs.get("server_urls") or {}
    items = list(raw.items()) if isinstance(raw, Mapping) else [(f"s{i}", u) for i, u in enumerate(raw)]
    multi = int((doc.get("layout") or {}).get("nodes_per_server", 1)) > 1
    by_ip: dict[str, str] = {}
    for n in doc.get("nodes") or []:
        if isinstance(n, Mapping) and str(n.get("name", "")).endswith("-r0") and n.get("private_ip"):
            by_ip[str(n["private_ip"])] = str(n["name"])
    for name, node in (outputs.get("nodes") or {}).items():
        if str(name).endswith("-r0") and isinstance(node, Mapping) and node.get("private_ip"):
            by_ip[str(node["private_ip"])] = str(name)
    out: list[ServerTarget] = []
    for i, (name, url) in enumerate(items):
        u = str(url).rstrip("/")
        host = u.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        digits = str(name).lstrip("s")
        index = int(digits) if digits.isdigit() else i
        out.append(
            ServerTarget(
                index=index, url=u, multi_node=multi, head_node=by_ip.get(host, f"server-g{index}-r0")
            )
        )
    return out


@dataclass
class State:
    """The latest reading of every target (one row each)."""

    rows: dict[str, tuple[str, str]] = field(default_factory=dict)
    """name -> (state, detail); state in ready/waiting/unreachable/failed/unknown."""

    def done(self) -> bool:
        return (
            bool(self.rows)
            and all(s in ("ready", "unreachable", "unknown") for s, _ in self.rows.values())
            and (self.rows.get("router", ("", ""))[0] == "ready")
        )

    def failed(self) -> list[str]:
        return [f"{n}: {d}" for n, (s, d) in self.rows.items() if s == "failed"]


def poll_once(target: WaitTarget, transports: TransportReader | None, timeout: float = 5.0) -> State:
    """One reading of the router, every rank 0 and the reported transports."""
    st = State()
    r = http.request("GET", target.router_url + "/readiness", None, target.api_key, timeout)
    if r.status == 200:
        st.rows["router"] = _workers_row(target, timeout)
    elif r.status == 401:
        st.rows["router"] = (
            "failed",
            "GET /readiness: HTTP 401: the router wants its API key (--api-key or $SGLANG_API_KEY)",
        )
    elif r.status == 0 and "CERTIFICATE_VERIFY_FAILED" in r.error:
        # Does not heal by waiting: the certificate does not verify for this host name.
        st.rows["router"] = (
            "failed",
            f"{r.error}: the URL's host is not a name the certificate covers; set endpoint_domain "
            "to a name it names and point that name's DNS record at load_balancer_dns_name, then "
            "use https://<endpoint_domain>",
        )
    elif r.status == 0:
        st.rows["router"] = ("waiting", r.error)
    else:
        st.rows["router"] = ("waiting", f"GET /readiness: {r.brief()}")
    reports: dict[str, str] = {}
    transport_error = ""
    if transports is not None and any(s.multi_node for s in target.servers):
        try:
            reports = transports()
        except Exception as e:  # an AWS error is one line in the row, never a traceback
            from infra.ops.preflight import aws_error_line

            transport_error = aws_error_line(e, "logs:FilterLogEvents")
    for s in target.servers:
        name = f"server {s.index}"
        h = http.request("GET", s.url + "/health", None, "", timeout)
        if h.status == 0:
            st.rows[name] = ("unreachable", f"{s.url}: not reachable from here (private subnet?)")
        elif h.status != 200:
            st.rows[name] = ("waiting", f"/health: {h.brief()}")
        else:
            m = http.request("GET", s.url + "/v1/models", None, "", timeout)
            st.rows[name] = (
                ("ready", "/health and /v1/models 200")
                if m.status == 200
                else ("waiting", f"/v1/models: {m.brief()}")
            )
        if s.multi_node:
            tname = f"server {s.index} transport"
            # Every node of the server checks its own ranks (server-<slot>.log); rank 0 repeats
            # the verdict in ready-<slot>.log once serving. Any node off EFA fails the server.
            group = s.head_node.rsplit("-r", 1)[0] + "-r"
            words = {k.split("/", 1)[0]: w for k, w in reports.items() if k.startswith(group)}
            bad = {n: w for n, w in words.items() if w != "efa"}
            if transport_error:
                st.rows[tname] = ("unknown", transport_error)
            elif bad:
                st.rows[tname] = (
                    "failed",
                    "; ".join(f"{n}: NCCL transport is {w}, not EFA" for n, w in sorted(bad.items())),
                )
            elif words:
                st.rows[tname] = ("ready", f"NCCL transport: efa ({', '.join(sorted(words))})")
            else:
                st.rows[tname] = ("waiting", "no NCCL transport reported yet")
    return st


def _workers_row(target: WaitTarget, timeout: float) -> tuple[str, str]:
    """The router row once ``/readiness`` is 200: both gateways answer 200 with one healthy
    worker (smg 1.13.0 with one of ``tp8-dp2``'s two, seen in
    ``tests/conformance/test_ops_through_smg.py``), so with known servers the healthy workers
    of ``GET /workers`` (``{"workers": [{"url", "is_healthy"}, ...]}``, smg and sglang-router
    0.3.2; it wants the key) are counted against them. A router that does not answer
    ``/workers`` keeps the readiness verdict, said so in the detail."""
    if not target.servers:
        return "ready", "GET /readiness 200"
    w = http.request("GET", target.router_url + "/workers", None, target.api_key, timeout)
    try:
        listed = w.json().get("workers") if w.status == 200 else None
    except (ValueError, AttributeError):
        listed = None
    if not isinstance(listed, list):
        why = "the router wants its key" if w.status == 401 else w.brief() or "no worker list"
        return "ready", f"GET /readiness 200 (servers not counted: GET /workers: {why})"
    healthy = {
        str(x.get("url", "")).rstrip("/") for x in listed if isinstance(x, dict) and x.get("is_healthy")
    }
    missing = [s.url for s in target.servers if s.url not in healthy]
    n = len(target.servers)
    if missing:
        return "waiting", (
            f"GET /readiness 200 but {n - len(missing)}/{n} servers healthy at the router "
            f"(not yet: {', '.join(missing)})"
        )
    return "ready", f"GET /readiness 200, {n}/{n} servers healthy at the router"


def timeout_hints(target: WaitTarget, stack: str) -> list[str]:
    """Where to look after a timeout: the SSM command that reads cloud-init's and the units'
    logs on a node (``AWS-RunShellScript``), and the CloudWatch log group."""
    region = f" --region {target.region}" if target.region else ""
    cmds = (
        "cloud-init status --long; tail -n 40 /var/log/cloud-init-output.log; "
        "systemctl --no-pager --failed; "
        "journalctl --no-pager -n 60 -u 'sglang-*'; tail -n 40 /var/log/sglang/*.log"
    )
    lines = ["Where to look:"]
    nodes = target.instance_ids or {"server-g0-r0": "INSTANCE_ID"}
    for node, iid in list(nodes.items())[:3]:
        lines.append(
            f"  {node}: aws ssm send-command --instance-ids {iid} --document-name AWS-RunShellScript "
            f"--parameters 'commands=[\"{cmds}\"]'{region} --query Command.CommandId --output text"
        )
    lines.append(
        "    then: aws ssm get-command-invocation --command-id COMMAND_ID --instance-id INSTANCE_ID"
        f"{region} --query StandardOutputContent --output text"
    )
    lines.append(f"    or a shell: aws ssm start-session --target INSTANCE_ID{region}")
    lines += target.hints
    group = target.log_group or (f"/sglang/{stack}" if stack else "")
    if group:
        lines.append(f"  CloudWatch: aws logs tail {group} --since 1h --follow{region}")
        lines.append(
            "    streams <node>/boot.log (FSx, secrets, weights), <node>/server-<slot>.log, <node>/ready-<slot>.log"
        )
    return lines


def wait(
    target: WaitTarget,
    deadline_secs: float,
    transports: TransportReader | None = None,
    interval: float = 10.0,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, State]:
    """Poll until ready, a failure, or the deadline.

    Args:
        target: what to poll. deadline_secs: give up after this many seconds.
        transports: reported NCCL transports (``None`` = not checked).
        interval: seconds between polls. out: where the progress goes.
        clock, sleep: time source (tests pass a fake clock: no real waiting, no timed asserts).

    Returns:
        ``(ready, last state)``; ready is False on timeout or on a failed transport.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from infra.ops.report import console

    con = console(out)
    start = clock()
    last_line = ""
    state = State()
    with Progress(
        TextColumn("[bold]waiting[/] {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=con,
        transient=False,
    ) as progress:
        task = progress.add_task("", total=deadline_secs)
        while True:
            state = poll_once(target, transports)
            ready = sum(1 for s, _ in state.rows.values() if s == "ready")
            summary = f"{ready}/{len(state.rows)} ready: " + ", ".join(
                f"{n} {s}" for n, (s, _) in state.rows.items()
            )
            progress.update(
                task,
                completed=min(clock() - start, deadline_secs),
                description=f"({ready}/{len(state.rows)} ready)",
            )
            if summary != last_line:
                progress.console.print(f"[{clock() - start:6.0f} s] {summary}")
                last_line = summary
            if state.failed() or state.done():
                break
            if clock() - start + interval > deadline_secs:
                break
            sleep(interval)
    return (state.done() and not state.failed()), state


def state_checks(state: State) -> list[Check]:
    """The final state as table rows: ready -> pass, unreachable/unknown -> warn, else fail."""
    status: dict[str, Status] = {"ready": "pass", "unreachable": "warn", "unknown": "warn"}
    return [Check(n, status.get(s, "fail"), f"{s}: {d}") for n, (s, d) in state.rows.items()]


def servers_in(urls: Sequence[str], multi_node: bool = False) -> list[ServerTarget]:
    """Targets from ``--server-url`` values."""
    return [
        ServerTarget(index=i, url=u.rstrip("/"), multi_node=multi_node, head_node=f"server-g{i}-r0")
        for i, u in enumerate(urls)
    ]
