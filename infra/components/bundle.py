"""The stack's private bucket of node bundles (:mod:`infra.planning.bundle`) and one object per
node kind.

The bucket: SSE-S3 by default (``AES256``, no KMS permissions needed on the nodes), every
public-access block on, ACLs disabled (``BucketOwnerEnforced``), a policy that denies any
request not made over TLS (``aws:SecureTransport`` false,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html), and
``force_destroy`` so ``pulumi destroy`` empties and deletes it. Objects: key
``node-bundles/<kind>-<sha256>.tar.gz``, uploaded from memory (``content_base64``), SSE
``AES256``. A changed bundle is a new key: Pulumi creates the new object, the instances whose
user data names it are replaced, and the old object is deleted last.

Nodes read their object through the S3 gateway endpoint of a created VPC (no NAT traffic);
with a brought VPC (``vpc_id``) they reach S3 through whatever route that VPC has (its own
gateway endpoint, a NAT or an internet gateway): the project does not add an endpoint to a
VPC it does not own.
"""

from __future__ import annotations

import base64
import json

import pulumi
import pulumi_aws as aws

from infra.planning.bundle import KINDS, Kind, bundle
from infra.planning.cluster import ClusterPlan


def deny_insecure_transport(bucket_arn: str) -> dict[str, object]:
    """Bucket policy: deny every S3 action on the bucket and its objects without TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


class NodeBundles(pulumi.ComponentResource):
    """Bucket and bundle objects.

    Attributes:
        bucket_name: Output of the bucket name (user data's ``SGLANG_BUNDLE_BUCKET``).
        object_arns: ``{kind: Output of the object's ARN}`` (what each role may read).
        ready: ``{kind: [resources]}`` an instance of that kind waits for: its object and the
            bucket's policy and public-access block.
    """

    def __init__(self, name: str, plan: ClusterPlan, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sglang:aws:NodeBundles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            force_destroy=True,
            tags={"Name": f"{plan.stack}-node-bundles"},
            opts=child,
        )
        sse = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    )
                )
            ],
            opts=child,
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-private",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        owner = aws.s3.BucketOwnershipControls(
            f"{name}-owner",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        # After the public-access block: S3 refuses concurrent configuration changes of one
        # bucket (OperationAborted) and the policy must never be judged before the block.
        policy = aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(deny_insecure_transport(arn))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self.bucket_name: pulumi.Output[str] = bucket.bucket
        self.object_arns: dict[Kind, pulumi.Output[str]] = {}
        self.ready: dict[Kind, list[pulumi.Resource]] = {}
        for kind in KINDS:
            b = bundle(kind)
            obj = aws.s3.BucketObjectv2(
                f"{name}-{kind}",
                bucket=bucket.id,
                key=b.key,
                content_base64=base64.b64encode(b.data).decode("ascii"),
                content_type="application/gzip",
                server_side_encryption="AES256",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[sse, owner]),
            )
            # The ARN from the pure key: the role policy need not wait for the upload.
            self.object_arns[kind] = pulumi.Output.concat(bucket.arn, "/", b.key)
            self.ready[kind] = [obj, policy, block]
        self.register_outputs({"bucket": self.bucket_name})
