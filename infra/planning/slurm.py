"""The SLURM backend as pure data: the AWS ParallelCluster cluster configuration, the
CloudFormation template of the stack that holds the ``Custom::PclusterCluster`` resource, and
the planned compute nodes with their per-rank argv. No Pulumi, no cloud.

With ``backend: slurm`` the stack deploys one ParallelCluster cluster (a head node and one
Slurm queue of static GPU nodes) through ParallelCluster's CloudFormation custom resource
(https://docs.aws.amazon.com/parallelcluster/latest/ug/cloudformation-v3.html, read 2026-11):

- a *provider stack* from the template ParallelCluster publishes per version and region
  (:func:`provider_template_url`); its ``ServiceToken`` output is the ARN of the Lambda function
  that creates, updates and deletes clusters. It holds a SAM transform, IAM roles and managed
  policies with names, so it needs :data:`PROVIDER_CAPABILITIES`;
- a *cluster stack* (:func:`cloudformation_template`) with one ``Custom::PclusterCluster``
  resource whose ``ClusterConfiguration`` property is the cluster configuration as a mapping
  (:func:`cluster_config`). Values that exist only once other resources do (subnet, security
  groups, file system, IAM policy, bucket) are template parameters, so the template is the
  same text at plan time and at ``pulumi up``.

The cluster configuration follows the ParallelCluster 3.16 schema; ``tests/conformance``
loads the YAML of every SLURM stack through ``pcluster.schemas.cluster_schema.ClusterSchema``
of the pinned ``aws-parallelcluster`` package, and the template through ``cfn-lint``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from infra.planning import argv as argvs
from infra.planning import flags
from infra.planning.storage import FSX_MOUNT

if TYPE_CHECKING:
    from infra.planning.cluster import ClusterPlan
    from infra.spec import StackSpec

PCLUSTER_VERSION = "3.16.1"
"""AWS ParallelCluster release the cluster runs (provider template, Lambda layer, official AMI)
and whose ``aws-parallelcluster`` package validates the configuration in CI
(``tools/requirements-pcluster.txt``). 3.16.1 is the version ParallelCluster's own provider
stack page shows in its template snippet (user guide, ``cfn-provider-stack``, read 2026-11)."""

PROVIDER_CAPABILITIES: tuple[str, ...] = (
    "CAPABILITY_IAM",
    "CAPABILITY_NAMED_IAM",
    "CAPABILITY_AUTO_EXPAND",
)
"""The provider template declares ``Transform: AWS::Serverless-2016-10-31`` (AUTO_EXPAND), IAM
roles (IAM) and, in its nested policies stack, managed policies and a role with fixed names
(NAMED_IAM) (aws/aws-parallelcluster ``cloudformation/custom_resource/cluster.yaml``)."""

OS = "ubuntu2204"
"""``Image.Os``: the official ParallelCluster AMI of the pinned version for this OS (NVIDIA
driver, CUDA, the EFA installer with aws-ofi-nccl, the Lustre client, Enroot and Pyxis), the
same Ubuntu release as the EC2 backend's DLAMI."""

QUEUE = "gpu"
"""The Slurm partition of the GPU nodes."""

ROUTER_QUEUE = "router"
"""The Slurm partition of the router's own node (``slurm_router: own_node``)."""

CLUSTER_LOGICAL_ID = "PclusterCluster"
"""Logical id of the ``Custom::PclusterCluster`` resource in the cluster stack."""

SSH_CLOSED_CIDR = "127.0.0.1/32"
"""``HeadNode.Ssh.AllowedIps``: loopback only, so the SSH rule ParallelCluster writes into the
head node's security group admits no one."""

SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
"""Session Manager for every node role. ParallelCluster 3.16.1 attaches only
``AdditionalIamPolicies`` and CloudWatchAgentServerPolicy to the roles it creates
(``_add_node_role`` in ``pcluster/templates/cdk_builder_utils.py``); its provider Lambda may
attach this AWS managed policy (``IamPolicy`` statement of
``cloudformation/policies/parallelcluster-policies.yaml``). SSH stays closed
(:data:`SSH_CLOSED_CIDR`), so without it nobody reaches the head node."""

