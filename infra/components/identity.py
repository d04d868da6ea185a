"""Node identity: one IAM role and instance profile per node kind, the stack's log group, and
its secrets in SSM encrypted under a KMS key that only this stack's roles may use.

Why a customer-managed key: ``AmazonSSMManagedInstanceCore`` (attached for Session Manager)
allows ``ssm:GetParameter`` on ``*``, and the AWS managed ``aws/ssm`` key lets every principal
in the account decrypt through SSM, so an inline ``/sglang/<stack>/*`` scope limits nothing:
any SSM-managed instance in the account could read the HF token. "The AWS managed key for
Parameter Store (aws/ssm) grants Decrypt permission to all IAM principals in the AWS account"
(https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-restrict-decryption.html).
With a customer-managed key whose policy names only this stack's roles, reading the value
needs ``kms:Decrypt`` under that key, which no other principal gets (see
:func:`key_policy_document` for the exact statements and why the account root gets only
administrative actions).

Roles per kind (least privilege, this stack's ARNs only):
- GPU servers: CloudWatch Logs on the stack's log group, ``ssm:GetParameter`` on the HF-token
  parameter, ECR pull from this stack's image repository (plus ``ecr:GetAuthorizationToken``,
  which AWS allows only on ``*``), S3 read on the weights prefix when ``model_s3_uri`` is set;
- router: CloudWatch Logs, ``ssm:GetParameter`` on the router-API-key parameter; nothing else.
Each kind also gets ``s3:GetObject`` on exactly its node-bundle object (one ARN, no wildcard:
:mod:`infra.components.bundle`).
Both attach ``AmazonSSMManagedInstanceCore`` so operators reach nodes without SSH
(https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.planning.bundle import Kind
from infra.planning.cluster import ClusterPlan

SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"

KMS_DELETION_WINDOW_DAYS = 7
"""The minimum pending window of ``ScheduleKeyDeletion`` (7-30 days,
https://docs.aws.amazon.com/kms/latest/APIReference/API_ScheduleKeyDeletion.html)."""

KEY_ADMIN_ACTIONS: tuple[str, ...] = (
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:ListGrants",
    "kms:PutKeyPolicy",
    "kms:UpdateKeyDescription",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
)
"""What the account (through IAM) may do with the key: manage it, never use it. The provider
reads DescribeKey/GetKeyPolicy/GetKeyRotationStatus/ListResourceTags after every change
(terraform-provider-aws ``internal/service/kms/key.go``), the alias needs Create/Update/
DeleteAlias on the key, ``pulumi destroy`` needs ScheduleKeyDeletion, and PutKeyPolicy keeps
``PutKeyPolicy``'s lockout safety check satisfied. No Encrypt/Decrypt/GenerateDataKey/ReEncrypt
and no CreateGrant (a grant could hand out Decrypt)."""

LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]


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


def parameter_arn(region: str, account: str, name: str) -> str:
    """ARN of the SSM parameter ``name`` (``/sglang/<stack>/hf-token``).

    This is also the value of the ``PARAMETER_ARN`` encryption context Parameter Store sends
    with every Encrypt/Decrypt of a SecureString
    (https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html).
    """
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def key_alias_name(stack: str) -> str:
    """KMS alias of the stack's secrets key: ``alias/sglang/<stack>/secrets``.

    Pulumi stack names may contain ``.``; KMS alias names may hold only ``[0-9A-Za-z_/-]``
    after ``alias/`` (https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html;
    pulumi-aws refuses anything else at preview), so every other character becomes ``-``.
    """
    return f"alias/sglang/{re.sub(r'[^0-9A-Za-z_-]', '-', stack)}/secrets"


def log_streams_arn(log_group_arn: str) -> str:
    """``arn:...:log-group:NAME:*``: the form the stream-level Logs actions need.

    ``logs:CreateLogStream``/``PutLogEvents``/``DescribeLogStreams`` are authorized against
    ``log-group:NAME:*`` (or ``:log-stream:...``); the bare ``log-group:NAME`` ARN matches
    none of them (aws/aws-cdk#7096). ``log_group_arn`` is the provider's ``arn`` output,
    which carries no ``:*`` suffix.
    """
    return f"{log_group_arn.removesuffix(':*')}:*"


