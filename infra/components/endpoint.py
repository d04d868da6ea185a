"""The client endpoint in front of the router: an Application Load Balancer (``endpoint: https``
internet-facing, ``private`` internal), its security group, target group, listener and the
router's registration. ``endpoint: http`` creates none of it.

Traffic: clients (``client_cidrs``) -> load balancer listener only; load balancer -> router port
only (one egress rule out of the load balancer's group, one ingress rule into the router's).
The router has no public IPv4 then (the spec keeps ``router_public_ip`` false).

Deploy order, so nothing races:

- an internet-facing load balancer waits for the internet gateway and the public route
  (CreateLoadBalancer refuses a subnet of a VPC without an internet gateway), an internal one
  for the private route; both wait for the second subnet's route-table association;
- the listener waits for the client ingress rules, so the port answers as soon as it exists;
- the router's registration waits for the load balancer's egress rule and the router group's
  ingress rule, so the first health checks reach the router.

The rules come from pure planning (:mod:`infra.planning.endpoint`), which names their sources.
"""

from __future__ import annotations

import ipaddress
import re

import pulumi
import pulumi_aws as aws

from infra.components.network import Network
from infra.components.rules import tcp_from_group
from infra.planning.cluster import ClusterPlan
from infra.planning.endpoint import (
    endpoint_plan,
    load_balancer_subnet_cidr,
    second_availability_zone,
)


def _slug(cidr: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "-", cidr).strip("-").lower()


class Endpoint(pulumi.ComponentResource):
    """Application Load Balancer in front of the router.

    Attributes:
        load_balancer: the ALB. listener: its one listener. target_group: the router's group.
        dns_name: Output of the ALB's DNS name (point ``endpoint_domain`` at it).
        url: Output of the base URL clients use (``https://...``).
    """

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        net: Network,
        router_instance_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sglang:aws:Endpoint", name, None, opts)
        spec = plan.spec
        ep = endpoint_plan(spec)
        if not ep.load_balancer or ep.health_check is None:
            raise ValueError("Endpoint is only built for endpoint https or private")
        child = pulumi.ResourceOptions(parent=self)

        # --- subnets in two AZs ---
        route: list[pulumi.Resource] = []
        if spec.creates_vpc:
            # Both kinds use the public subnet and a second one on the public route table: an
            # internal load balancer there still gets private addresses only (its scheme decides),
            # and the GPU nodes' private /24 keeps its addresses for their EFA interfaces.
            first, table = net.public_subnet_id, net.public_route_table_id
            assert first is not None and table is not None  # a created VPC has both
            zones = aws.get_availability_zones_output(
                state="available",
                filters=[aws.GetAvailabilityZonesFilterArgs(name="zone-type", values=["availability-zone"])],
                opts=pulumi.InvokeOutputOptions(parent=self),
            )
            second = aws.ec2.Subnet(
                f"{name}-subnet-b",
                vpc_id=net.vpc_id,
                cidr_block=load_balancer_subnet_cidr(spec.vpc_cidr),
                availability_zone=zones.names.apply(
                    lambda names: second_availability_zone(names, spec.availability_zone)
                ),
                tags={"Name": f"{plan.stack}-sglang-lb-b"},
                opts=child,
            )
            second_rta = aws.ec2.RouteTableAssociation(
                f"{name}-subnet-b-rta", subnet_id=second.id, route_table_id=table, opts=child
            )
            subnets: list[pulumi.Input[str]] = [first, second.id]
            route = [*net.public_route, second_rta]
        else:
            subnets = list(spec.load_balancer_subnet_ids)

        # --- security groups: clients -> load balancer -> router port ---
        lb_sg = aws.ec2.SecurityGroup(
            f"{name}-lb",
            vpc_id=net.vpc_id,
            description=f"SGLang endpoint: {ep.protocol} {ep.port} from the client CIDRs only",
            opts=child,
        )
        client_rules: list[pulumi.Resource] = []
        for cidr in spec.client_cidrs:
            v6 = ipaddress.ip_network(cidr).version == 6
            client_rules.append(
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-lb-in-{_slug(cidr)}",
                    security_group_id=lb_sg.id,
                    ip_protocol="tcp",
                    from_port=ep.port,
                    to_port=ep.port,
                    description=f"{ep.protocol} from a client CIDR",
                    cidr_ipv4=None if v6 else cidr,
                    cidr_ipv6=cidr if v6 else None,
                    opts=child,
                )
            )
        # pulumi-aws removes a new group's default allow-all egress: the load balancer reaches
        # the router (traffic and health checks) through this one rule only.
        lb_to_router = aws.vpc.SecurityGroupEgressRule(
            f"{name}-lb-to-router",
            security_group_id=lb_sg.id,
            referenced_security_group_id=net.router_sg_id,
            ip_protocol="tcp",
            from_port=ep.router_port,
            to_port=ep.router_port,
            description="Router port (requests and health checks)",
            opts=child,
        )
        router_from_lb = tcp_from_group(
            f"{name}-router-from-lb",
            net.router_sg_id,
            lb_sg.id,
            (ep.router_port, ep.router_port),
            "Router port from the load balancer only",
            child,
        )

        # --- load balancer, target group, listener, registration ---
        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=ep.internal,
            ip_address_type="ipv4",
            subnets=subnets,
            security_groups=[lb_sg.id],
            idle_timeout=ep.idle_timeout_secs,
            drop_invalid_header_fields=True,
            tags={"Name": f"{plan.stack}-sglang"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=route),
        )
        hc = ep.health_check
        self.target_group = aws.lb.TargetGroup(
            f"{name}-router",
            vpc_id=net.vpc_id,
            target_type="instance",
            protocol="HTTP",
            port=ep.router_port,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                protocol="HTTP",
                port="traffic-port",
                path=hc.path,
                matcher=hc.matcher,
                interval=hc.interval_secs,
                timeout=hc.timeout_secs,
                healthy_threshold=hc.healthy_threshold,
                unhealthy_threshold=hc.unhealthy_threshold,
            ),
            opts=child,
        )
        self.listener = aws.lb.Listener(
            f"{name}-{ep.scheme}",
            load_balancer_arn=self.load_balancer.arn,
            port=ep.port,
            protocol=ep.protocol,
            certificate_arn=ep.certificate_arn or None,
            ssl_policy=ep.ssl_policy or None,
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=self.target_group.arn)
            ],
            # An ALB target group belongs to one load balancer at most ("Load balancers per
            # target group: 1", ALB quotas): when the load balancer is replaced (``internal``
            # changes between https and private), the old listener must go before the new one
            # takes the same target group, else TargetGroupAssociationLimit.
            opts=pulumi.ResourceOptions(parent=self, depends_on=client_rules, delete_before_replace=True),
        )
        self.attachment = aws.lb.TargetGroupAttachment(
            f"{name}-router-target",
            target_group_arn=self.target_group.arn,
            target_id=router_instance_id,
            port=ep.router_port,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[lb_to_router, router_from_lb]),
        )
        self.dns_name: pulumi.Output[str] = self.load_balancer.dns_name
        self.url: pulumi.Output[str] = self.dns_name.apply(ep.url)
        self.register_outputs({"dns_name": self.dns_name, "url": self.url})