HEAD_ROOT_VOLUME_GIB = 100
"""Head node root volume: Slurm, the router's virtual environment and logs (no image, no weights)."""

ACTIONS_PREFIX = "custom-actions"
"""Key prefix of the custom-action scripts in the stack's bucket."""

JOB_SCRIPT_KEY = "job/sglang-serve.sbatch"
"""Key of the serving job script in the stack's bucket: the head node's custom action
downloads it and submits it (the ``slurm-job`` part renders its text)."""

HEAD_ACTION = "sglang-head-node.sh"
COMPUTE_ACTION = "sglang-compute-node.sh"
ROUTER_ACTION = "sglang-router-node.sh"
ACTION_FILES: tuple[str, ...] = (HEAD_ACTION, COMPUTE_ACTION, ROUTER_ACTION)
"""Static scripts under ``slurm/custom-actions/`` uploaded to ``custom-actions/<name>``; they take
everything they need as arguments (ParallelCluster ``CustomActions.*.Args``), never templated."""

TEMPLATE_PARAMETERS: dict[str, str] = {
    "ServiceToken": "ServiceToken output of the ParallelCluster provider stack",
    "HeadSubnetId": "Subnet of the head node (public when the router has a public IP)",
    "ComputeSubnetId": "Private subnet of the GPU nodes (one AZ: EFA does not cross AZs)",
    "NodeSecurityGroupId": "EFA security group of the stack (all traffic to and from itself)",
    "RouterSecurityGroupId": "Router security group (router and metrics ports from client CIDRs)",
    "NodePolicyArn": "Customer-managed policy with the stack's node permissions",
    "ActionsBucket": "Bucket holding the custom-action scripts and the job script",
    "FileSystemId": "FSx for Lustre model store mounted at /fsx",
}
"""Parameters of the cluster stack: values that exist only once other resources do."""

_NAME_CHARS = re.compile(r"[^A-Za-z0-9-]+")


@dataclass(frozen=True)
class SlurmResources:
    """Ids the cluster configuration names, as strings or CloudFormation ``Ref`` mappings.

    :func:`cluster_config` takes plain ids for the YAML ParallelCluster receives and
    :data:`TEMPLATE_REFS` for the template (CloudFormation resolves the parameters).
    """

    head_subnet_id: Any
    compute_subnet_id: Any
    node_sg_id: Any
    router_sg_id: Any
    node_policy_arn: Any
    actions_bucket: Any
    file_system_id: Any = ""


TEMPLATE_REFS = SlurmResources(
    head_subnet_id={"Ref": "HeadSubnetId"},
    compute_subnet_id={"Ref": "ComputeSubnetId"},
    node_sg_id={"Ref": "NodeSecurityGroupId"},
    router_sg_id={"Ref": "RouterSecurityGroupId"},
    node_policy_arn={"Ref": "NodePolicyArn"},
    actions_bucket={"Ref": "ActionsBucket"},
    file_system_id={"Ref": "FileSystemId"},
)


def provider_template_url(region: str, version: str = PCLUSTER_VERSION) -> str:
    """URL of ParallelCluster's published provider template for ``version`` in ``region``.

    Pattern from the user guide, "Provider stack hosted by AWS ParallelCluster"
    (https://docs.aws.amazon.com/parallelcluster/latest/ug/cfn-provider-stack.html, read
    2026-11): ``https://${Region}-aws-parallelcluster.s3.${Region}.${URLSuffix}/parallelcluster/
    ${Version}/templates/custom_resource/cluster.yaml``; ``URLSuffix`` is ``amazonaws.com`` in
    the commercial partition, the only one the program accepts (``check_region``).
    """
    return (
        f"https://{region}-aws-parallelcluster.s3.{region}.amazonaws.com/parallelcluster/"
        f"{version}/templates/custom_resource/cluster.yaml"
    )


