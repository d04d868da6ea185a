"""``python -m infra``: offline tools around the Pulumi program.

- ``plan STACK_OR_FILE [--format table|json]``: run the program under the SDK's mock runtime and
  show what ``pulumi up`` would build (``shared/ARCHITECTURE.md`` documents the JSON).
- ``schema [--write|--check]``: the ``Pulumi.yaml`` generated from the spec model.
- ``preflight``, ``wait``, ``smoke``, ``bench``: operator commands against a live account or
  endpoint (:mod:`infra.ops`; 0 ok, 1 a check failed, 2 bad input).

Exit codes: 0 success; 2 invalid spec or stack file (one message on stderr naming the key, no
traceback); 1 when ``schema --check`` finds ``Pulumi.yaml`` out of date, or when ``plan`` finds a
secret value in plain text anywhere in the plan (nothing is printed on stdout then).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import textwrap
from collections import Counter
from typing import Any

from infra.planning.capacity import CapacityPlan
from infra.spec import SpecError

EXIT_INVALID = 2
EXIT_SECRET = 1


class SecretInPlanError(Exception):
    """A secret value would show in plain in the plan (so it reaches AWS unmarked too).

    Attributes:
        paths: JSON paths where it shows (never the value).
    """

    def __init__(self, paths: list[str]) -> None:
        super().__init__(
            "a secret value shows in plain text at "
            + ", ".join(paths[:5])
            + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            + ": it would reach AWS unmarked; pass it only as a Pulumi secret"
        )
        self.paths = paths


def resource_entries(run: Any) -> list[dict[str, Any]]:
    """``resources`` of the plan JSON: type, name, parent, ``depends_on`` and ``inputs``.

    ``depends_on`` lists the logical names the engine makes the resource wait for: its explicit
    ``depends_on`` and every resource an input came from (a component stands for its
    children), as in ``RegisterResourceRequest.dependencies``. ``inputs`` are what the
    provider gets, as ``pulumi preview --diff`` shows them: secrets as ``"[secret]"``;
    ``userDataBase64`` in a short form with its EC2 size and hash (the text is in
    ``nodes[].user_data``), and a bundle object's ``contentBase64`` as its size (the files are
    in ``nodes[].bundle``).
    """
    from infra.plangraph import user_data_summary

    out: list[dict[str, Any]] = []
    for r in run.resources:
        inputs = dict(r.preview_inputs)
        ud = inputs.get("userDataBase64")
        if isinstance(ud, str) and ud not in ("[secret]", "[unknown]"):
            inputs["userDataBase64"] = user_data_summary(ud)
        body = inputs.get("contentBase64")
        if r.type == "aws:s3/bucketObjectv2:BucketObjectv2" and isinstance(body, str) and body != "[unknown]":
            # A node bundle: its files and hash are in nodes[].bundle.
            data = base64.b64decode(body)
            inputs["contentBase64"] = (
                f"[gzip+base64 tar, {len(data)} bytes, tar sha256 in the key; files in nodes[].bundle]"
            )
        out.append(
            {
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "depends_on": list(r.depends_on),
                "inputs": inputs,
            }
        )
    return out


def plan_document(run: Any) -> dict[str, Any]:
    """The documented plan JSON of a :class:`infra.mockrun.ProgramRun`.

    Raises:
        SecretInPlanError: when a secret value (a secret config key's value, or any string the
            SDK sent marked secret) would show anywhere in the document in plain text.
    """
    from infra.plangraph import plain_secret_paths
    from infra.spec import PROJECT, SECRET_KEYS

    doc = _plan_document(run)
    secrets = [str(run.config[f"{PROJECT}:{k}"]) for k in SECRET_KEYS if run.config.get(f"{PROJECT}:{k}")]
    for r in run.resources:
        secrets += r.secret_values
    leaks = plain_secret_paths(doc, secrets)
    if leaks:
        raise SecretInPlanError(leaks)
    return doc


def _plan_document(run: Any) -> dict[str, Any]:
    from infra.planning.bundle import bundle_document
    from infra.planning.catalog import lookup
    from infra.planning.cluster import router_boot, server_node_processes
    from infra.planning.efa import efa_count, network_interfaces
    from infra.planning.userdata import unpack_b64

    plan = run.plan
    if plan.spec.backend == "slurm":
        from infra.slurm_plan import slurm_document, slurm_nodes_document

        # SLURM: no instances of ours; the planned Slurm nodes and the ParallelCluster artifacts.
        doc = _common_document(run, slurm_nodes_document(run))
        doc["estimates"]["hourly_cost_usd"] = run.outputs["hourly_cost_usd"]
        doc["slurm"] = slurm_document(run)
        return doc
    heads = {n.group: run.ips[n.name] for n in plan.head_nodes()}
    # EC2 receives gzipped user data; the plan shows what cloud-init reads after gunzip and
    # counts the bytes EC2 counts.
    packed = {r.name: r.inputs.get("userDataBase64", "") for r in run.of_type("aws:ec2/instance:Instance")}
    user_data = {name: unpack_b64(b64) for name, b64 in packed.items()}
    sizes = {name: len(base64.b64decode(b64)) for name, b64 in packed.items()}
    nodes: list[dict[str, Any]] = []
    for node in plan.layout.nodes:
        processes = server_node_processes(plan, node, heads[node.group])
        nodes.append(
            {
                "name": node.name,
                "role": "server" if node.role == "regular" else node.role,
                "group": node.group,
                "node_rank": node.rank,
                "instance_type": node.instance_type or plan.node_type.name,
                "private_ip": run.ips[node.name],
                "efa_interfaces": efa_count(network_interfaces(lookup(node.instance_type)))
                if node.instance_type and node.instance_type != plan.node_type.name
                else plan.efa_interfaces,
                "processes": [{"argv": a} for a in processes],
                "user_data": user_data[node.name],
                "user_data_bytes": sizes[node.name],
                "user_data_encoding": "gzip",
                # The static scripts/units the bootstrap fetches, verifies and unpacks.
                "bundle": bundle_document(user_data[node.name]),
            }
        )
    rboot = router_boot(plan, heads)
    nodes.append(
        {
            "name": "router",
            "role": "router",
            "instance_type": plan.spec.router_instance_type,
            "private_ip": run.ips["router"],
            "efa_interfaces": 0,
            "processes": [{"argv": a} for a in rboot.processes],
            "user_data": user_data["router"],
            "user_data_bytes": sizes["router"],
            "user_data_encoding": "gzip",
            "bundle": bundle_document(user_data["router"]),
        }
    )
    from infra.planning.pd import pd_document

    return {**_common_document(run, nodes), **pd_document(plan, heads)}


def _common_document(run: Any, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The plan JSON fields both backends share, around their ``nodes``."""
    from infra.planning.endpoint import endpoint_document, endpoint_warnings, load_balancer_subnets
    from infra.planning.fastboot import boot_document
    from infra.planning.fsx_update import store_update_advice
    from infra.planning.gateway import gateway_warnings
    from infra.planning.image import image_summary
    from infra.planning.reachability import reachability_warnings

    plan = run.plan
    mem = plan.layout.memory
    resources = resource_entries(run)
    cold_start, kv_cache, notes = _model_estimates(plan, resources)
    store_warnings, store_notes = store_update_advice(plan.store)
    return {
        "stack": run.stack,
        "backend": plan.spec.backend,
        "region": run.config.get("aws:region"),
        "model": plan.spec.model,
        "layout": {
            "tp_size": plan.spec.tp_size,
            "pp_size": plan.spec.pp_size,
            "dp_size": plan.spec.dp_size,
            "ep_size": plan.spec.ep_size,
            "attention_dp": plan.spec.attention_dp,
            "replicas": plan.spec.replicas,
            "gpus_per_server": plan.layout.gpus_per_server,
            "nodes_per_server": plan.layout.nodes_per_server,
            "servers_per_node": plan.layout.servers_per_node,
            "memory_gib_per_gpu": {
                "gpu": round(mem.gpu_gib, 2),
                "static_pool": round(mem.static_pool_gib, 2),
                "weights": round(mem.weights_gib, 2),
                "kv_cache": round(mem.kv_cache_gib, 2),
            },
        },
        "image": image_summary(plan.spec, plan.layout),
        "nodes": nodes,
        "resources": resources,
        "outputs": run.outputs,
        "estimates": {
            "gpus": plan.estimates.gpus,
            "hourly_cost_usd": plan.estimates.hourly_cost_usd,
            "price_source": plan.estimates.price_source,
            "capacity": _capacity_document(plan.capacity),
            "cold_start": cold_start,
            "kv_cache": kv_cache,
            # Load-time sizing of the model store (issue 10 part 2; null without a store).
            "model_store": plan.store.document() if plan.store else None,
            # The boot-path figures the cold-start model reads (infra/planning/fastboot.py).
            "boot": boot_document(plan),
        },
        "endpoint": endpoint_document(plan.spec, load_balancer_subnets(plan.spec)),
        "warnings": [
            *reachability_warnings(plan.spec),
            *endpoint_warnings(plan.spec, "router_api_key" in plan.secret_params),
            *store_warnings,
            *gateway_warnings(plan.spec, "router_api_key" in plan.secret_params),
        ],
        "notes": [*notes, *store_notes],
    }


