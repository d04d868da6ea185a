"""The SLURM backend: an AWS ParallelCluster cluster deployed through ParallelCluster's
CloudFormation custom resource, and the top component that wires it to the network, the model
store and the serving image.

Resources (:class:`SlurmCluster`):
- the stack's log group, and one customer-managed IAM policy holding the EC2 backend's GPU-node
  statements (:func:`infra.components.identity.server_policy_document`: logs, image pull, S3
  weights), attached by ParallelCluster to the head and compute roles
  (``Iam.AdditionalIamPolicies``). Its path is ``/parallelcluster/``: the provider's Lambda may
  attach only policies named ``parallelcluster*`` or under that path (the ``IamPolicy``
  statement of ``cloudformation/policies/parallelcluster-policies.yaml``);
- a private bucket with the custom-action scripts (``slurm/custom-actions/``) and the serving
  job script; ParallelCluster grants the nodes read access to it (``Iam.S3Access``);
- the provider stack: ParallelCluster's published template for the pinned version and region,
  with the capabilities its SAM transform and named IAM resources need;
- the cluster stack: one ``Custom::PclusterCluster`` (``DeletionPolicy: Delete``, so ``pulumi
  destroy`` deletes the cluster), its ids passed as parameters. Both stacks get long custom
  timeouts: a cluster takes 15-40 minutes to create (head node bootstrap, custom actions).

Outputs follow the cluster stack's outputs: head node id and IPs, ``validationMessages``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.identity import server_policy_document
from infra.components.image import ServingImage
from infra.components.model_store import ModelStore
from infra.components.network import Network
from infra.planning import slurm
from infra.planning.cluster import ClusterPlan

ACTIONS_DIR = Path(__file__).resolve().parents[2] / "slurm" / "custom-actions"

PROVIDER_TIMEOUTS = pulumi.CustomTimeouts(create="30m", update="30m", delete="30m")
"""The provider stack: a Lambda layer, a function, roles and a nested policies stack."""

CLUSTER_TIMEOUTS = pulumi.CustomTimeouts(create="150m", update="150m", delete="90m")
"""The cluster stack waits for ParallelCluster's own stack (head node bootstrap and custom
actions; the Lambda polls until ``CREATE_COMPLETE``); deletion terminates the GPU fleet first."""

CLUSTER_STACK_TIMEOUT_MINUTES = 140
"""CloudFormation's own limit on the cluster stack (below Pulumi's, so CloudFormation reports
the failure and rolls back rather than Pulumi giving up while it still runs)."""


def squeue_command(instance_id: str, region: str, job: str) -> str:
    """The shell command an operator runs to see the serving job (``squeue`` on the head node
    through Session Manager; ``AWS-StartInteractiveCommand`` is an AWS-owned SSM document)."""
    params = json.dumps({"command": [f"/opt/slurm/bin/squeue --name {job} --long"]})
    return (
        f"aws ssm start-session --region {region} --target {instance_id} "
        f"--document-name AWS-StartInteractiveCommand --parameters '{params}'"
    )


class SlurmCluster(pulumi.ComponentResource):
    """ParallelCluster provider stack, cluster stack and what they need.

    Attributes:
        outputs: the cluster stack's outputs (``HeadNodeInstanceId``, ``HeadNodePrivateIp``,
            ``HeadNodePublicIp`` with a public router, ``ValidationMessages``, ``ClusterName``).
        cluster_stack: the ``aws.cloudformation.Stack`` holding ``Custom::PclusterCluster``.
        log_group_name: the stack's log group.
    """

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        net: Network,
        store: ModelStore | None,
        image: ServingImage,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sglang:aws:SlurmCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=plan.log_group, retention_in_days=plan.spec.log_retention_days, opts=child
        )
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        repo = image.repository_arn if image.repository_arn is not None else pulumi.Output.from_input("")
        policy = aws.iam.Policy(
            f"{name}-node-policy",
            path="/parallelcluster/",
            description=f"SGLang stack {plan.stack}: ParallelCluster head and GPU nodes",
            policy=pulumi.Output.all(account, repo, log_group.arn).apply(
                lambda a: json.dumps(server_policy_document(plan, a[0], a[1] or None, a[2]))
            ),
            opts=child,
        )

        bucket = aws.s3.Bucket(f"{name}-actions", force_destroy=True, opts=child)
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-actions-private",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        objects: list[pulumi.Resource] = [block]
        for script in slurm.ACTION_FILES:
            objects.append(
                aws.s3.BucketObjectv2(
                    f"{name}-action-{script.removesuffix('.sh')}",
                    bucket=bucket.id,
                    key=f"{slurm.ACTIONS_PREFIX}/{script}",
                    source=pulumi.FileAsset(str(ACTIONS_DIR / script)),
                    content_type="text/x-shellscript",
                    opts=child,
                )
            )
        # The job script (infra/planning/slurm_job.py) with the image the nodes really pull
        # (the ECR URI in mirror/build modes); the head node's action downloads and submits it.
        objects.append(
            aws.s3.BucketObjectv2(
                f"{name}-job-script",
                bucket=bucket.id,
                key=slurm.JOB_SCRIPT_KEY,
                content=image.image_ref.apply(lambda ref: slurm.job_script(plan.spec, plan, ref)),
                content_type="text/x-shellscript",
                opts=child,
            )
        )

        provider = aws.cloudformation.Stack(
            f"{name}-provider",
            name=slurm.provider_stack_name(plan.stack),
            template_url=slurm.provider_template_url(plan.region),
            capabilities=list(slurm.PROVIDER_CAPABILITIES),
            # Named stacks: a replacement must delete the old one first (names are unique).
            opts=pulumi.ResourceOptions(
                parent=self, custom_timeouts=PROVIDER_TIMEOUTS, delete_before_replace=True
            ),
        )
        service_token = provider.outputs.apply(lambda o: str((o or {}).get("ServiceToken", "")))
        res = slurm.SlurmResources(
            head_subnet_id=net.router_subnet_id,
            compute_subnet_id=net.node_subnet_id,
            node_sg_id=net.node_sg_id,
            router_sg_id=net.router_sg_id,
            node_policy_arn=policy.arn,
            actions_bucket=bucket.id,
            file_system_id=store.file_system_id if store else "",
        )
        params: dict[str, pulumi.Input[str]] = slurm.template_parameters(plan, res, service_token)  # type: ignore[arg-type]  # Outputs in place of str
        image_ref = image.image_ref
        template = image_ref.apply(lambda ref: json.dumps(slurm.cloudformation_template(plan, ref), indent=1))
        self.cluster_stack = aws.cloudformation.Stack(
            f"{name}-cluster",
            name=slurm.cluster_stack_name(plan.stack),
            template_body=template,
            parameters=params,
            timeout_in_minutes=CLUSTER_STACK_TIMEOUT_MINUTES,
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=CLUSTER_TIMEOUTS,
                delete_before_replace=True,
                # Boot needs the routes and every security-group rule (EFA self rules, FSx
                # ports), the S3 association, the scripts and the policy it attaches.
                depends_on=[
                    *net.ready,
                    *net.router_ready,
                    *(store.ready if store else []),
                    *objects,
                    policy,
                ],
            ),
        )
        self.outputs: pulumi.Output[dict[str, str]] = self.cluster_stack.outputs.apply(
            lambda o: {str(k): str(v) for k, v in (o or {}).items()}
        )
        self.log_group_name: pulumi.Output[str] = log_group.name
        self.register_outputs({"cluster_outputs": self.outputs})


class SlurmServingCluster(pulumi.ComponentResource):
    """The whole ``backend: slurm`` stack: image, network, model store, ParallelCluster cluster.

    Attributes:
        outputs: the stack outputs (head node, router URL, OpenAI base URL, job name, the
            ``squeue`` command, ``validation_messages``); never a secret value.
    """

    def __init__(self, name: str, plan: ClusterPlan, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sglang:index:SlurmServingCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        image = ServingImage(f"{name}-image", plan, opts=child)
        net = Network(f"{name}-net", plan, plan.region, opts=child)
        store = None
        if plan.uses_model_store:
            store = ModelStore(
                f"{name}-store", plan, net.vpc_id, net.node_subnet_id, net.node_sg_id, opts=child
            )
        cluster = SlurmCluster(f"{name}-slurm", plan, net, store, image, opts=child)
        self.outputs = self._outputs(plan, cluster, net, image, store)
        self.register_outputs(self.outputs)

    @staticmethod
    def _outputs(
        plan: ClusterPlan, cluster: SlurmCluster, net: Network, image: ServingImage, store: ModelStore | None
    ) -> dict[str, Any]:
        spec = plan.spec
        out = cluster.outputs
        if spec.slurm_router == "own_node":
            router_host: pulumi.Output[str] = pulumi.Output.from_input(slurm.router_host(plan))
        elif spec.router_public_ip:
            router_host = out.apply(lambda o: o.get("HeadNodePublicIp", ""))
        else:
            router_host = out.apply(lambda o: o.get("HeadNodePrivateIp", ""))
        router_url = router_host.apply(lambda h: f"http://{h}:{spec.router_port}")
        head_id = out.apply(lambda o: o.get("HeadNodeInstanceId", ""))
        job = slurm.job_name(plan.stack)
        return {
            "backend": "slurm",
            "router_url": router_url,
            "openai_base_url": router_url.apply(lambda u: f"{u}/v1"),
            "health_url": router_url.apply(lambda u: f"{u}/health"),
            "served_model_name": spec.served_name,
            "cluster_name": slurm.cluster_name(plan.stack),
            "parallelcluster_version": slurm.PCLUSTER_VERSION,
            "head_node": {
                "instance_id": head_id,
                "private_ip": out.apply(lambda o: o.get("HeadNodePrivateIp", "")),
                "public_ip": out.apply(lambda o: o.get("HeadNodePublicIp") or None),
            },
            "slurm_job_name": job,
            "squeue_command": head_id.apply(lambda i: squeue_command(i, plan.region, job)),
            "validation_messages": out.apply(lambda o: o.get("ValidationMessages", "[]")),
            "slurm_nodes": {n.name: n.slurm_name for n in slurm.slurm_nodes(plan)},
            "vpc_id": net.vpc_id,
            "image": image.image_ref,
            "model_store": (
                {
                    "file_system_id": store.file_system_id,
                    "dns_name": store.dns_name,
                    "mount_name": store.mount_name,
                    "capacity_gib": plan.fsx_capacity_gib,
                }
                if store
                else None
            ),
            "log_group": cluster.log_group_name,
            "total_gpus": plan.estimates.gpus,
            "hourly_cost_usd": slurm.hourly_cost_usd(plan),
            "price_source": plan.estimates.price_source,
            "capacity": {"kind": plan.capacity.kind, "reservation_id": plan.capacity.reservation_id or None},
        }
