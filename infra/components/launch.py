"""Launch-template pieces shared by the GPU fleet and the router."""

from __future__ import annotations

import pulumi_aws as aws

ROOT_DEVICE = "/dev/sda1"
"""Root device name of Ubuntu AMIs (the DLAMI and Canonical's)."""


def imdsv2() -> aws.ec2.LaunchTemplateMetadataOptionsArgs:
    """IMDSv2 only, hop limit 2 so a container on the node can reach IMDS
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-options.html)."""
    return aws.ec2.LaunchTemplateMetadataOptionsArgs(
        http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=2
    )


def root_volume(size_gib: int) -> aws.ec2.LaunchTemplateBlockDeviceMappingArgs:
    """Encrypted gp3 root volume of ``size_gib`` GiB, deleted with the instance."""
    return aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
        device_name=ROOT_DEVICE,
        ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
            volume_size=size_gib,
            volume_type="gp3",
            encrypted="true",
            delete_on_termination="true",
        ),
    )
