"""The plan JSON of a ``backend: slurm`` stack (``python -m infra plan STACK --format json``).

Same documented fields as the EC2 backend (``shared/ARCHITECTURE.md``), with:
- ``backend: "slurm"``;
- ``nodes``: the head node, then the planned GPU nodes of the Slurm queue. Their addresses are
  placeholders: ``private_ip`` is ``slurm:<node name>``, the static Slurm node the job runs the
  rank on (EC2 assigns the IP at launch); ``processes`` hold each rank's argv from the one argv
  builder, the dist-init address being the Slurm name of the group's rank-0 node. No user data:
  ParallelCluster boots the nodes (``user_data`` is ``""``, ``user_data_bytes`` 0);
- ``slurm``: ``cluster_config`` (the YAML ParallelCluster receives, with the plan's fake ids),
  ``job_script`` (its exact text) and ``cloudformation_template`` (the cluster stack's
  template, as JSON text), plus the names an operator looks for.
"""

from __future__ import annotations

import json
from typing import Any

from infra.planning import slurm

PLACEHOLDER_PREFIX = "slurm:"


def slurm_document(run: Any) -> dict[str, Any]:
    """The ``slurm`` object of the plan JSON.

    Raises:
        KeyError: when the run has no cluster stack (not a SLURM stack).
    """
    plan = run.plan
    stack = run.named("sglang-slurm-cluster")
    params = stack.inputs["parameters"]
    res = slurm.SlurmResources(
        head_subnet_id=params["HeadSubnetId"],
        compute_subnet_id=params["ComputeSubnetId"],
        node_sg_id=params["NodeSecurityGroupId"],
        router_sg_id=params["RouterSecurityGroupId"],
        node_policy_arn=params["NodePolicyArn"],
        actions_bucket=params["ActionsBucket"],
        file_system_id=params.get("FileSystemId", ""),
    )
    image = str(run.outputs["image"])
    return {
        "parallelcluster_version": slurm.PCLUSTER_VERSION,
        "cluster_name": slurm.cluster_name(plan.stack),
        "job_name": slurm.job_name(plan.stack),
        "provider_template_url": slurm.provider_template_url(plan.region),
        "provider_capabilities": list(slurm.PROVIDER_CAPABILITIES),
        "cluster_config": slurm.config_yaml(slurm.cluster_config(plan, res, image)),
        "job_script": slurm.job_script(plan.spec, plan, image),
        "cloudformation_template": stack.inputs["templateBody"],
        "template_parameters": {k: v for k, v in params.items() if k != "ServiceToken"},
    }


def slurm_nodes_document(run: Any) -> list[dict[str, Any]]:
    """``nodes`` of the plan JSON: the head node, then every planned GPU node."""
    plan = run.plan
    spec = plan.spec
    out: list[dict[str, Any]] = [
        {
            "name": "head",
            "role": "head",
            "instance_type": spec.slurm_head_instance_type,
            "private_ip": run.outputs["head_node"]["private_ip"],
            "efa_interfaces": 0,
            "processes": ([{"argv": slurm.router_argv(plan)}] if spec.slurm_router == "head_node" else []),
            "user_data": "",
            "user_data_bytes": 0,
            "user_data_encoding": None,
        }
    ]
    if spec.slurm_router == "own_node":
        out.append(
            {
                "name": "router",
                "role": "router",
                "instance_type": spec.router_instance_type,
                "private_ip": PLACEHOLDER_PREFIX + slurm.router_host(plan),
                "efa_interfaces": 0,
                "processes": [{"argv": slurm.router_argv(plan)}],
                "user_data": "",
                "user_data_bytes": 0,
                "user_data_encoding": None,
            }
        )
    for node in slurm.slurm_nodes(plan):
        out.append(
            {
                "name": node.name,
                "role": "server",
                "group": node.group,
                "node_rank": node.node_rank,
                "slurm_node": node.slurm_name,
                "instance_type": spec.instance_type,
                "private_ip": PLACEHOLDER_PREFIX + node.slurm_name,
                "efa_interfaces": plan.efa_interfaces,
                "processes": [{"argv": a} for a in node.processes],
                "user_data": "",
                "user_data_bytes": 0,
                "user_data_encoding": None,
            }
        )
    return out


def template_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The cluster stack's template of a plan document, parsed."""
    parsed: dict[str, Any] = json.loads(doc["slurm"]["cloudformation_template"])
    return parsed
