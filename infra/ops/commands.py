"""argparse wiring of the operator commands (``python -m infra preflight|wait|smoke|bench``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# rich and matplotlib load only when an operator command runs, so `plan` and `schema` need
# neither (their modules import them at the top).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _given_key(args: argparse.Namespace) -> str:
    """The key of ``--api-key-file`` (``-`` = stdin, first line) or ``--api-key``. The latter
    sits in this process's argv, which every local user can read (``ps``, ``/proc/PID/cmdline``):
    a warning says so once; the key itself is never printed."""
    if getattr(args, "_key", None) is not None:
        return str(args._key)
    key = ""
    path = getattr(args, "api_key_file", "") or ""
    if path:
        try:
            text = sys.stdin.readline() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise SystemExit(_err(f"--api-key-file: {e.strerror or e}: {path}")) from None
        key = (text.splitlines() or [""])[0].strip()
    elif getattr(args, "api_key", None):
        key = str(args.api_key)
        print(
            "warning: --api-key is visible in the process list (ps); prefer $SGLANG_API_KEY or "
            "--api-key-file",
            file=sys.stderr,
        )
    args._key = key
    return key


def cmd_preflight(args: argparse.Namespace) -> int:
    """``preflight STACK_OR_FILE``: the table of account checks; exit 0/1/2."""
    from infra.ops.preflight import Boto3Reader, run_preflight, stack_facts
    from infra.ops.report import exit_code, render_checks
    from infra.spec import SpecError

    try:
        facts = stack_facts(args.stack)
    except SpecError as e:
        return _err(f"invalid stack config: {e}")
    except (FileNotFoundError, ValueError) as e:
        return _err(str(e))
    from botocore.exceptions import BotoCoreError

    from infra.ops.preflight import aws_error_line
    from infra.ops.report import Check

    try:
        reader = Boto3Reader(facts.region)
    except BotoCoreError as e:  # ProfileNotFound is raised when the session is made
        checks = [Check("credentials", "fail", aws_error_line(e, "boto3.session.Session"))]
    else:
        checks = run_preflight(facts, reader)
    render_checks(f"preflight {facts.stack} ({facts.region})", checks)
    return exit_code(checks)


def _resolve_url(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """``--url`` or the stack's ``router_url`` output; also returns the outputs read."""
    from infra.ops.stack import base_url, stack_outputs

    if args.url:
        return base_url(args.url), {}
    if not getattr(args, "stack", None):
        raise ValueError("give a stack name or --url")
    outputs = stack_outputs(args.stack)
    if not outputs.get("router_url"):
        raise ValueError(f"stack {args.stack} has no router_url output (not deployed?)")
    return base_url(str(outputs["router_url"])), outputs


def cmd_smoke(args: argparse.Namespace) -> int:
    """``smoke [STACK] [--url URL]``: the test.sh checks; exit 0/1/2."""
    from infra.ops.report import exit_code, render_checks
    from infra.ops.smoke import Target, run_smoke
    from infra.ops.stack import OpsError, api_key

    try:
        url, outputs = _resolve_url(args)
    except (OpsError, ValueError) as e:
        return _err(str(e))
    target = Target(
        url,
        api_key(args.stack, _given_key(args)),
        args.model or str(outputs.get("served_model_name") or ""),
        args.timeout,
    )
    checks = run_smoke(target)
    render_checks(f"smoke {url}", checks)
    return exit_code(checks)