def cluster_name(stack: str) -> str:
    """The ParallelCluster cluster name: ``sglang-<stack>``, other characters as ``-``.

    ParallelCluster names start with a letter and hold letters, digits and hyphens, at most 60
    characters, and must differ from the CloudFormation stack holding the custom resource (the
    cluster gets a stack of its own under that name; user guide ``cfn-cluster-resource``).
    """
    return _NAME_CHARS.sub("-", f"sglang-{stack}").strip("-")[:60].rstrip("-")


def cluster_stack_name(stack: str) -> str:
    """Name of the CloudFormation stack holding ``Custom::PclusterCluster`` (not the cluster's)."""
    return f"{cluster_name(stack)[:50]}-cluster-cr"


def provider_stack_name(stack: str) -> str:
    """Name of the provider stack."""
    return f"{cluster_name(stack)[:50]}-pcluster-provider"


def compute_resource_name(instance_type: str) -> str:
    """Compute resource name from the instance type: ``p5.48xlarge`` -> ``p5-48xlarge``."""
    return _NAME_CHARS.sub("-", instance_type.replace(".", "-")).lower()


def job_name(stack: str) -> str:
    """Slurm job name of the serving job (``--job-name``; ``squeue --name``)."""
    return f"sglang-{_NAME_CHARS.sub('-', stack)}"


def slurm_node_names(plan: ClusterPlan) -> dict[str, str]:
    """``{layout node name: Slurm node name}``.

    Static nodes of a ParallelCluster queue are named ``<queue>-st-<compute resource>-<n>``,
    ``n`` from 1 (user guide, "Slurm guide for multiple queue mode"); the job takes them in that
    order, so layout node ``i`` (group, then rank) is static node ``i + 1``.
    """
    cr = compute_resource_name(plan.spec.instance_type)
    return {n.name: f"{QUEUE}-st-{cr}-{i + 1}" for i, n in enumerate(plan.layout.nodes)}


def _uri(res: SlurmResources, key: str) -> Any:
    if isinstance(res.actions_bucket, dict):
        return {"Fn::Sub": ["s3://${Bucket}/" + key, {"Bucket": res.actions_bucket}]}
    return f"s3://{res.actions_bucket}/{key}"


def router_argv(plan: ClusterPlan) -> list[str]:
    """The router's argv on the SLURM backend: no workers at start; the job adds its rank-0
    URLs when they answer (``slurm-job`` part). From the one router argv builder."""
    return argvs.router_argv(plan.spec, [], plan.router_startup_timeout_secs)


def _router_action(plan: ClusterPlan, res: SlurmResources) -> dict[str, Any]:
    return {
        "Script": _uri(res, f"{ACTIONS_PREFIX}/{ROUTER_ACTION}"),
        "Args": [flags.ROUTER_VERSION, *router_argv(plan)],
    }


def _router_queue(plan: ClusterPlan, res: SlurmResources, iam: dict[str, Any]) -> dict[str, Any]:
    """``slurm_router: own_node``: a queue of one static CPU node (``router_instance_type``)
    in the head node's subnet with the router group, running the router action."""
    spec = plan.spec
    networking: dict[str, Any] = {
        "SubnetIds": [res.head_subnet_id],
        "AdditionalSecurityGroups": [res.node_sg_id, res.router_sg_id],
    }
    if spec.router_public_ip:
        networking["AssignPublicIp"] = True
    return {
        "Name": ROUTER_QUEUE,
        "CapacityType": "ONDEMAND",
        "Networking": networking,
        "ComputeResources": [
            {
                "Name": compute_resource_name(spec.router_instance_type),
                "InstanceType": spec.router_instance_type,
                "MinCount": 1,
                "MaxCount": 1,
            }
        ],
        "Iam": iam,
        "CustomActions": {"OnNodeConfigured": _router_action(plan, res)},
    }


def router_host(plan: ClusterPlan) -> str:
    """Slurm name of the router's node with ``slurm_router: own_node``
    (``router-st-<compute resource>-1``; it resolves inside the cluster's VPC only)."""
    return f"{ROUTER_QUEUE}-st-{compute_resource_name(plan.spec.router_instance_type)}-1"


