"""Run inside .tools/pcluster-venv: load cluster configurations through ParallelCluster's own
schema (``pcluster.schemas.cluster_schema.ClusterSchema``, aws-parallelcluster as pinned in
tools/requirements-pcluster.txt).

stdin: JSON list of ``{"cluster_name": str, "yaml": str}``.
stdout: JSON list of ``{"ok": bool, "errors": <marshmallow messages or str>, "type": str}``:
``type`` is the class the schema builds (``SlurmClusterConfig``) when it loads.

Only the schema runs (structure, types, enums, ranges, unknown keys): ParallelCluster's
validators call AWS (``DescribeInstanceTypes``, ``DescribeSubnets``, ...), which needs an account.
"""

import json
import os
import sys

import yaml

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
# The schema builds boto3-backed objects lazily and asks for a region; no call is made.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# Installed in .tools/pcluster-venv only (tools/setup-conformance.sh), not in .venv.
from marshmallow import ValidationError  # pyright: ignore[reportMissingImports]
from pcluster.schemas.cluster_schema import ClusterSchema  # pyright: ignore[reportMissingImports]

out = []
for item in json.load(sys.stdin):
    try:
        config = ClusterSchema(cluster_name=item["cluster_name"]).load(yaml.safe_load(item["yaml"]))
        out.append({"ok": True, "errors": None, "type": type(config).__name__})
    except ValidationError as e:
        out.append({"ok": False, "errors": e.messages, "type": ""})
json.dump(out, sys.stdout)