def _model_estimates(
    plan: Any, resources: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any] | None, list[str]]:
    """``estimates.cold_start``, ``estimates.kv_cache`` and the layout notes
    (:mod:`infra.planning.coldstart`, :mod:`infra.planning.kvcache`)."""
    from infra.planning.coldstart import cold_start_document, inputs_from_plan, model_cold_start
    from infra.planning.kvcache import kv_cache_document

    inputs = inputs_from_plan(plan)
    cold = cold_start_document(model_cold_start(inputs, resources), inputs)
    kv, notes = kv_cache_document(plan.spec, plan.layout)
    return cold, kv, notes


COMPONENT_PACKAGE = "sglang"
"""Type-token package of this project's components (``sglang:aws:Network``)."""


def deploy_order_lines(resources: list[dict[str, Any]]) -> list[str]:
    """The short form of the deploy graph for the table: cloud resources by step.

    Step k holds what the engine can start once step k-1 is done; the JSON has each
    resource's full ``depends_on``. Components (``sglang:*``) are left out: the engine waits
    for their children, never for them.
    """
    from infra.plangraph import deploy_waves

    graph = {r["name"]: r["depends_on"] for r in resources if r["type"].split(":", 1)[0] != COMPONENT_PACKAGE}
    waves = deploy_waves(graph)
    lines = [f"Deploy order ({len(waves)} steps; --format json shows each resource's depends_on):"]
    for i, wave in enumerate(waves, start=1):
        lines += textwrap.wrap(
            ", ".join(wave),
            width=100,
            initial_indent=f"  {i:2d}. ",
            subsequent_indent="      ",
            break_on_hyphens=False,
            break_long_words=False,
        )
    return lines