def _placement(plan: ClusterPlan) -> dict[str, Any] | None:
    """``Networking.PlacementGroup`` of the queue, or ``None``: a reserved queue (ODCR or
    Capacity Block) takes no placement group (``infra.spec.backend.check`` refuses the pair).

    An On-Demand Capacity Reservation with EFA says ``Enabled: false`` explicitly:
    ParallelCluster's ``EfaPlacementGroupValidator`` (3.16.1, ``cluster_validators.py``) makes
    an EFA compute resource with no placement group key an ERROR at create time ("must be
    explicit ... add 'Enabled: false'"), and only a Capacity Block is exempt."""
    cap = plan.capacity
    if cap.kind == "capacity-block":
        return None
    if cap.reservation_id:
        return {"Enabled": False} if plan.node_type.has_efa else None
    if cap.placement == "created":
        return {"Enabled": True}
    if cap.placement == "existing":
        return {"Enabled": True, "Name": cap.placement_group_name}
    return None


def cluster_config(plan: ClusterPlan, res: SlurmResources, image: str) -> dict[str, Any]:
    """The ParallelCluster 3.16 cluster configuration of a SLURM stack, as data.

    - ``HeadNode``: ``slurm_head_instance_type`` in ``res.head_subnet_id`` with the stack's
      EFA group (FSx and the GPU nodes) and router group (client CIDRs), an Elastic IP when
      ``router_public_ip``, no SSH key and SSH allowed from loopback only (Session Manager),
      IMDS secured; its
      ``OnNodeConfigured`` action prepares the container runtime and submits the serving job.
    - One Slurm queue (:data:`QUEUE`) with one compute resource of ``instance_type`` and
      ``Efa.Enabled``; ``MinCount == MaxCount ==`` the layout's node count (static nodes: the
      endpoint serves all the time, and ParallelCluster requires it for Capacity Blocks);
      ``JobExclusiveAllocation``.
    - Capacity: a ``cluster`` placement group created by ParallelCluster, the existing
      ``placement_group_name``, or none with a Capacity Block (``CapacityType:
      CAPACITY_BLOCK``, which ParallelCluster refuses with a placement group); a
      reservation is targeted by ``CapacityReservationTarget``.
    - ``SharedStorage``: the stack's FSx for Lustre at ``/fsx`` (when the stack has a store).
    - ``Iam``: the stack's customer-managed node policy (the EC2 backend's GPU-node
      statements), AmazonSSMManagedInstanceCore (Session Manager, :data:`SSM_CORE_POLICY`) and
      read access to the custom-action objects, on head and GPU nodes.
    - ``Monitoring``: CloudWatch logs deleted with the cluster (ParallelCluster retains them
      by default).
    - ``CustomActions``: scripts uploaded by the stack, arguments as data.

    Args:
        plan: the cluster plan of a ``backend: slurm`` stack.
        res: ids (plain strings for the YAML, :data:`TEMPLATE_REFS` for the template).
        image: the serving image reference the GPU nodes pull.

    Returns:
        The configuration mapping (dump it with :func:`config_yaml`).

    Source: ParallelCluster 3 configuration reference
    (https://docs.aws.amazon.com/parallelcluster/latest/ug/cluster-configuration-file-v3.html,
    read 2026-11); checked in CI against the schema of the pinned package.
    """
    spec = plan.spec
    cap = plan.capacity
    s3_access = [{"BucketName": res.actions_bucket, "EnableWriteAccess": False}]
    iam = {
        "AdditionalIamPolicies": [{"Policy": res.node_policy_arn}, {"Policy": SSM_CORE_POLICY}],
        "S3Access": s3_access,
    }
    head_sgs = [res.node_sg_id, res.router_sg_id]
    head_actions = [
        {
            "Script": _uri(res, f"{ACTIONS_PREFIX}/{HEAD_ACTION}"),
            "Args": [
                plan.region,
                spec.slurm_container_runtime,
                _uri(res, JOB_SCRIPT_KEY),
                job_name(plan.stack),
            ],
        }
    ]
    if spec.slurm_router == "head_node":
        head_actions.append(_router_action(plan, res))
    head: dict[str, Any] = {
        "InstanceType": spec.slurm_head_instance_type,
        "Networking": {"SubnetId": res.head_subnet_id, "AdditionalSecurityGroups": head_sgs},
        # No key and no port 22: ParallelCluster's head-node group otherwise opens SSH to
        # AllowedIps, default 0.0.0.0/0 (HeadNode/Ssh/AllowedIps). Operators use Session Manager.
        "Ssh": {"AllowedIps": SSH_CLOSED_CIDR},
        "LocalStorage": {"RootVolume": {"Size": HEAD_ROOT_VOLUME_GIB, "Encrypted": True}},
        "Iam": iam,
        "Imds": {"Secured": True},
        "CustomActions": {"OnNodeConfigured": {"Sequence": head_actions}},
    }
    if spec.router_public_ip:
        head["Networking"]["ElasticIp"] = True
    compute: dict[str, Any] = {
        "Name": compute_resource_name(spec.instance_type),
        "InstanceType": spec.instance_type,
        "MinCount": len(plan.layout.nodes),
        "MaxCount": len(plan.layout.nodes),
    }
    if plan.node_type.has_efa:
        compute["Efa"] = {"Enabled": True}
    if cap.reservation_id:
        compute["CapacityReservationTarget"] = {"CapacityReservationId": cap.reservation_id}
    networking: dict[str, Any] = {
        "SubnetIds": [res.compute_subnet_id],
        "AdditionalSecurityGroups": [res.node_sg_id],
    }
    placement = _placement(plan)
    if placement is not None:
        networking["PlacementGroup"] = placement
    compute_script = _uri(res, f"{ACTIONS_PREFIX}/{COMPUTE_ACTION}")
    compute_args = [plan.region, spec.slurm_container_runtime, image]
    queue: dict[str, Any] = {
        "Name": QUEUE,
        "CapacityType": "CAPACITY_BLOCK" if cap.kind == "capacity-block" else "ONDEMAND",
        "Networking": networking,
        "ComputeResources": [compute],
        "ComputeSettings": {
            "LocalStorage": {"RootVolume": {"Size": plan.root_volume_gib, "Encrypted": True}}
        },
        "JobExclusiveAllocation": True,
        "Iam": iam,
        "CustomActions": {
            "OnNodeStart": {"Script": compute_script, "Args": ["start", *compute_args]},
            "OnNodeConfigured": {"Script": compute_script, "Args": ["configured", *compute_args]},
        },
    }
    queues = [queue]
    if spec.slurm_router == "own_node":
        queues.append(_router_queue(plan, res, iam))
    config: dict[str, Any] = {
        "Region": plan.region,
        "Image": {"Os": OS},
        "HeadNode": head,
        "Scheduling": {
            "Scheduler": "slurm",
            "SlurmSettings": {
                # Updates through the custom resource do not stop the fleet first; replace
                # nodes whose settings changed (user guide, "cfn-cluster-ops").
                "QueueUpdateStrategy": "TERMINATE",
            },
            "SlurmQueues": queues,
        },
        # DeletionPolicy Delete: ParallelCluster keeps the cluster's log group by default
        # (Retain), which would outlive `pulumi destroy`.
        "Monitoring": {
            "Logs": {
                "CloudWatch": {
                    "Enabled": True,
                    "RetentionInDays": spec.log_retention_days,
                    "DeletionPolicy": "Delete",
                }
            }
        },
    }
    if plan.uses_model_store:
        config["SharedStorage"] = [
            {
                "MountDir": FSX_MOUNT,
                "Name": "models",
                "StorageType": "FsxLustre",
                "FsxLustreSettings": {"FileSystemId": res.file_system_id},
            }
        ]
    return config


