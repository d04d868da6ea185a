"""GPU server fleet: cluster placement group, one launch template, one instance per node.

The launch template carries the EFA interface layout of :mod:`infra.planning.efa` with the EFA
security group on every interface (a template with ``network_interfaces`` cannot use top-level
security groups, https://docs.aws.amazon.com/pcs/latest/userguide/working-with_launch-templates_efa.html)
and all interfaces in one subnet. Instances are named by group and rank.

Parallel launch (issue 10): every node's primary interface (card 0, device 0: the ENA
interface that carries the node's private IPv4) is an ``aws.ec2.NetworkInterface`` created
before any instance, and each node gets its own launch template that attaches it
(``network_interface_id``; an existing interface gets no subnet, groups or type of its own in
the template). Ranks >= 1 read their rank 0's address from rank 0's *interface*, which exists
seconds after the subnet, so no instance waits for another and every rank of a group launches
at once. The address survives a replaced node (the interface is kept and re-attached), so a
replaced rank 0 no longer changes its peers' or the router's user data. An instance-level
``private_ip`` is not an option: EC2 refuses it together with a launch template's network
interfaces (``InvalidParameterCombination``: "Network interfaces and an instance-level private
IP address may not be specified on the same request", hashicorp/terraform#687,
aws/aws-cdk#26208), and EFA types need the template's interfaces.

Capacity (:mod:`infra.planning.capacity`): with a reservation the template targets its ``cr-``
id, and a Capacity Block adds the ``capacity-block`` market type and drops the placement group.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.components.capacity import market_options, reservation_target
from infra.components.launch import imdsv2, root_volume
from infra.planning.catalog import lookup
from infra.planning.cluster import ClusterPlan, Runtime, server_node_boot
from infra.planning.efa import network_interfaces
from infra.planning.userdata import pack_b64


class ServerFleet(pulumi.ComponentResource):
    """Every GPU node of the stack.

    Attributes:
        instances: ``{node name: Instance}``.
        interfaces: ``{node name: its primary NetworkInterface}`` (created before any instance).
        launch_templates: ``{node name: its LaunchTemplate}``.
        head_ips: ``{group: Output of the rank-0 private IP}`` (from rank 0's interface).
        placement_group: the placement group name (created or ``placement_group_name``), or
            ``None`` without one (no EFA, or a Capacity Block).
    """

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        subnet_id: pulumi.Input[str],
        security_group_id: pulumi.Input[str],
        instance_profile_arn: pulumi.Input[str],
        runtime: pulumi.Output[Runtime],
        depends_on: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sglang:aws:ServerFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        pg = None
        if plan.uses_placement_group:
            pg = aws.ec2.PlacementGroup(f"{name}-pg", strategy="cluster", opts=child)
        cap = plan.capacity
        placement_name: pulumi.Input[str] | None = pg.name if pg else (cap.placement_group_name or None)

        # One primary interface per node first: its address is known before any instance.
        self.interfaces: dict[str, aws.ec2.NetworkInterface] = {
            node.name: aws.ec2.NetworkInterface(
                f"{node.name}-eni",
                subnet_id=subnet_id,
                security_groups=[security_group_id],
                description=f"Primary interface of {plan.stack}-{node.name} (kept across replacement)",
                tags={"Name": f"{plan.stack}-{node.name}"},
                opts=child,
            )
            for node in plan.layout.nodes
        }
        self.head_ips: dict[int, pulumi.Output[str]] = {
            n.group: self.interfaces[n.name].private_ip for n in plan.layout.nodes if n.is_head
        }

        def interfaces(
            primary: aws.ec2.NetworkInterface, instance_type: str
        ) -> list[aws.ec2.LaunchTemplateNetworkInterfaceArgs]:
            # A PD pool of another instance type has its own EFA layout (infra/planning/pd.py).
            layout = (
                plan.interfaces
                if instance_type == plan.node_type.name
                else network_interfaces(lookup(instance_type))
            )
            out = []
            for i in layout:
                if i.is_primary:
                    # An existing interface: no subnet, groups or delete flag (it outlives the
                    # instance, so a replaced node keeps its address).
                    out.append(
                        aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                            network_card_index=0, device_index=0, network_interface_id=primary.id
                        )
                    )
                    continue
                out.append(
                    aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                        network_card_index=i.network_card_index,
                        device_index=i.device_index,
                        interface_type=i.interface_type,
                        subnet_id=subnet_id,
                        security_groups=[security_group_id],
                        delete_on_termination="true",
                        # No public-IP flag at all: multi-interface launches never get a public IPv4.
                    )
                )
            return out

        self.launch_templates: dict[str, aws.ec2.LaunchTemplate] = {}
        self.instances: dict[str, aws.ec2.Instance] = {}
        for node in plan.layout.nodes:
            node_type = node.instance_type or plan.node_type.name
            lt = aws.ec2.LaunchTemplate(
                f"{node.name}-lt",
                description=f"SGLang {node_type} node {node.name} of stack {plan.stack}",
                image_id=plan.image_id,
                instance_type=node_type,
                network_interfaces=interfaces(self.interfaces[node.name], node_type),
                placement=(
                    aws.ec2.LaunchTemplatePlacementArgs(group_name=placement_name) if placement_name else None
                ),
                # A targeted launch never falls back to on-demand capacity.
                capacity_reservation_specification=reservation_target(cap),
                instance_market_options=market_options(cap),
                metadata_options=imdsv2(),
                iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=instance_profile_arn),
                block_device_mappings=[root_volume(plan.root_volume_gib)],
                update_default_version=True,
                opts=child,
            )
            self.launch_templates[node.name] = lt
            template = aws.ec2.InstanceLaunchTemplateArgs(id=lt.id, version=lt.latest_version.apply(str))
            # Rank 0's user data needs no IP (it reads its own from IMDS at boot); the others
            # get it from rank 0's interface, never from rank 0's instance.
            head_ip = pulumi.Output.from_input("") if node.is_head else self.head_ips[node.group]
            user_data = pulumi.Output.all(head_ip, runtime).apply(
                lambda a, n=node: pack_b64(server_node_boot(plan, n, a[0], a[1]).user_data)
            )
            inst = aws.ec2.Instance(
                node.name,
                launch_template=template,
                user_data_base64=user_data,
                user_data_replace_on_change=True,
                tags={
                    "Name": f"{plan.stack}-{node.name}",
                    "sglang:role": "server" if node.role == "regular" else node.role,
                    "sglang:group": str(node.group),
                    "sglang:node-rank": str(node.rank),
                },
                # Replace in place: creating first would need twice the p5 capacity in one
                # cluster placement group and bill both sets meanwhile. With a reservation the
                # old node's slot returns to it once the node is terminated (which the delete
                # waits for; a Capacity Block takes minutes to clean up,
                # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-launch.html),
                # and no other account can take it in between.
                opts=pulumi.ResourceOptions(
                    parent=self, delete_before_replace=True, depends_on=depends_on or []
                ),
            )
            self.instances[node.name] = inst
        self.placement_group = placement_name
        self.register_outputs({"instance_ids": {k: v.id for k, v in self.instances.items()}})