def _logs_statement(log_group_arn: str) -> dict[str, Any]:
    return {
        "Sid": "StackLogs",
        "Effect": "Allow",
        "Action": list(LOG_ACTIONS),
        "Resource": log_streams_arn(log_group_arn),
    }


def _bundle_statement(bundle_arn: str | None) -> list[dict[str, Any]]:
    """``s3:GetObject`` on the node kind's bundle object only (its exact key, no wildcard)."""
    if not bundle_arn:
        return []
    return [{"Sid": "NodeBundle", "Effect": "Allow", "Action": "s3:GetObject", "Resource": bundle_arn}]


def _params_statement(plan: ClusterPlan, account: str, key: str) -> list[dict[str, Any]]:
    name = plan.secret_params.get(key)
    if not name:
        return []
    return [
        {
            "Sid": "StackParameter",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters"],
            "Resource": parameter_arn(plan.region, account, name),
        }
    ]


def server_policy_document(
    plan: ClusterPlan, account: str, repo_arn: str | None, log_group_arn: str, bundle_arn: str | None = None
) -> dict[str, Any]:
    """Inline policy of the GPU-node role (pure: tests read it directly).

    Args:
        plan: the cluster plan. account: AWS account id (12 digits). repo_arn: the stack's ECR
            repository ARN (``None`` in ``uri`` mode; an image given by ECR URI then gets pull
            on its own repository only). log_group_arn: the stack's log group ARN.
            bundle_arn: ARN of the server bundle object (``None``: no statement).

    Returns:
        An IAM policy document: logs on the stack's group, its bundle object, the HF-token parameter (when set),
        image pull (ECR images only) and S3 weights read (when ``model_s3_uri`` is set).
    """
    if not repo_arn and plan.spec.image_source == "uri":
        repo_arn = given_ecr_repository_arn(plan.spec.image)
    statements = [
        _logs_statement(log_group_arn),
        *_bundle_statement(bundle_arn),
        *_params_statement(plan, account, "hf_token"),
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


def router_policy_document(
    plan: ClusterPlan, account: str, log_group_arn: str, bundle_arn: str | None = None
) -> dict[str, Any]:
    """Inline policy of the router role: logs, its bundle object and the router-API-key
    parameter, nothing else.

    Args:
        plan: the cluster plan. account: AWS account id. log_group_arn: the stack's log group.
        bundle_arn: ARN of the router bundle object (``None``: no statement).
    """
    statements = [
        _logs_statement(log_group_arn),
        *_bundle_statement(bundle_arn),
        *_params_statement(plan, account, "router_api_key"),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def node_policy_document(
    plan: ClusterPlan, account: str, repo_arn: str | None, log_group_arn: str
) -> dict[str, Any]:
    """Kept for callers of the one-role design: the GPU-node policy
    (:func:`server_policy_document`)."""
    return server_policy_document(plan, account, repo_arn, log_group_arn)


def key_policy_document(
    plan: ClusterPlan,
    account: str,
    deployer_arn: str,
    server_role_arn: str,
    router_role_arn: str,
) -> dict[str, Any]:
    """Key policy of the stack's secrets key (pure: tests read it directly).

    Statements:
    - ``AccountAdministersKey``: the account root (and the deployer, named so that the lockout
      safety check passes on the key policy alone) may run :data:`KEY_ADMIN_ACTIONS` only. Not
      ``kms:*``: root ``kms:*`` delegates *use* to IAM, so any principal whose IAM policies allow
      ``kms:Decrypt`` on ``*`` (PowerUserAccess, broad custom policies) could read the secrets
      through SSM. Administrative actions stay delegated so the key never becomes unmanageable
      (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html) and
      ``PutKeyPolicy``'s lockout safety check passes for an IAM principal allowed
      ``kms:PutKeyPolicy`` (https://docs.aws.amazon.com/kms/latest/APIReference/API_PutKeyPolicy.html).
    - ``DeployerWritesParameters``: the identity running ``pulumi up`` (``deployer_arn``: an IAM
      user or the role behind an assumed-role session) may Encrypt (``PutParameter``) and
      Decrypt (the provider reads the value back after every write and on refresh), through SSM
      and for this stack's parameters only.
    - ``ServersReadHfToken`` / ``RouterReadsApiKey``: each node role may Decrypt, through SSM,
      only the parameter of its kind. The ``kms:EncryptionContext:PARAMETER_ARN`` condition
      is what keeps the router from the HF token: ``AmazonSSMManagedInstanceCore`` already lets
      every node call ``ssm:GetParameter`` on any parameter, so an IAM-side scope alone would
      not (https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html).

    Args:
        plan: the cluster plan (region, secret parameter names).
        account: AWS account id. deployer_arn: IAM ARN of the deploying principal.
        server_role_arn / router_role_arn: ARNs of the node roles.

    Returns:
        A key policy document (only statements for secrets the stack sets).
    """
    via_ssm = f"ssm.{plan.region}.amazonaws.com"
    root = f"arn:aws:iam::{account}:root"
    # The deployer by name as well: the lockout safety check then passes on the key policy
    # alone, whatever IAM policies the deployer has.
    admins = [root] if deployer_arn == root else [root, deployer_arn]
    arns = {k: parameter_arn(plan.region, account, n) for k, n in plan.secret_params.items()}

    def use(sid: str, principal: str, actions: list[str], params: list[str]) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": actions,
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": via_ssm,
                    "kms:CallerAccount": account,
                    "kms:EncryptionContext:PARAMETER_ARN": params if len(params) > 1 else params[0],
                }
            },
        }

    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountAdministersKey",
            "Effect": "Allow",
            "Principal": {"AWS": admins if len(admins) > 1 else admins[0]},
            "Action": list(KEY_ADMIN_ACTIONS),
            "Resource": "*",
        },
        use("DeployerWritesParameters", deployer_arn, ["kms:Encrypt", "kms:Decrypt"], sorted(arns.values())),
    ]
    if "hf_token" in arns:
        statements.append(use("ServersReadHfToken", server_role_arn, ["kms:Decrypt"], [arns["hf_token"]]))
    if "router_api_key" in arns:
        statements.append(
            use("RouterReadsApiKey", router_role_arn, ["kms:Decrypt"], [arns["router_api_key"]])
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _ec2_trust() -> str:
    return json.dumps(
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
    )


class NodeIdentity(pulumi.ComponentResource):
    """Roles and instance profiles per node kind, log group, secrets key and parameters.

    ``bundle_arns`` (``{"server"|"router": object ARN}``, from
    :class:`infra.components.bundle.NodeBundles`) gives each kind's role ``s3:GetObject`` on
    exactly its bundle object; without it no S3 statement is added.

    Attributes:
        server_profile_arn: instance profile ARN of the GPU nodes.
        router_profile_arn: instance profile ARN of the router.
        server_ready / router_ready: what each kind's instances must wait for (its role
            policy and the parameters it reads), so boot never races IAM or SSM.
        ready: both lists together.
        log_group_name: the CloudWatch log group.
        kms_key_arn: ARN of the secrets key, ``None`` when the stack sets no secret.
    """

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        repo_arn: pulumi.Output[str] | None,
        secrets: dict[str, pulumi.Output[str]],
        opts: pulumi.ResourceOptions | None = None,
        bundle_arns: Mapping[Kind, pulumi.Output[str]] | None = None,
    ) -> None:
        super().__init__("sglang:aws:NodeIdentity", name, None, opts)
        no_bundle = pulumi.Output.from_input("")
        bundles = dict(bundle_arns or {})
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=plan.log_group,
            retention_in_days=plan.spec.log_retention_days,
            opts=child,
        )
        # Invokes take this component as parent, so they run with the stack's explicit
        # provider (region, default tags), not an ambient default provider.
        invoke = pulumi.InvokeOutputOptions(parent=self)
        caller = aws.get_caller_identity_output(opts=invoke)
        account = caller.account_id
        repo = repo_arn if repo_arn is not None else pulumi.Output.from_input("")

        roles: dict[str, aws.iam.Role] = {}
        profiles: dict[str, aws.iam.InstanceProfile] = {}
        policies: dict[str, aws.iam.RolePolicy] = {}
        for kind, what in (("servers", "GPU nodes"), ("router", "router node")):
            # The GPU role is the one role of earlier versions under a new name: the aliases
            # keep it (and its profile), so upgrading a stack does not replace its GPU nodes.
            def kind_opts(part: str, kind: str = kind) -> pulumi.ResourceOptions:
                if kind != "servers":
                    return child
                return pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name=f"{name}-{part}")])

            role = aws.iam.Role(
                f"{name}-{kind}-role",
                description=f"SGLang {what} of stack {plan.stack}",
                assume_role_policy=_ec2_trust(),
                opts=kind_opts("role"),
            )
            aws.iam.RolePolicyAttachment(
                f"{name}-{kind}-ssm-core",
                role=role.name,
                policy_arn=SSM_CORE_POLICY,
                opts=kind_opts("ssm-core"),
            )
            if kind == "servers":
                doc = pulumi.Output.all(account, repo, log_group.arn, bundles.get("server", no_bundle)).apply(
                    lambda a: json.dumps(server_policy_document(plan, a[0], a[1] or None, a[2], a[3] or None))
                )
            else:
                doc = pulumi.Output.all(account, log_group.arn, bundles.get("router", no_bundle)).apply(
                    lambda a: json.dumps(router_policy_document(plan, a[0], a[1], a[2] or None))
                )
            policies[kind] = aws.iam.RolePolicy(
                f"{name}-{kind}-policy", role=role.id, policy=doc, opts=kind_opts("policy")
            )
            profiles[kind] = aws.iam.InstanceProfile(
                f"{name}-{kind}-profile", role=role.name, opts=kind_opts("profile")
            )
            roles[kind] = role

        self.server_ready: list[pulumi.Resource] = [policies["servers"]]
        self.router_ready: list[pulumi.Resource] = [policies["router"]]
        self.kms_key_arn: pulumi.Output[str] | None = None
        if secrets:
            # The deployer as an IAM ARN (the role behind an assumed-role session), so the key
            # policy names a principal that exists and does not change per session.
            deployer = aws.iam.get_session_context_output(arn=caller.arn, opts=invoke).issuer_arn
            key_policy = pulumi.Output.all(
                account, deployer, roles["servers"].arn, roles["router"].arn
            ).apply(lambda a: json.dumps(key_policy_document(plan, a[0], a[1], a[2], a[3])))
            key = aws.kms.Key(
                f"{name}-secrets-key",
                description=f"SGLang stack {plan.stack}: SSM SecureString parameters",
                deletion_window_in_days=KMS_DELETION_WINDOW_DAYS,
                enable_key_rotation=True,
                policy=key_policy,
                opts=child,
            )
            aws.kms.Alias(
                f"{name}-secrets-key-alias",
                name=key_alias_name(plan.stack),
                target_key_id=key.key_id,
                opts=child,
            )
            self.kms_key_arn = key.arn
            for key_name, value in secrets.items():
                param = aws.ssm.Parameter(
                    f"{name}-{key_name.replace('_', '-')}",
                    name=plan.secret_params[key_name],
                    type="SecureString",
                    # Standard whatever the account's default tier: standard values are
                    # encrypted directly (kms:Encrypt/Decrypt, what the key policy grants);
                    # Advanced ones need kms:GenerateDataKey (envelope encryption) and bill.
                    tier="Standard",
                    key_id=key.arn,
                    value=value,
                    description=f"SGLang stack {plan.stack}: {key_name}",
                    opts=child,
                )
                (self.router_ready if key_name == "router_api_key" else self.server_ready).append(param)
        self.ready: list[pulumi.Resource] = [*self.server_ready, *self.router_ready]
        self.server_profile_arn: pulumi.Output[str] = profiles["servers"].arn
        self.router_profile_arn: pulumi.Output[str] = profiles["router"].arn
        self.log_group_name: pulumi.Output[str] = log_group.name
        self.register_outputs(
            {
                "server_profile_arn": self.server_profile_arn,
                "router_profile_arn": self.router_profile_arn,
                "log_group": log_group.name,
            }
        )