def _capacity_document(cap: CapacityPlan) -> dict[str, Any]:
    """``estimates.capacity`` of the plan JSON."""
    return {
        "kind": cap.kind,
        "reservation_id": cap.reservation_id or None,
        "market_type": cap.market_type or None,
        "placement_group": cap.placement,
        "placement_group_name": cap.placement_group_name or None,
        "gpu_node_hourly_usd": cap.gpu_node_hourly_usd,
        "gpu_node_price_source": cap.price_source,
        "billing": cap.billing,
    }


def _endpoint_line(doc: dict[str, Any]) -> str:
    """One line for the table: how clients reach the router."""
    ep = doc["endpoint"]
    url = doc["outputs"].get("router_url")
    lb = ep["load_balancer"]
    if lb is None:
        where = "public" if ep["router_public_ip"] else "private"
        return f"{ep['kind']}: clients call the router node ({where}) at {url}"
    tls = f", certificate {lb['listener']['certificate_arn']}" if lb["listener"]["certificate_arn"] else ""
    return (
        f"{ep['kind']}: {lb['scheme']} Application Load Balancer, {ep['protocol']} {ep['port']}{tls}, "
        f"idle timeout {lb['idle_timeout_secs']} s, health check {lb['health_check']['path']}; "
        f"router private; {url}"
    )


