"""Time the offline plan of synthetic stacks of 1 to 256 p5.48xlarge nodes.

Each size runs in a fresh Python process (so peak memory is that plan's alone) and does what
``python -m infra plan --format json`` does: validate, plan, run the Pulumi program under the
SDK's mocks, build the JSON document. Prints seconds (wall clock of the plan, after imports),
CPU seconds of the process for the same span (what the plan costs when other work shares the
cores), peak resident memory (MiB, ``ru_maxrss``), the largest user data (bytes) and the resource count.

Layout per size: one TP8 server per node for 1 node; TP16 servers across node pairs beyond that,
so every rank >= 1 waits on its rank 0's IP through an Output, as in prod-tp16. Every size
brings its own VPC and subnet (``vpc_id``/``subnet_id``, private router): the /24 private
subnet a created VPC gets holds at most 251 nodes, which the plan refuses beyond that.

Targets (issue 10: 2-core machine): 256 nodes under 10 s, close to linear growth, user data
under 16 KB. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1, 2, 8, 32, 64, 128, 256)


def synthetic_config(nodes: int) -> dict[str, str]:
    """Stack config (engine form) for ``nodes`` p5.48xlarge nodes."""
    tp, replicas = (8, 1) if nodes == 1 else (16, nodes // 2)
    return {
        "aws:region": "us-east-1",
        "sglang-cluster:vpc_id": "vpc-0a1b2c3d4e5f60718",
        "sglang-cluster:subnet_id": "subnet-0a1b2c3d4e5f60718",
        "sglang-cluster:router_public_ip": "false",
        "sglang-cluster:client_cidrs": json.dumps(["203.0.113.0/24"]),
        "sglang-cluster:model": "Qwen/Qwen2.5-72B-Instruct",
        "sglang-cluster:instance_type": "p5.48xlarge",
        "sglang-cluster:tp_size": str(tp),
        "sglang-cluster:replicas": str(replicas),
        "sglang-cluster:node_count": str(nodes),
    }


def measure_one(nodes: int) -> dict[str, float | int]:
    """Plan one synthetic stack in this process and return its figures."""
    sys.path.insert(0, str(ROOT))
    from infra.cli import plan_document
    from infra.mockrun import run_program

    cfg = synthetic_config(nodes)
    t0, c0 = time.perf_counter(), time.process_time()
    doc = plan_document(run_program(f"bench-{nodes}", cfg))
    json.dumps(doc)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "nodes": nodes,
        "seconds": round(secs, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "max_user_data_bytes": max(n["user_data_bytes"] for n in doc["nodes"]),
        "resources": len(doc["resources"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    ap.add_argument("--one", type=int, help="measure one size in this process (JSON out)")
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = ap.parse_args()
    if args.one:
        json.dump(measure_one(args.one), sys.stdout)
        return 0
    rows = []
    for n in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True
        ).stdout
        rows.append(json.loads(out))
    print(
        f"{'nodes':>5}  {'seconds':>8}  {'cpu s':>7}  {'s/node':>7}  {'peak MiB':>8}  {'max user data':>13}  "
        f"{'resources':>9}"
    )
    for r in rows:
        print(
            f"{r['nodes']:>5}  {r['seconds']:>8.3f}  {r['cpu_seconds']:>7.3f}  {r['seconds'] / r['nodes']:>7.3f}  "
            f"{r['peak_mib']:>8.1f}  {r['max_user_data_bytes']:>11} B  {r['resources']:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
