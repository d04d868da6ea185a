"""Network: VPC and subnets (created or given), the EFA and router security groups.

EFA does not cross availability zones: every GPU node uses one subnet in one AZ. The EFA
security group allows all traffic in AND out to itself; without the egress rule NCCL hangs
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html#efa-start-security).
Multi-interface nodes get no public IPv4 (RunInstances), so GPU nodes sit in a private subnet
with a NAT gateway, and an S3 gateway endpoint keeps ECR layer downloads off the NAT.
"""

from __future__ import annotations

import ipaddress
import re

import pulumi
import pulumi_aws as aws

from infra.components.rules import egress_anywhere, tcp_from_group
from infra.planning.cluster import ClusterPlan
from infra.planning.layout import SERVER_PORT_STRIDE


def _slug(cidr: str) -> str:
    """Stable resource-name fragment for a CIDR: ``10.0.0.0/8`` -> ``10-0-0-0-8``."""
    return re.sub(r"[^0-9a-zA-Z]+", "-", cidr).strip("-").lower()


def subnet_cidrs(vpc_cidr: str) -> tuple[str, str]:
    """``(public, private)`` /24s carved from the VPC CIDR (the first two)."""
    subnets = ipaddress.ip_network(vpc_cidr).subnets(new_prefix=24)
    return str(next(subnets)), str(next(subnets))