def cmd_wait(args: argparse.Namespace) -> int:
    """``wait [STACK] [--url URL]``: poll until ready; exit 0 ready, 1 timeout or failure, 2 bad input."""
    from infra.ops.report import render_checks
    from infra.ops.stack import OpsError, api_key
    from infra.ops.wait import (
        WaitTarget,
        cloudwatch_transports,
        deadline_from_plan,
        servers_from,
        servers_in,
        state_checks,
        timeout_hints,
        wait,
    )

    try:
        url, outputs = _resolve_url(args)
    except (OpsError, ValueError) as e:
        return _err(str(e))
    doc: dict[str, Any] = {}
    if args.stack:
        from infra.cli import plan_document
        from infra.mockrun import run_stack
        from infra.spec import SpecError

        try:
            doc = plan_document(run_stack(args.stack))
        except (SpecError, FileNotFoundError, ValueError) as e:
            return _err(f"cannot plan {args.stack}: {e}")
        except Exception as e:  # a plan the secret check refuses: wait can still poll the URL
            print(f"warning: no plan for {args.stack} ({e}); default deadline", file=sys.stderr)
    deadline, why = deadline_from_plan(doc)
    if args.timeout:
        deadline, why = args.timeout, "--timeout"
    servers = servers_from(doc, outputs) if outputs else servers_in(args.server_url or [])
    nodes = outputs.get("nodes") or {}
    hints: list[str] = []
    if outputs.get("backend") == "slurm":
        # ParallelCluster: no per-node outputs; the head node runs the router and the job.
        nodes = {"head node": outputs.get("head_node") or {}}
        if outputs.get("squeue_command"):
            hints.append(f"  SLURM job: {outputs['squeue_command']}")
    target = WaitTarget(
        router_url=url,
        servers=servers,
        api_key=api_key(args.stack, _given_key(args)),
        region=str(doc.get("region") or ""),
        log_group=str(outputs.get("log_group") or ""),
        instance_ids={
            k: str(v.get("instance_id"))
            for k, v in nodes.items()
            if isinstance(v, dict) and v.get("instance_id")
        },
        hints=hints,
    )
    transports = (
        cloudwatch_transports(target.log_group, target.region) if target.log_group and target.region else None
    )
    print(f"deadline {deadline} s ({why})")
    ok, state = wait(target, deadline, transports, interval=args.interval)
    render_checks(f"wait {url}", state_checks(state))
    if ok:
        return EXIT_OK
    if not state.failed():
        print(f"not ready after {deadline} s.")
    for line in timeout_hints(target, args.stack or ""):
        print(line)
    return EXIT_FAILED


