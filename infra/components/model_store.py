"""Model store: FSx for Lustre shared by every node of the stack, optionally backed by S3.

In the nodes' subnet, with its own security group: Lustre traffic on 988 and 1018-1023 from the
nodes and between the file servers themselves
(https://docs.aws.amazon.com/fsx/latest/LustreGuide/limit-access-security-groups.html).
PERSISTENT_2 links S3 through a data repository association at /fsx/models (``import_path`` is
for the older types and maps S3 to the file system root, so the spec refuses S3 with SCRATCH_2).
Lustre servers also open connections back to clients (lock callbacks, reconnects), so the
nodes' group accepts the same ports from the file system's group.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.components.rules import egress_anywhere, tcp_from_group
from infra.planning.cluster import ClusterPlan
from infra.planning.storage import MODELS_DIR

FSX_TIMEOUTS = pulumi.CustomTimeouts(create="45m", update="45m", delete="45m")
"""Creation takes about 10 minutes, larger file systems longer."""

LUSTRE_PORTS = ((988, 988), (1018, 1023))


class ModelStore(pulumi.ComponentResource):
    """The FSx for Lustre file system.

    Attributes:
        dns_name, mount_name: what nodes mount (``<dns>@tcp:/<mount name>``).
        file_system_id: the file system id.
        ready: what GPU instances wait for (ordering only): the S3 data repository
            association when ``model_s3_uri`` is set, else nothing.
    """

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        vpc_id: pulumi.Input[str],
        subnet_id: pulumi.Input[str],
        client_sg_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sglang:aws:ModelStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = plan.spec
        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=vpc_id,
            description="FSx for Lustre model store: Lustre ports from the nodes and itself",
            opts=child,
        )
        # Every rule below exists before CreateFileSystem (see ``rules``).
        rules: list[pulumi.Resource] = []
        for lo, hi in LUSTRE_PORTS:
            for source, what in ((client_sg_id, "nodes"), (sg.id, "self")):
                rule = tcp_from_group(
                    f"{name}-lustre-{lo}-{what}",
                    sg.id,
                    source,
                    (lo, hi),
                    f"Lustre {lo}-{hi} from the {what}",
                    child,
                )
                rules.append(rule)
            callback = tcp_from_group(
                f"{name}-lustre-{lo}-to-nodes",
                client_sg_id,
                sg.id,
                (lo, hi),
                f"Lustre {lo}-{hi} from the file system (callbacks)",
                child,
            )
            rules.append(callback)
        rules.append(
            egress_anywhere(f"{name}-out", sg.id, "Replies to clients and S3 data repository traffic", child)
        )

        scratch = spec.fsx_deployment_type == "SCRATCH_2"
        s3_uri = spec.model_s3_uri
        fs = aws.fsx.LustreFileSystem(
            f"{name}-fs",
            deployment_type=spec.fsx_deployment_type,
            storage_capacity=plan.fsx_capacity_gib,
            storage_type="SSD",
            subnet_ids=subnet_id,
            security_group_ids=[sg.id],
            # Sized for weights_load_target_secs (infra/planning/fsx_sizing.py).
            per_unit_storage_throughput=None
            if scratch or not plan.store
            else plan.store.throughput_mb_per_tib,
            file_system_type_version="2.15",
            data_compression_type="LZ4",
            # Weights can be fetched again; no backups, and none kept on `pulumi destroy`.
            automatic_backup_retention_days=None if scratch else 0,
            skip_final_backup=True,
            tags={"Name": f"{plan.stack}-sglang-models"},
            # FSx checks the groups' rules at CreateFileSystem and fails with
            # InvalidNetworkSettings when they are still being created
            # (https://github.com/aws/aws-parallelcluster/issues/6181). A group made by
            # pulumi-aws has no egress rule until ours exists, so egress is waited for too.
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=FSX_TIMEOUTS, depends_on=rules),
        )
        # What GPU nodes must wait for besides the file system's address: the S3 association,
        # whose files the nodes wait for at boot; it takes minutes and fails on a bad bucket,
        # so no GPU node is billed while it is created or fails.
        self.ready: list[pulumi.Resource] = []
        if s3_uri:
            dra = aws.fsx.DataRepositoryAssociation(
                f"{name}-s3",
                file_system_id=fs.id,
                data_repository_path=s3_uri,
                file_system_path=MODELS_DIR.removeprefix("/fsx"),
                batch_import_meta_data_on_create=True,
                s3=aws.fsx.DataRepositoryAssociationS3Args(
                    auto_import_policy=aws.fsx.DataRepositoryAssociationS3AutoImportPolicyArgs(
                        events=["NEW", "CHANGED", "DELETED"]
                    )
                ),
                delete_data_in_filesystem=False,
                opts=pulumi.ResourceOptions(parent=self, custom_timeouts=FSX_TIMEOUTS),
            )
            self.ready.append(dra)
        self.file_system_id: pulumi.Output[str] = fs.id
        self.dns_name: pulumi.Output[str] = fs.dns_name
        self.mount_name: pulumi.Output[str] = fs.mount_name
        self.security_group_id: pulumi.Output[str] = sg.id
        self.register_outputs({"file_system_id": fs.id, "dns_name": fs.dns_name})