class Network(pulumi.ComponentResource):
    """VPC, subnets, routes and security groups of one stack.

    Attributes:
        vpc_id: VPC id. node_subnet_id: subnet of the GPU nodes. router_subnet_id: subnet of
        the router. node_sg_id: EFA security group of the GPU nodes. router_sg_id: router's.
        ready: what GPU instances must wait for: the private route table, its association, the
        NAT gateway and the S3 endpoint (created VPC only) and the nodes' security-group rules
        (EFA self rules in and out, egress, server ports from the router).
        router_ready: the same for the router: the route of its subnet (public route table,
        association and internet gateway when it is public, else the private route), the S3
        endpoint and the router group's rules.
        public_subnet_id, public_route_table_id: of a created VPC (None for a brought one), for
        the endpoint's load balancer. public_route: the public subnet's route resources (empty
        for a brought VPC).
    """

    def __init__(
        self, name: str, plan: ClusterPlan, region: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("sglang:aws:Network", name, None, opts)
        spec = plan.spec
        child = pulumi.ResourceOptions(parent=self)
        # What instances wait for (routes, NAT, S3 endpoint, security-group rules), so a node
        # never boots into a subnet without a way out or a group without its rules.
        self.ready: list[pulumi.Resource] = []
        self.router_ready: list[pulumi.Resource] = []

        if spec.creates_vpc:
            public_cidr, private_cidr = subnet_cidrs(spec.vpc_cidr)
            vpc = aws.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=spec.vpc_cidr,
                enable_dns_support=True,
                enable_dns_hostnames=True,
                tags={"Name": f"{plan.stack}-sglang"},
                opts=child,
            )
            igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
            public = aws.ec2.Subnet(
                f"{name}-public",
                vpc_id=vpc.id,
                cidr_block=public_cidr,
                availability_zone=spec.availability_zone,
                tags={"Name": f"{plan.stack}-sglang-public"},
                opts=child,
            )
            private = aws.ec2.Subnet(
                f"{name}-private",
                vpc_id=vpc.id,
                cidr_block=private_cidr,
                availability_zone=spec.availability_zone,
                tags={"Name": f"{plan.stack}-sglang-private"},
                opts=child,
            )
            eip = aws.ec2.Eip(f"{name}-nat-eip", domain="vpc", opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat",
                allocation_id=eip.id,
                subnet_id=public.id,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
            public_rt = aws.ec2.RouteTable(
                f"{name}-public-rt",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
                opts=child,
            )
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-rt",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                opts=child,
            )
            public_rta = aws.ec2.RouteTableAssociation(
                f"{name}-public-rta", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            private_rta = aws.ec2.RouteTableAssociation(
                f"{name}-private-rta", subnet_id=private.id, route_table_id=private_rt.id, opts=child
            )
            s3_endpoint = aws.ec2.VpcEndpoint(
                f"{name}-s3",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{region}.s3",
                vpc_endpoint_type="Gateway",
                route_table_ids=[public_rt.id, private_rt.id],
                opts=child,
            )
            # Boot needs a way out: image pulls, apt and the Hugging Face hub go through the
            # NAT gateway (private) or the internet gateway (public), S3 through the endpoint.
            private_route: list[pulumi.Resource] = [private_rt, private_rta, nat, s3_endpoint]
            public_route: list[pulumi.Resource] = [public_rt, public_rta, igw, s3_endpoint]
            self.ready.extend(private_route)
            self.router_ready.extend(public_route if spec.router_public_ip else private_route)
            self.vpc_id: pulumi.Output[str] = vpc.id
            self.node_subnet_id: pulumi.Output[str] = private.id
            self.router_subnet_id: pulumi.Output[str] = public.id if spec.router_public_ip else private.id
            # For the endpoint's load balancer (infra/components/endpoint.py): its first subnet
            # and the route table its second subnet joins; an internet-facing one needs the
            # internet gateway attached first.
            self.public_subnet_id: pulumi.Output[str] | None = public.id
            self.public_route_table_id: pulumi.Output[str] | None = public_rt.id
            self.public_route: list[pulumi.Resource] = public_route
        else:
            self.vpc_id = pulumi.Output.from_input(spec.vpc_id)
            self.node_subnet_id = pulumi.Output.from_input(spec.subnet_id)
            self.router_subnet_id = pulumi.Output.from_input(spec.router_subnet_id or spec.subnet_id)
            self.public_subnet_id = None
            self.public_route_table_id = None
            self.public_route = []

        nodes_sg = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=self.vpc_id,
            description="SGLang GPU nodes: all traffic between members (EFA, NCCL, dist-init)",
            opts=child,
        )
        nodes_self_in = aws.vpc.SecurityGroupIngressRule(
            f"{name}-nodes-self-in",
            security_group_id=nodes_sg.id,
            referenced_security_group_id=nodes_sg.id,
            ip_protocol="-1",
            description="EFA: all traffic from members of this group",
            opts=child,
        )
        nodes_self_out = aws.vpc.SecurityGroupEgressRule(
            f"{name}-nodes-self-out",
            security_group_id=nodes_sg.id,
            referenced_security_group_id=nodes_sg.id,
            ip_protocol="-1",
            description="EFA: all traffic to members of this group (NCCL hangs without it)",
            opts=child,
        )
        nodes_out = egress_anywhere(
            f"{name}-nodes-out",
            nodes_sg.id,
            "Image pulls and model downloads through the NAT gateway",
            child,
        )

        router_sg = aws.ec2.SecurityGroup(
            f"{name}-router",
            vpc_id=self.vpc_id,
            description=(
                "SGLang router: router and metrics ports from the client CIDRs only"
                if spec.endpoint == "http"
                else "SGLang router: router port from its load balancer only"
            ),
            opts=child,
        )
        # Behind a load balancer (endpoint https/private) clients reach the load balancer only;
        # its component adds the one rule into this group (router port from the load balancer).
        for cidr in spec.client_cidrs if spec.endpoint == "http" else []:
            v6 = ipaddress.ip_network(cidr).version == 6
            for port, what in ((spec.router_port, "router"), (spec.router_prometheus_port, "metrics")):
                router_in = aws.vpc.SecurityGroupIngressRule(
                    f"{name}-router-{what}-in-{_slug(cidr)}",
                    security_group_id=router_sg.id,
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    description=f"SGLang {what} port from a client CIDR",
                    cidr_ipv4=None if v6 else cidr,
                    cidr_ipv6=cidr if v6 else None,
                    opts=child,
                )
                self.router_ready.append(router_in)
        router_out = egress_anywhere(
            f"{name}-router-out",
            router_sg.id,
            "Workers, package installs and the CloudWatch agent download",
            child,
        )
        last_port = spec.server_port + (plan.layout.servers_per_node - 1) * SERVER_PORT_STRIDE
        nodes_from_router = tcp_from_group(
            f"{name}-nodes-from-router",
            nodes_sg.id,
            router_sg.id,
            (spec.server_port, last_port),
            "SGLang server ports from the router",
            child,
        )
        # EFA self rules in AND out (NCCL hangs without egress), before any node boots.
        self.ready.extend([nodes_self_in, nodes_self_out, nodes_out, nodes_from_router])
        self.router_ready.append(router_out)
        self.node_sg_id: pulumi.Output[str] = nodes_sg.id
        self.router_sg_id: pulumi.Output[str] = router_sg.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "node_subnet_id": self.node_subnet_id,
                "node_sg_id": self.node_sg_id,
                "router_sg_id": self.router_sg_id,
            }
        )
