"""Router node: a CPU instance that runs ``sglang_router.launch_router`` as a systemd unit.

Its worker URLs are the rank-0 private IPs of every server group: the addresses of the rank-0
nodes' primary network interfaces (:mod:`infra.components.server_fleet`), which exist before
any GPU instance and outlive a replaced node, so the router launches alongside the GPU nodes
and a replaced rank-0 node no longer replaces it.

A public router gets an Elastic IP, so ``router_url`` survives a replaced router. The launch template keeps
``associate_public_ip_address``: the router has one interface, so EC2 gives it a public IPv4 at
launch, and its first boot (apt, PyPI, the AWS CLI, SSM) needs the internet before the EIP
association exists; associating the EIP then releases that auto-assigned address
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-instance-addressing.html#concepts-public-addresses),
so only the EIP stays and is billed.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from infra.components.launch import imdsv2, root_volume
from infra.planning.cluster import ROUTER_AMI_SSM_PARAMETER, ClusterPlan, router_boot
from infra.planning.userdata import pack_b64

ROUTER_ROOT_GIB = 30


class Router(pulumi.ComponentResource):
    """The router instance.

    Attributes:
        instance: the EC2 instance.
        address: Output of the address clients use (public IPv4 when it has one).
    """

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        head_ips: Mapping[int, pulumi.Output[str]],
        subnet_id: pulumi.Input[str],
        security_group_id: pulumi.Input[str],
        instance_profile_arn: pulumi.Input[str],
        depends_on: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
        bundle_bucket: pulumi.Input[str] = "",
    ) -> None:
        super().__init__("sglang:aws:Router", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = plan.spec
        lt = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"SGLang router of stack {plan.stack}",
            image_id=f"resolve:ssm:{ROUTER_AMI_SSM_PARAMETER}",
            instance_type=spec.router_instance_type,
            network_interfaces=[
                aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                    device_index=0,
                    subnet_id=subnet_id,
                    security_groups=[security_group_id],
                    delete_on_termination="true",
                    associate_public_ip_address="true" if spec.router_public_ip else "false",
                )
            ],
            metadata_options=imdsv2(),
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=instance_profile_arn),
            block_device_mappings=[root_volume(ROUTER_ROOT_GIB)],
            update_default_version=True,
            opts=child,
        )
        groups = sorted(head_ips)
        user_data = pulumi.Output.all(bundle_bucket, *[head_ips[g] for g in groups]).apply(
            lambda a: pack_b64(router_boot(plan, dict(zip(groups, a[1:], strict=True)), a[0]).user_data)
        )
        self.instance = aws.ec2.Instance(
            name,
            launch_template=aws.ec2.InstanceLaunchTemplateArgs(
                id=lt.id, version=lt.latest_version.apply(str)
            ),
            user_data_base64=user_data,
            user_data_replace_on_change=True,
            tags={"Name": f"{plan.stack}-router", "sglang:role": "router"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []),
        )
        # --- stable public address (Elastic IP) ---
        self.eip: aws.ec2.Eip | None = None
        if spec.router_public_ip:
            self.eip = aws.ec2.Eip(
                f"{name}-eip", domain="vpc", tags={"Name": f"{plan.stack}-router"}, opts=child
            )
            # A new router is created before the old one is deleted: the new association moves
            # the address (allow_reassociation), the old one's delete then finds nothing to undo.
            aws.ec2.EipAssociation(
                f"{name}-eip-assoc",
                allocation_id=self.eip.allocation_id,
                instance_id=self.instance.id,
                allow_reassociation=True,
                opts=child,
            )
            self.address: pulumi.Output[str] = self.eip.public_ip
        else:
            self.address = self.instance.private_ip
        self.register_outputs({"address": self.address})
