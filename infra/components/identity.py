"""Node identity: one IAM role and instance profile per stack, its log group and secrets.

Least privilege, scoped to this stack's ARNs:
- SSM Session Manager (``AmazonSSMManagedInstanceCore``): operators reach nodes without SSH keys
  or port 22. That AWS managed policy carries its own ``"*"`` resources, as Session Manager
  requires (https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html);
- ECR pull from this stack's repository only (plus ``ecr:GetAuthorizationToken``, which AWS
  allows only on ``*``);
- CloudWatch Logs on this stack's log group only;
- SSM ``GetParameter`` on ``/sglang/<stack>/*`` only (SecureStrings under the AWS managed
  ``aws/ssm`` key need no KMS statement: its key policy grants decrypt through SSM);
- S3 read on the weights bucket/prefix only when an S3 association is configured.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.planning.cluster import ClusterPlan

SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


_ECR_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<repo>[^:@]+)"
)


def given_ecr_repository_arn(image: str) -> str | None:
    """ARN of the ECR repository of an image given by URI (``uri`` mode), else ``None``."""
    m = _ECR_URI.match(image)
    if not m:
        return None
    return f"arn:aws:ecr:{m['region']}:{m['account']}:repository/{m['repo']}"


def _s3_parts(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def node_policy_document(
    plan: ClusterPlan, account: str, repo_arn: str | None, log_group_arn: str
) -> dict[str, Any]:
    """The inline policy of the node role as a dict (pure: tests read it directly).

    Args:
        plan: the cluster plan. account: AWS account id. repo_arn: the stack's ECR repository
        ARN (``None`` in ``uri`` mode). log_group_arn: the stack's log group ARN.

    In ``uri`` mode with an image in ECR (your own repository), pull is granted on that
    repository only.
    """
    if not repo_arn and plan.spec.image_source == "uri":
        repo_arn = given_ecr_repository_arn(plan.spec.image)
    statements: list[dict[str, Any]] = [
        {
            "Sid": "StackLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"],
        },
        {
            "Sid": "StackParameters",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters"],
            "Resource": f"arn:aws:ssm:{plan.region}:{account}:parameter/sglang/{plan.stack}/*",
        },
    ]
    if repo_arn:
        statements += [
            {
                "Sid": "StackImagePull",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                "Resource": repo_arn,
            },
            {
                # GetAuthorizationToken has no resource-level permissions: AWS requires "*".
                # https://docs.aws.amazon.com/AmazonECR/latest/userguide/security_iam_id-based-policy-examples.html
                "Sid": "EcrLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
        ]
    if plan.spec.model_s3_uri:
        bucket, prefix = _s3_parts(plan.spec.model_s3_uri)
        statements += [
            {
                "Sid": "WeightsRead",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}*",
            },
            {
                "Sid": "WeightsList",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*" if prefix else "*"]}},
            },
        ]
    return {"Version": "2012-10-17", "Statement": statements}


class NodeIdentity(pulumi.ComponentResource):
    """Role, instance profile, log group and secret parameters of one stack.

    Attributes:
        instance_profile_arn: ARN of the instance profile every node uses.
        log_group_name: the CloudWatch log group.
    """

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        repo_arn: pulumi.Output[str] | None,
        secrets: dict[str, pulumi.Output[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sglang:aws:NodeIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=plan.log_group,
            retention_in_days=plan.spec.log_retention_days,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-role",
            description=f"SGLang nodes of stack {plan.stack}",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm-core", role=role.name, policy_arn=SSM_CORE_POLICY, opts=child
        )
        account = aws.get_caller_identity_output().account_id
        repo = repo_arn if repo_arn is not None else pulumi.Output.from_input("")
        policy = pulumi.Output.all(account, repo, log_group.arn).apply(
            lambda a: json.dumps(node_policy_document(plan, a[0], a[1] or None, a[2]))
        )
        role_policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy, opts=child)
        # Instances wait for these, so boot never races IAM or the parameters.
        self.ready: list[pulumi.Resource] = [role_policy]
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=child)

        for key, value in secrets.items():
            param = aws.ssm.Parameter(
                f"{name}-{key.replace('_', '-')}",
                name=plan.secret_params[key],
                type="SecureString",
                value=value,
                description=f"SGLang stack {plan.stack}: {key}",
                opts=child,
            )
            self.ready.append(param)
        self.instance_profile_arn: pulumi.Output[str] = profile.arn
        self.role_name: pulumi.Output[str] = role.name
        self.log_group_name: pulumi.Output[str] = log_group.name
        self.register_outputs({"instance_profile_arn": profile.arn, "log_group": log_group.name})
