"""Run inside the pcluster venv: ParallelCluster's own validators that need no AWS call, on
cluster configurations loaded through its schema, with the arguments ParallelCluster itself
passes them (``SlurmQueue._register_validators`` in ``pcluster/config/cluster_config.py`` of
the pinned aws-parallelcluster 3.16.1).

Validators run: ``EfaPlacementGroupValidator`` (an EFA compute resource must name its
placement group choice explicitly, except with a Capacity Block). The others in that file call
EC2, IAM or FSx and cannot run here.

stdin: JSON list of ``{"cluster_name": str, "yaml": str, "stringify": bool}``. With
``stringify`` every scalar becomes a string first (``true``/``false`` for booleans), as
CloudFormation hands custom-resource properties to ParallelCluster's Lambda.
stdout: JSON list of ``{"loaded": bool, "errors": <schema messages>, "failures":
[{"validator", "level", "message"}]}``.
"""

import json
import os
import sys

import yaml

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# Installed in the pcluster venv only (tools/setup-conformance.sh), not in .venv.
from marshmallow import ValidationError  # pyright: ignore[reportMissingImports]
from pcluster.schemas.cluster_schema import ClusterSchema  # pyright: ignore[reportMissingImports]
from pcluster.validators.cluster_validators import (  # pyright: ignore[reportMissingImports]
    EfaPlacementGroupValidator,
)


def stringify(obj: object) -> object:
    """Every scalar as CloudFormation sends it to a custom resource: a string."""
    if isinstance(obj, dict):
        return {k: stringify(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [stringify(v) for v in obj]
    if isinstance(obj, bool):
        return "true" if obj else "false"
    return str(obj)


out = []
for item in json.load(sys.stdin):
    data = yaml.safe_load(item["yaml"])
    if item.get("stringify"):
        data = stringify(data)
    try:
        config = ClusterSchema(cluster_name=item["cluster_name"]).load(data)
    except ValidationError as e:
        out.append({"loaded": False, "errors": e.messages, "failures": []})
        continue
    failures = []
    for queue in config.scheduling.queues:
        for cr in queue.compute_resources:
            chosen = queue.get_chosen_placement_group_setting_for_compute_resource(cr)
            for f in EfaPlacementGroupValidator().execute(
                efa_enabled=cr.efa.enabled,
                placement_group_key=queue.get_placement_group_settings_for_compute_resource(cr).get("key"),
                placement_group_disabled=chosen.enabled is False,
                # queue.multi_az_enabled asks EC2 for the subnets' AZs; one subnet is one AZ.
                multi_az_enabled=len(set(queue.networking.subnet_ids)) > 1,
                capacity_type=queue.capacity_type,
                queue_name=queue.name,
            ):
                failures.append(
                    {"validator": "EfaPlacementGroupValidator", "level": f.level.name, "message": f.message}
                )
    out.append({"loaded": True, "errors": None, "failures": failures})
json.dump(out, sys.stdout)