def config_yaml(config: Mapping[str, Any]) -> str:
    """The configuration as ParallelCluster reads it (``pcluster create-cluster
    --cluster-configuration``): block-style YAML, keys in the order built."""
    return yaml.dump(dict(config), Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=120)


class _PlainDumper(yaml.SafeDumper):
    """``SafeDumper`` that writes a mapping used twice (the ``Iam`` block) twice instead of as
    an anchor and an alias: the text reads the same as the data, key by key."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def cloudformation_template(plan: ClusterPlan, image: str) -> dict[str, Any]:
    """The cluster stack's template: parameters, the ``Custom::PclusterCluster`` resource and
    its outputs.

    ``DeletionPolicy: Delete`` appears twice on purpose: as the resource attribute
    (CloudFormation deletes the resource with the stack) and as the resource property the
    provider's Lambda reads to decide whether deleting the resource deletes the cluster
    (default ``Delete``; user guide ``cfn-cluster-resource``). Outputs read the attributes the
    Lambda returns: ``headNode.instanceId``, ``headNode.privateIpAddress`` (and
    ``headNode.publicIpAddress`` with a public router), ``validationMessages`` (the JSON list of
    the last create or update's validator messages) and the cluster name (the physical id).

    Args:
        plan: the cluster plan. image: the serving image reference.

    Returns:
        The template as a mapping (``json.dumps`` it for ``template_body``).
    """
    params = dict(TEMPLATE_PARAMETERS)
    if not plan.uses_model_store:
        params.pop("FileSystemId")
    types = {
        "HeadSubnetId": "AWS::EC2::Subnet::Id",
        "ComputeSubnetId": "AWS::EC2::Subnet::Id",
        "NodeSecurityGroupId": "AWS::EC2::SecurityGroup::Id",
        "RouterSecurityGroupId": "AWS::EC2::SecurityGroup::Id",
    }
    outputs: dict[str, Any] = {
        "ClusterName": {"Description": "ParallelCluster cluster name", "Value": {"Ref": CLUSTER_LOGICAL_ID}},
        "HeadNodeInstanceId": {
            "Description": "Instance id of the head node",
            "Value": {"Fn::GetAtt": [CLUSTER_LOGICAL_ID, "headNode.instanceId"]},
        },
        "HeadNodePrivateIp": {
            "Description": "Private IPv4 of the head node",
            "Value": {"Fn::GetAtt": [CLUSTER_LOGICAL_ID, "headNode.privateIpAddress"]},
        },
        "ValidationMessages": {
            "Description": "ParallelCluster validator messages of the last create or update (JSON)",
            "Value": {"Fn::GetAtt": [CLUSTER_LOGICAL_ID, "validationMessages"]},
        },
    }
    if plan.spec.router_public_ip:
        outputs["HeadNodePublicIp"] = {
            "Description": "Public IPv4 (Elastic IP) of the head node",
            "Value": {"Fn::GetAtt": [CLUSTER_LOGICAL_ID, "headNode.publicIpAddress"]},
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"SGLang stack {plan.stack}: AWS ParallelCluster {PCLUSTER_VERSION} cluster "
        f"{cluster_name(plan.stack)} (Slurm)",
        "Parameters": {k: {"Type": types.get(k, "String"), "Description": d} for k, d in params.items()},
        "Resources": {
            CLUSTER_LOGICAL_ID: {
                "Type": "Custom::PclusterCluster",
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
                "Properties": {
                    "ServiceToken": {"Ref": "ServiceToken"},
                    "ClusterName": cluster_name(plan.stack),
                    "DeletionPolicy": "Delete",
                    "ClusterConfiguration": cluster_config(plan, TEMPLATE_REFS, image),
                },
            }
        },
        "Outputs": outputs,
    }


def template_parameters(plan: ClusterPlan, res: SlurmResources, service_token: str) -> dict[str, str]:
    """Values of the cluster stack's parameters (``aws.cloudformation.Stack(parameters=...)``)."""
    out = {
        "ServiceToken": service_token,
        "HeadSubnetId": res.head_subnet_id,
        "ComputeSubnetId": res.compute_subnet_id,
        "NodeSecurityGroupId": res.node_sg_id,
        "RouterSecurityGroupId": res.router_sg_id,
        "NodePolicyArn": res.node_policy_arn,
        "ActionsBucket": res.actions_bucket,
    }
    if plan.uses_model_store:
        out["FileSystemId"] = res.file_system_id
    return out


@dataclass(frozen=True)
class SlurmNode:
    """One planned GPU node of the Slurm queue.

    Attributes:
        name: the layout's node name (``server-g0-r1``).
        slurm_name: the static Slurm node it runs on (``gpu-st-p5-48xlarge-2``).
        group: node group. node_rank: ``--node-rank``.
        processes: argv of every server rank it runs, dist-init address = the Slurm name of its
            group's rank-0 node (what the job passes; it resolves in the cluster's DNS).
    """

    name: str
    slurm_name: str
    group: int
    node_rank: int
    processes: list[list[str]]


def slurm_nodes(plan: ClusterPlan) -> list[SlurmNode]:
    """The planned GPU nodes with placeholder addresses (their Slurm names) and per-rank argv
    from the one argv builder (:func:`infra.planning.argv.server_argv`)."""
    names = slurm_node_names(plan)
    heads = {n.group: names[n.name] for n in plan.layout.nodes if n.is_head}
    out = []
    for node in plan.layout.nodes:
        out.append(
            SlurmNode(
                node.name,
                names[node.name],
                node.group,
                node.rank,
                [argvs.server_argv(plan.spec, s, node.rank, heads[node.group]) for s in node.servers],
            )
        )
    return out


def job_script(spec: StackSpec, plan: ClusterPlan, image: str | None = None) -> str:
    """The exact text of the serving job script (``slurm.job_script`` of the plan, and the
    content of the S3 object the head node submits).

    Args:
        spec: the stack spec (``plan.spec``).
        plan: the cluster plan.
        image: the image reference the nodes run (the ECR URI in the mirror and build modes, a
            Pulumi output at deploy time); ``None`` = ``spec.image`` (the plan shows that).

    Returns:
        :func:`infra.planning.slurm_job.render_job_script` for the GPU queue (:data:`QUEUE`)
        and the job name the outputs' ``squeue`` command looks for (:func:`job_name`).
    """
    from dataclasses import replace

    from infra.planning import slurm_job

    settings = replace(slurm_job.settings_from_spec(spec, partition=QUEUE), job_name=job_name(plan.stack))
    return slurm_job.render_job_script(spec, plan, settings, image=image)


def check_slurm(plan: ClusterPlan) -> None:
    """Offline rules of a ``backend: slurm`` plan (the spec-only ones are in
    :func:`infra.spec.backend.check`).

    Raises:
        SpecError: ``hf_token`` / ``router_api_key`` when the stack sets them: on the EC2
            backend only the stack's own node roles may decrypt them (a KMS key policy naming
            those roles); ParallelCluster creates the head and compute roles itself, so this
            backend cannot read the secrets yet. Refused rather than deployed unreadable.
    """
    from infra.spec import SpecError, qualified

    for key in sorted(plan.secret_params):
        raise SpecError(
            qualified(key),
            "is not supported with backend: slurm yet (the secrets key policy names the EC2 "
            "backend's node roles; ParallelCluster creates its own): remove the secret, or use "
            "backend: ec2",
        )


def hourly_cost_usd(plan: ClusterPlan) -> float | None:
    """USD/hour of every node of a SLURM stack: the GPU nodes at their capacity rate, the head
    node, and the router's node with ``slurm_router: own_node`` (catalog prices with their
    date, ``plan.estimates.price_source``); ``None`` when a price is unknown."""
    from infra.planning.catalog import lookup

    gpu = plan.capacity.gpu_node_hourly_usd
    extra = [lookup(plan.spec.slurm_head_instance_type).hourly_usd]
    if plan.spec.slurm_router == "own_node":
        extra.append(plan.spec.router_type.hourly_usd)
    if gpu is None or any(p is None for p in extra):
        return None
    return round(len(plan.layout.nodes) * gpu + sum(p for p in extra if p is not None), 2)