def render_table(doc: dict[str, Any]) -> str:
    """A readable summary of a plan document."""
    lay = doc["layout"]
    mem = lay["memory_gib_per_gpu"]
    est = doc["estimates"]
    cost = "unknown" if est["hourly_cost_usd"] is None else f"${est['hourly_cost_usd']:.2f}/hour"
    lines = [
        f"Stack {doc['stack']} ({doc['backend']}, {doc['region']}): {doc['model']}",
        f"Layout: {lay['replicas']} server(s) x {lay['gpus_per_server']} GPUs "
        f"(tp {lay['tp_size']}, pp {lay['pp_size']}, dp {lay['dp_size']}, ep {lay['ep_size']}"
        f"{', attention DP' if lay['attention_dp'] else ''}); "
        f"{lay['nodes_per_server']} node(s) per server, {lay['servers_per_node']} server(s) per node",
        f"Memory per GPU: {mem['weights']} GiB weights + {mem['kv_cache']} GiB KV cache "
        f"of a {mem['static_pool']} GiB static pool ({mem['gpu']} GiB GPU)",
        f"Image: {doc['image']['summary']}",
        f"Endpoint: {_endpoint_line(doc)}",
    ]
    if "pd" in doc:
        pools = doc["pd"]["pools"]
        lines.append(
            f"Prefill/decode over EFA ({doc['pd']['transfer_backend']}): "
            + "; ".join(
                f"{role} {p['replicas']} x TP{p['tp_size']} on {p['instance_type']}"
                for role, p in pools.items()
            )
        )
    lines += [
        "",
    ]
    store = est.get("model_store")
    if store:
        lines.insert(-1, f"Model store: {store['summary']}")
    boot = est.get("boot")
    if boot:
        nvme = (
            f"{boot['nvme_disks']} x NVMe ({boot['nvme_total_gb']} GB"
            f"{', RAID0' if boot['nvme_disks'] > 1 else ''}) for Docker and the cache"
            if boot["nvme_disks"]
            else "no instance store (Docker on the root volume)"
        )
        load = [k for k in ("prefetch_checkpoints", "startup_overlap") if boot[k]]
        lines.insert(
            -1,
            f"Boot: {'all nodes launch at once' if boot['parallel_launch'] else 'rank 0 first'}; "
            f"image from {boot['image_pull_source']}; {nvme}; weight load: {', '.join(load) or 'SGLang defaults'}",
        )
    rows = [("NODE", "ROLE", "TYPE", "PRIVATE IP", "EFA", "USER DATA", "PROCESSES")]
    for n in doc["nodes"]:
        rows.append(
            (
                n["name"],
                n["role"],
                n["instance_type"],
                n["private_ip"],
                str(n["efa_interfaces"]),
                f"{n['user_data_bytes']} B",
                str(len(n["processes"])),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("")
    lines.append("Processes:")
    for n in doc["nodes"]:
        for p in n["processes"]:
            lines.append(f"  {n['name']}: {' '.join(p['argv'])}")
    lines.append("")
    counts = Counter(r["type"] for r in doc["resources"])
    lines.append(f"Resources ({len(doc['resources'])}):")
    lines += [f"  {c:3d} x {t}" for t, c in sorted(counts.items())]
    lines.append("")
    lines += deploy_order_lines(doc["resources"])
    lines.append("")
    lines.append("Outputs:")
    for k, v in doc["outputs"].items():
        if isinstance(v, dict):
            lines.append(f"  {k}:")
            lines += [f"    {kk}: {vv}" for kk, vv in v.items()]
        else:
            lines.append(f"  {k}: {v}")
    lines.append("")
    cap = est["capacity"]
    how = {
        "on-demand": "on demand",
        "odcr": "in an On-Demand Capacity Reservation (on-demand rate)",
        "capacity-block": "in a Capacity Block (its effective rate; router on demand)",
    }[cap["kind"]]
    if "slurm" in doc:
        sl = doc["slurm"]
        lines.append(
            f"ParallelCluster {sl['parallelcluster_version']} cluster {sl['cluster_name']}: Slurm job "
            f"{sl['job_name']}; --format json shows slurm.cluster_config, slurm.job_script and "
            "slurm.cloudformation_template"
        )
    lines.append(f"Estimate: {est['gpus']} GPUs, {cost} {how} ({est['price_source']})")
    lines.append(f"Capacity: {cap['billing']}")
    lines += _model_lines(est)
    lines += [f"WARNING: {w}" for w in doc.get("warnings", [])]
    lines += [f"NOTE: {n}" for n in doc.get("notes", [])]
    return "\n".join(lines)


def _model_lines(est: dict[str, Any]) -> list[str]:
    """Text-plan lines of the cold-start model and the KV-cache figures."""
    from infra.planning.coldstart import cold_start_lines
    from infra.planning.kvcache import fmt_tokens

    lines: list[str] = []
    kv = est.get("kv_cache")
    if kv:
        lines.append(
            f"KV cache: {fmt_tokens(kv['tokens_per_server'])} tokens per server, "
            f"{fmt_tokens(kv['tokens_per_stack'])} per stack ({kv['kv_bytes_per_token_per_gpu']} B per token "
            f"per GPU); longest request {kv['max_request_tokens']} tokens"
        )
    if est.get("cold_start"):
        lines += cold_start_lines(est["cold_start"])
    return lines


def _cmd_plan(args: argparse.Namespace) -> int:
    from infra.mockrun import run_stack

    try:
        run = run_stack(args.stack)
    except SpecError as e:
        print(f"error: invalid stack config: {e}", file=sys.stderr)
        return EXIT_INVALID
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    try:
        doc = plan_document(run)
    except SecretInPlanError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_SECRET
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_table(doc))
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from infra.schema import PULUMI_YAML, render

    text = render()
    if args.write:
        PULUMI_YAML.write_text(text, encoding="utf-8")
        return 0
    if args.check:
        current = PULUMI_YAML.read_text(encoding="utf-8") if PULUMI_YAML.exists() else ""
        if current != text:
            print(
                "Pulumi.yaml is out of date with infra/spec.py; run: python -m infra schema --write",
                file=sys.stderr,
            )
            return 1
        return 0
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m infra", description=(__doc__ or "").partition("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="show what `pulumi up` would build, offline")
    p.add_argument("stack", help="stack name (stacks/Pulumi.<name>.yaml) or a stack file path")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_plan)
    s = sub.add_parser("schema", help="print, --write or --check Pulumi.yaml")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    s.set_defaults(func=_cmd_schema)
    # --- operator commands (issue 9): preflight, wait, smoke, bench (infra/ops/) ---
    from infra.ops.commands import add_ops_commands

    add_ops_commands(sub)
    # --- end of operator commands ---
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
