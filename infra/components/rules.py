"""Security-group rules the components share (one ``aws.vpc`` rule resource per rule)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def egress_anywhere(
    name: str, security_group_id: pulumi.Input[str], description: str, opts: pulumi.ResourceOptions
) -> aws.vpc.SecurityGroupEgressRule:
    """All outbound IPv4 traffic (package, image and model downloads; replies)."""
    return aws.vpc.SecurityGroupEgressRule(
        name,
        security_group_id=security_group_id,
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="-1",
        description=description,
        opts=opts,
    )


def tcp_from_group(
    name: str,
    security_group_id: pulumi.Input[str],
    source_group_id: pulumi.Input[str],
    ports: tuple[int, int],
    description: str,
    opts: pulumi.ResourceOptions,
) -> aws.vpc.SecurityGroupIngressRule:
    """TCP ``ports`` (from, to) into ``security_group_id`` from members of ``source_group_id``."""
    return aws.vpc.SecurityGroupIngressRule(
        name,
        security_group_id=security_group_id,
        referenced_security_group_id=source_group_id,
        ip_protocol="tcp",
        from_port=ports[0],
        to_port=ports[1],
        description=description,
        opts=opts,
    )