def _is_json_file(path: str) -> bool:
    """True when ``path`` is a readable file holding JSON (what the benchmark accepts)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return True


def _served_model(url: str, key: str) -> str:
    """The first id of the router's ``GET /v1/models``.

    Raises:
        ValueError: no reply or no model listed (then ``--model`` is needed).
    """
    from infra.ops import http

    reply = http.request("GET", url + "/v1/models", None, key, 30.0)
    try:
        ids = [m.get("id") for m in reply.json().get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        ids = []
    if reply.status != 200 or not ids or not ids[0]:
        raise ValueError(f"cannot read the served model from {url}/v1/models ({reply.brief()}): pass --model")
    return str(ids[0])


def cmd_bench(args: argparse.Namespace) -> int:
    """``bench``: run the matrix (or ``--results DIR``), table and plots; exit 0/1/2."""
    from infra.ops.bench import (
        BenchError,
        head_node_hint,
        load_results,
        matrix,
        module_available,
        plot_concurrency,
        render_results,
        run_matrix,
    )
    from infra.ops.stack import OpsError, api_key

    out_dir = Path(args.out)
    try:
        if args.results:
            results_dir = Path(args.results)
        else:
            runs = matrix([t.strip() for t in args.type.split(",") if t.strip()], args.sharegpt or "")
            url, outputs = _resolve_url(args)
            model = args.model or str(outputs.get("served_model_name") or "")
            if not model:
                # The model goes into every /generate body (smg refuses one without it): ask
                # the router which one it serves.
                model = _served_model(url, api_key(args.stack, _given_key(args)))
            if args.dry_run or not module_available(args.python):
                from infra.ops.wait import servers_from

                nodes = outputs.get("nodes") or {}
                # server_urls is {server name: rank-0 URL}; server 0's head node runs the hint.
                first = (servers_from({}, outputs) or [None])[0]
                head = nodes.get(first.head_node if first else "server-g0-r0") or {}
                server0 = first.url if first else "http://127.0.0.1:30000"
                keyed = server0 if api_key(args.stack, _given_key(args)) else ""
                lines = head_node_hint(
                    runs,
                    url,
                    model,
                    args.tokenizer or (f"/fsx/models/{model}" if model else ""),
                    str(outputs.get("image") or "IMAGE"),
                    str(head.get("instance_id") or ""),
                    args.region or "",
                    keyed,
                )
                if args.dry_run:
                    lines[0] = f"dry run: {len(runs)} run(s); on the head node through SSM:"
                print("\n".join(lines))
                return EXIT_OK if args.dry_run else EXIT_FAILED
            if args.sharegpt and not _is_json_file(args.sharegpt):
                # 0.5.23 downloads ShareGPT from the hub when --dataset-path is not a JSON file
                # (datasets/random.py and sharegpt.py: is_file_valid_json).
                raise ValueError(
                    f"--sharegpt {args.sharegpt} is not a JSON file here: the benchmark would "
                    "download ShareGPT from the hub instead; give a local copy, or --dry-run for "
                    "the head node (which reads /fsx)"
                )
            results_dir = out_dir
            run_matrix(
                runs,
                url,
                model,
                args.tokenizer or "",
                results_dir,
                args.python,
                api_key(args.stack, _given_key(args)),
            )
        results = load_results(results_dir)
    except (BenchError, OpsError, ValueError) as e:
        return _err(str(e))
    render_results(results)
    for path, series in plot_concurrency(results, out_dir).items():
        print(f"plot: {path} ({', '.join(series)})")
    return EXIT_OK


def add_ops_commands(sub: Any) -> None:
    """Register ``preflight``, ``wait``, ``smoke`` and ``bench`` on the CLI's subparsers."""
    p = sub.add_parser("preflight", help="check the AWS account for a stack (read-only, boto3)")
    p.add_argument("stack", help="stack name (stacks/Pulumi.<name>.yaml) or a stack file path")
    p.set_defaults(func=cmd_preflight)

    def endpoint(q: argparse.ArgumentParser, stack_required: bool = False) -> None:
        q.add_argument(
            "stack", nargs=None if stack_required else "?", help="deployed stack (pulumi stack output)"
        )
        q.add_argument("--url", help="router URL instead of the stack's router_url output")
        q.add_argument(
            "--api-key",
            help="router API key (default: $SGLANG_API_KEY, $OPENAI_API_KEY, "
            "or `pulumi config get router_api_key`); visible in the process list, prefer "
            "--api-key-file or $SGLANG_API_KEY",
        )
        q.add_argument(
            "--api-key-file", default="", help="file whose first line is the router API key (- = stdin)"
        )

    w = sub.add_parser("wait", help="wait until the router and every rank 0 serve")
    endpoint(w)
    w.add_argument("--server-url", action="append", help="rank-0 URL to poll (with --url); repeatable")
    w.add_argument(
        "--timeout", type=int, default=0, help="seconds (default: from the plan's cold-start estimate)"
    )
    w.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    w.set_defaults(func=cmd_wait)

    s = sub.add_parser("smoke", help="the checks of seed 000's test.sh against the endpoint")
    endpoint(s)
    s.add_argument("--model", default="", help="model id (default: the first of /v1/models)")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    s.set_defaults(func=cmd_smoke)

    b = sub.add_parser("bench", help="SGLang's serving benchmark with the seed's matrix; table and plots")
    endpoint(b)
    b.add_argument(
        "--type",
        default="throughput,prefill,decode,latency,concurrency",
        help="comma list of throughput,prefill,decode,latency,concurrency,sharegpt",
    )
    b.add_argument(
        "--sharegpt", default="", help="local ShareGPT_V3 JSON file (or on /fsx); never downloaded"
    )
    b.add_argument("--model", default="", help="served model name (default: the stack's served_model_name)")
    b.add_argument(
        "--tokenizer", default="", help="tokenizer path (default on the head node: /fsx/models/<model>)"
    )
    b.add_argument("--python", default=sys.executable, help="Python with sglang 0.5.23 installed")
    b.add_argument("--region", default="", help="AWS region for the SSM hint")
    b.add_argument("--out", default="results", help="directory for JSONL results and PNG plots")
    b.add_argument(
        "--results", default="", help="only tabulate and plot the *.jsonl already in this directory"
    )
    b.add_argument("--dry-run", action="store_true", help="print the runs, run nothing")
    b.set_defaults(func=cmd_bench)
