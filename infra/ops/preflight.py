"""``python -m infra preflight STACK_OR_FILE``: check the AWS account before money is spent.

Read-only (only ``Describe*``/``Get*``/``List*``/``Head*`` calls) and never imported by the
Pulumi program. Each check is one row of the table:

- **instance offering**: the region offers the GPU type (and the router's type) in the stack's
  AZ (``DescribeInstanceTypeOfferings``); without an AZ, the AZs that offer it.
- **instance type**: GPU count, GPU memory, vCPUs and ``EfaInfo.MaximumEfaInterfaces``
  (``DescribeInstanceTypes``) against :mod:`infra.planning.catalog`; a difference is a
  warning naming the field (GPU memory: AWS reports the marketing size, the catalog
  nvidia-smi's usable size, so only a difference above 10% counts).
- **vCPU quota**: Service Quotas ``L-417A185B`` (Running On-Demand P instances) or
  ``L-DB2E81BA`` (Running On-Demand G and VT instances), counted in vCPUs, against the vCPUs of
  the stack's GPU nodes plus those of the family's instances already running in the region
  (quota codes: skypilot-catalog ``instance_quota_mapping.csv``, read 2026-11; EC2 user guide,
  "On-Demand Instance quotas",
  https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html).
- **capacity reservation**: ``capacity_reservation_id`` exists, is ``active`` (a Capacity
  Block also ``scheduled``), has the type and AZ, enough available instances, and sits in
  ``placement_group_name`` when that is set
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-reservations-launch.html).
- **AMI**: the public DLAMI SSM parameter resolves (or ``ami_id`` exists).
- **weights bucket**: the bucket of ``model_s3_uri`` exists and is readable, and holds the
  model's folder.
- **certificate**: ``certificate_arn`` (when the spec has that key) is in the stack's region and
  ``ISSUED`` (an ACM certificate serves only in its own region:
  https://docs.aws.amazon.com/acm/latest/userguide/acm-regions.html).

AWS errors (no credentials, access denied, throttling) become one line in the check's row.

The seam: :class:`AccountReader` holds every AWS read. :class:`Boto3Reader` does them with
boto3; moto (the tests) implements EC2 offerings, instance types, SSM, S3, ACM and STS, but
neither Service Quotas for EC2 nor ``DescribeCapacityReservations`` (moto 5.2.5), so the
tests hand :func:`run_preflight` a reader whose ``vcpu_quota`` and ``capacity_reservation``
return recorded values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from infra.ops.report import Check
from infra.planning.catalog import InstanceType

QUOTA_CODES: dict[str, tuple[str, str]] = {
    "p": ("L-417A185B", "Running On-Demand P instances"),
    "g": ("L-DB2E81BA", "Running On-Demand G and VT instances"),
}
"""Service Quotas codes (service ``ec2``, unit vCPUs) by instance family letter."""

QUOTA_FAMILIES: dict[str, tuple[str, ...]] = {"p": ("p",), "g": ("g", "vt")}
"""Instance-type prefixes each quota counts ("Running On-Demand G and VT instances")."""

GPU_MEMORY_TOLERANCE = 0.10
"""Relative GPU-memory difference accepted between AWS (marketing size, e.g. 81920 MiB for
H100) and the catalog (nvidia-smi's usable size, 79.6 GiB)."""


class AwsError(Exception):
    """An AWS call failed; the message is one line (no traceback)."""


def aws_error_line(err: BaseException, action: str) -> str:
    """One line for an AWS error of ``action`` (``ec2:DescribeInstanceTypes``).

    Names the cause an operator can act on: missing credentials, a denied action (the IAM
    action to allow), throttling (retry later), an expired token, or the service's own message.
    """
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    if isinstance(err, ProfileNotFound):
        return f"{err}: check AWS_PROFILE and ~/.aws/config (`aws configure list-profiles`)"
    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials: set AWS_PROFILE, run `aws configure` or `aws sso login`"
    if isinstance(err, NoRegionError):
        return "no AWS region: set aws:region in the stack file"
    if isinstance(err, EndpointConnectionError):
        return f"cannot reach the AWS endpoint for {action}: {err}"
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        msg = str(err.response.get("Error", {}).get("Message", "")).split("\n")[0]
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden", "403"):
            return f"access denied: allow {action} to this identity ({code})"
        if code in ("Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"):
            return f"throttled by AWS on {action} ({code}): run preflight again in a minute"
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            return "AWS credentials expired: refresh them (`aws sso login`, new session token)"
        return f"{action} failed: {code}: {msg}"
    return f"{action} failed: {type(err).__name__}: {err}"


class AccountReader(Protocol):
    """Every AWS read preflight makes (the seam tests fill)."""

    def identity(self) -> str:
        """ARN of the caller (``sts:GetCallerIdentity``)."""
        ...

    def subnet_az(self, subnet_id: str) -> str:
        """AZ of a subnet."""
        ...

    def offered_azs(self, instance_type: str) -> list[str]:
        """AZs of the region that offer the type."""
        ...

    def instance_type(self, instance_type: str) -> dict[str, Any]:
        """``DescribeInstanceTypes`` entry of the type."""
        ...

    def vcpu_quota(self, quota_code: str) -> float | None:
        """Applied value of an ``ec2`` Service Quotas code, vCPUs (``None`` = unknown)."""
        ...

    def running_vcpus(self, family: str) -> int:
        """vCPUs of pending/running instances of the quota's family (``p``, or ``g`` with ``vt``)."""
        ...

    def capacity_reservation(self, reservation_id: str) -> dict[str, Any] | None:
        """``DescribeCapacityReservations`` entry, ``None`` when it does not exist."""
        ...

    def ssm_parameter(self, name: str) -> str | None:
        """Value of an SSM parameter, ``None`` when it does not exist."""
        ...

    def image_exists(self, image_id: str) -> bool:
        """True when the AMI exists and is visible to the account."""
        ...

    def bucket_region(self, bucket: str) -> str:
        """The bucket's region (raises :class:`AwsError` on a missing or unreadable bucket)."""
        ...

    def prefix_has_objects(self, bucket: str, prefix: str) -> bool:
        """True when at least one object's key starts with ``prefix``."""
        ...

    def certificate_status(self, arn: str) -> str:
        """ACM status (``ISSUED``, ``PENDING_VALIDATION``, ...)."""
        ...

    def certificate_names(self, arn: str) -> list[str]:
        """The certificate's ``DomainName`` and ``SubjectAlternativeNames``."""
        ...


class Boto3Reader:
    """:class:`AccountReader` on boto3 (standard retry mode, 5 attempts, for throttling)."""

    def __init__(self, region: str, session: Any = None) -> None:
        import boto3.session
        from botocore.config import Config

        self.region = region
        self._session = session or boto3.session.Session(region_name=region)
        self._config = Config(retries={"mode": "standard", "max_attempts": 5}, region_name=region)
        self._clients: dict[str, Any] = {}

    def _c(self, service: str, region: str | None = None) -> Any:
        key = f"{service}@{region or self.region}"
        if key not in self._clients:
            self._clients[key] = self._session.client(
                service, region_name=region or self.region, config=self._config
            )
        return self._clients[key]

    def identity(self) -> str:
        return str(self._c("sts").get_caller_identity()["Arn"])

    def subnet_az(self, subnet_id: str) -> str:
        return str(self._c("ec2").describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["AvailabilityZone"])

    def offered_azs(self, instance_type: str) -> list[str]:
        pages = (
            self._c("ec2")
            .get_paginator("describe_instance_type_offerings")
            .paginate(
                LocationType="availability-zone",
                Filters=[{"Name": "instance-type", "Values": [instance_type]}],
            )
        )
        return sorted({o["Location"] for p in pages for o in p["InstanceTypeOfferings"]})

    def instance_type(self, instance_type: str) -> dict[str, Any]:
        types = self._c("ec2").describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
        return dict(types[0]) if types else {}

    def vcpu_quota(self, quota_code: str) -> float | None:
        from botocore.exceptions import ClientError

        sq = self._c("service-quotas")
        try:
            return float(sq.get_service_quota(ServiceCode="ec2", QuotaCode=quota_code)["Quota"]["Value"])
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "NoSuchResourceException":
                raise
        # Never requested: the AWS default applies.
        return float(
            sq.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=quota_code)["Quota"]["Value"]
        )

    def running_vcpus(self, family: str) -> int:
        # The type is matched here, not with a server-side wildcard filter: one code path for
        # every family prefix (``p``; ``g`` and ``vt`` share L-DB2E81BA).
        prefixes = QUOTA_FAMILIES.get(family, (family,))
        pages = (
            self._c("ec2")
            .get_paginator("describe_instances")
            .paginate(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
        )
        total = 0
        for page in pages:
            for res in page["Reservations"]:
                for inst in res["Instances"]:
                    itype = str(inst.get("InstanceType", ""))
                    if not itype.startswith(prefixes):
                        continue
                    cpu = inst.get("CpuOptions") or {}
                    if cpu.get("CoreCount"):
                        total += int(cpu["CoreCount"]) * int(cpu.get("ThreadsPerCore", 1))
                    else:
                        total += self._default_vcpus(itype)
        return total

    def _default_vcpus(self, instance_type: str) -> int:
        info = self.instance_type(instance_type)
        return int((info.get("VCpuInfo") or {}).get("DefaultVCpus", 0))

    def capacity_reservation(self, reservation_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            crs = self._c("ec2").describe_capacity_reservations(CapacityReservationIds=[reservation_id])
        except ClientError as e:
            if "NotFound" in str(e.response.get("Error", {}).get("Code", "")):
                return None
            raise
        items = crs.get("CapacityReservations", [])
        return dict(items[0]) if items else None

    def ssm_parameter(self, name: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return str(self._c("ssm").get_parameter(Name=name)["Parameter"]["Value"])
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return None
            raise

    def image_exists(self, image_id: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            return bool(self._c("ec2").describe_images(ImageIds=[image_id])["Images"])
        except ClientError as e:
            if "InvalidAMIID" in str(e.response.get("Error", {}).get("Code", "")):
                return False
            raise

    def bucket_region(self, bucket: str) -> str:
        loc = self._c("s3").get_bucket_location(Bucket=bucket).get("LocationConstraint")
        return str(loc or "us-east-1")

    def prefix_has_objects(self, bucket: str, prefix: str) -> bool:
        region = self.bucket_region(bucket)
        out = self._c("s3", region).list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return int(out.get("KeyCount", 0)) > 0

    def certificate_status(self, arn: str) -> str:
        return str(self._c("acm").describe_certificate(CertificateArn=arn)["Certificate"]["Status"])

    def certificate_names(self, arn: str) -> list[str]:
        cert = self._c("acm").describe_certificate(CertificateArn=arn)["Certificate"]
        names = [str(cert.get("DomainName", "")), *map(str, cert.get("SubjectAlternativeNames") or [])]
        return [n for n in names if n]


def certificate_covers(names: list[str], host: str) -> bool:
    """True when one of ``names`` matches ``host``: exactly, or a wildcard ``*.example.com``
    for one more label (RFC 6125 section 6.4.3, as browsers and Python's ssl apply it)."""
    h = host.lower().rstrip(".")
    for n in (x.lower().rstrip(".") for x in names):
        if n == h or (n.startswith("*.") and "." in h and h.split(".", 1)[1] == n[2:]):
            return True
    return False


@dataclass(frozen=True)
class StackFacts:
    """What preflight needs from the stack file and its offline plan.

    Attributes:
        stack: stack name. region: ``aws:region``. az: ``availability_zone`` ("" = unset).
        subnet_id: ``subnet_id`` (bring-your-own network; its AZ is looked up).
        router_subnet_id: ``router_subnet_id`` (a public router's own subnet; "" = the router
            shares the GPU nodes' AZ).
        gpu_type / router_type: catalog entries. gpu_nodes: GPU nodes the plan creates.
        ami_id: ``ami_id`` ("" = the DLAMI parameter). dlami_parameter: its SSM name.
        reservation_id, capacity_block, placement_group_name: capacity keys.
        model: model id. model_s3_uri: ``model_s3_uri`` ("" = none).
        certificate_arn: the https helper's ``certificate_arn`` ("" when unset or when the
            spec has no such key yet).
    """

    stack: str
    region: str
    az: str
    subnet_id: str
    router_subnet_id: str
    gpu_type: InstanceType
    router_type: InstanceType
    gpu_nodes: int
    ami_id: str
    dlami_parameter: str
    reservation_id: str
    capacity_block: bool
    placement_group_name: str
    model: str
    model_s3_uri: str
    certificate_arn: str
    gpu_node_types: tuple[tuple[InstanceType, int], ...] = ()
    """``(type, node count)`` of every GPU instance type the plan launches (a PD stack's
    pools may differ: ``prefill_instance_type``/``decode_instance_type``); empty = all
    ``gpu_nodes`` are ``gpu_type``."""

    endpoint_domain: str = ""
    """``endpoint_domain``: the name clients reach the https endpoint by ("" = the load
    balancer's own DNS name)."""
    backend: str = "ec2"
    """``backend``: ``slurm`` boots ParallelCluster's own AMI and puts the router on the head
    node (``router_type`` is then the head node's type)."""
    slurm_version: str = ""

    def gpu_types(self) -> tuple[tuple[InstanceType, int], ...]:
        """:attr:`gpu_node_types`, or ``((gpu_type, gpu_nodes),)``."""
        return self.gpu_node_types or ((self.gpu_type, self.gpu_nodes),)


def stack_facts(stack_or_file: str) -> StackFacts:
    """Read and plan a stack offline (no AWS) and keep what preflight checks.

    Raises:
        SpecError: invalid spec. FileNotFoundError / ValueError: no such stack or bad file.
    """
    from infra.mockrun import load_stack_config, stack_file
    from infra.planning.cluster import DLAMI_SSM_PARAMETER, plan_cluster
    from infra.program import region_of
    from infra.spec import PROJECT, SECRET_KEYS, parse_config

    name, path = stack_file(stack_or_file)
    config = load_stack_config(path)
    region = region_of(config)
    spec = parse_config(config)
    present = frozenset(k for k in SECRET_KEYS if config.get(f"{PROJECT}:{k}"))
    plan = plan_cluster(spec, name, region, present)
    from collections import Counter

    from infra.planning.catalog import lookup

    counts = Counter(node.instance_type or plan.node_type.name for node in plan.layout.nodes)
    router_type = spec.router_type
    slurm_version = ""
    if spec.backend == "slurm":
        from infra.planning.slurm import PCLUSTER_VERSION

        slurm_version = PCLUSTER_VERSION
        if spec.slurm_router == "head_node":
            router_type = lookup(spec.slurm_head_instance_type)
    return StackFacts(
        stack=name,
        region=region,
        az=spec.availability_zone,
        subnet_id=spec.subnet_id,
        router_subnet_id=spec.router_subnet_id,
        gpu_type=spec.node_type,
        router_type=router_type,
        gpu_nodes=len(plan.layout.nodes),
        ami_id=spec.ami_id,
        dlami_parameter=DLAMI_SSM_PARAMETER,
        reservation_id=spec.capacity_reservation_id,
        capacity_block=spec.capacity_block,
        placement_group_name=spec.placement_group_name,
        model=spec.model,
        model_s3_uri=spec.model_s3_uri,
        # The https helper adds this key; read it optionally so preflight works before and after.
        certificate_arn=str(getattr(spec, "certificate_arn", "") or ""),
        gpu_node_types=tuple((lookup(t), n) for t, n in sorted(counts.items())),
        backend=spec.backend,
        slurm_version=slurm_version,
        endpoint_domain=str(getattr(spec, "endpoint_domain", "") or ""),
    )


class _NoCredentialsAbortError(Exception):
    """No credentials: every further call would fail the same way."""


def run_preflight(facts: StackFacts, reader: AccountReader) -> list[Check]:
    """Run every check that applies to the stack.

    Args:
        facts: the stack (:func:`stack_facts`).
        reader: the AWS reads (:class:`Boto3Reader`, or a test's).

    Returns:
        The checks in order; ``credentials`` first. Without credentials only that row.
    """
    checks: list[Check] = []

    def run(name: str, action: str, fn: Callable[[], Check | list[Check] | None]) -> None:
        from botocore.exceptions import (
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
            ProfileNotFound,
        )

        try:
            got = fn()
        except (NoCredentialsError, PartialCredentialsError, ProfileNotFound, NoRegionError) as e:
            checks.append(Check(name, "fail", aws_error_line(e, action)))
            raise _NoCredentialsAbortError from None
        except AwsError as e:
            checks.append(Check(name, "fail", str(e)))
            return
        except Exception as e:  # botocore ClientError and friends: one line, never a traceback
            checks.append(Check(name, "fail", aws_error_line(e, action)))
            return
        if isinstance(got, list):
            checks.extend(got)
        elif got is not None:
            checks.append(got)

    try:
        run("credentials", "sts:GetCallerIdentity", lambda: Check("credentials", "pass", reader.identity()))
        found = [facts.az]
        if facts.subnet_id:

            def subnet() -> Check:
                found[0] = reader.subnet_az(facts.subnet_id)
                return Check("subnet", "pass", f"{facts.subnet_id} is in {found[0]}")

            run("subnet", "ec2:DescribeSubnets", subnet)
        az = found[0]
        router_az = [az]
        if facts.router_subnet_id:

            def router_subnet() -> Check:
                router_az[0] = reader.subnet_az(facts.router_subnet_id)
                return Check("router subnet", "pass", f"{facts.router_subnet_id} is in {router_az[0]}")

            run("router subnet", "ec2:DescribeSubnets", router_subnet)
        run(
            "instance offering",
            "ec2:DescribeInstanceTypeOfferings",
            lambda: _offerings(facts, reader, az, router_az[0]),
        )
        run("instance type", "ec2:DescribeInstanceTypes", lambda: _instance_types(facts, reader))
        run("vCPU quota", "servicequotas:GetServiceQuota", lambda: _quota(facts, reader))
        if facts.reservation_id:
            run(
                "capacity reservation",
                "ec2:DescribeCapacityReservations",
                lambda: _reservation(facts, reader, az),
            )
        run("AMI", "ssm:GetParameter", lambda: _ami(facts, reader))
        if facts.model_s3_uri:
            run("weights bucket", "s3:ListBucket", lambda: _bucket(facts, reader))
        if facts.certificate_arn:
            run("certificate", "acm:DescribeCertificate", lambda: _certificate(facts, reader))
    except _NoCredentialsAbortError:
        pass
    return checks


def _offerings(facts: StackFacts, reader: AccountReader, gpu_az: str, router_az: str) -> list[Check]:
    out: list[Check] = []
    roles = [("GPU nodes", t) for t, _ in facts.gpu_types()] + [("router", facts.router_type)]
    for role, t in roles:
        az = gpu_az if role == "GPU nodes" else router_az
        azs = reader.offered_azs(t.name)
        name = "instance offering" if role == "GPU nodes" else "router offering"
        if role == "GPU nodes" and t.name != facts.gpu_type.name:
            name = f"instance offering ({t.name})"
        if not azs:
            out.append(Check(name, "fail", f"{facts.region} offers {t.name} in no AZ; pick another region"))
        elif not az:
            out.append(
                Check(name, "warn", f"no availability_zone set; {t.name} is offered in {', '.join(azs)}")
            )
        elif az in azs:
            out.append(Check(name, "pass", f"{t.name} is offered in {az}"))
        else:
            out.append(
                Check(
                    name,
                    "fail",
                    f"{t.name} is not offered in {az}; AZs of {facts.region} that offer it: "
                    f"{', '.join(azs)} (set availability_zone to one of them)",
                )
            )
    return out


def _instance_types(facts: StackFacts, reader: AccountReader) -> list[Check]:
    """One ``instance type`` row per GPU type of the stack."""
    out: list[Check] = []
    for t, _ in facts.gpu_types():
        c = _instance_type(facts, reader, t)
        name = c.name if t.name == facts.gpu_type.name else f"instance type ({t.name})"
        out.append(Check(name, c.status, c.detail))
    return out


def _instance_type(facts: StackFacts, reader: AccountReader, t: InstanceType | None = None) -> Check:
    t = t or facts.gpu_type
    info = reader.instance_type(t.name)
    if not info:
        raise AwsError(f"DescribeInstanceTypes knows no {t.name} in {facts.region}")
    gpus = (info.get("GpuInfo") or {}).get("Gpus") or [{}]
    aws_gpus = int(gpus[0].get("Count", 0))
    aws_mib = float((gpus[0].get("MemoryInfo") or {}).get("SizeInMiB", 0))
    aws_efa = int(((info.get("NetworkInfo") or {}).get("EfaInfo") or {}).get("MaximumEfaInterfaces", 0))
    aws_vcpus = int((info.get("VCpuInfo") or {}).get("DefaultVCpus", 0))
    diffs: list[str] = []
    if aws_gpus != t.gpus:
        diffs.append(f"GPUs: AWS {aws_gpus}, catalog {t.gpus}")
    if t.gpu_memory_gib and abs(aws_mib / 1024 - t.gpu_memory_gib) > GPU_MEMORY_TOLERANCE * t.gpu_memory_gib:
        diffs.append(f"GPU memory: AWS {aws_mib / 1024:.1f} GiB, catalog {t.gpu_memory_gib} GiB")
    if aws_efa != t.max_efa:
        diffs.append(f"max EFA interfaces: AWS {aws_efa}, catalog {t.max_efa}")
    if aws_vcpus != t.vcpus:
        diffs.append(f"vCPUs: AWS {aws_vcpus}, catalog {t.vcpus}")
    if diffs:
        return Check(
            "instance type",
            "warn",
            f"{t.name} differs from infra/planning/catalog.py: {'; '.join(diffs)} "
            "(the plan used the catalog's figures)",
        )
    return Check(
        "instance type",
        "pass",
        f"{t.name}: {aws_gpus} x {t.gpu_model} {aws_mib / 1024:.0f} GiB, {aws_efa} EFA, {aws_vcpus} vCPUs",
    )


def _quota(facts: StackFacts, reader: AccountReader) -> Check:
    t = facts.gpu_type
    family = t.name[0]
    if family not in QUOTA_CODES:
        return Check("vCPU quota", "warn", f"no on-demand quota code known for {t.name}; not checked")
    code, title = QUOTA_CODES[family]
    quota = reader.vcpu_quota(code)
    if quota is None:
        return Check("vCPU quota", "warn", f"{code} ({title}) could not be read; not checked")
    # The quota is per family group ("Running On-Demand P instances"): every GPU type of the
    # stack in that group counts with its own vCPUs (a PD stack's pools may differ).
    counted = [(x, n) for x, n in facts.gpu_types() if x.name[0] in QUOTA_FAMILIES[family]]
    need = sum(n * x.vcpus for x, n in counted)
    terms = " + ".join(f"{n} x {x.name} x {x.vcpus} vCPUs" for x, n in counted)
    short = " + ".join(f"{n} x {x.vcpus}" for x, n in counted)
    used = reader.running_vcpus(family)
    free = quota - used
    what = f"{code} ({title}) is {quota:.0f} vCPUs, {used} in use"
    if need > free:
        if facts.capacity_block:
            return Check(
                "vCPU quota",
                "warn",
                f"{what}; the stack needs {need} ({short}) and a Capacity Block is set: "
                "check the block's own limits in the EC2 console",
            )
        return Check(
            "vCPU quota",
            "fail",
            f"{what}: {need} more needed ({terms}), {free:.0f} free; "
            f"request an increase: aws service-quotas request-service-quota-increase --service-code ec2 "
            f"--quota-code {code} --desired-value {used + need} --region {facts.region}",
        )
    return Check("vCPU quota", "pass", f"{what}; the stack needs {need} ({short})")


def _reservation(facts: StackFacts, reader: AccountReader, az: str) -> Check:
    rid = facts.reservation_id
    kind = "Capacity Block" if facts.capacity_block else "capacity reservation"
    cr = reader.capacity_reservation(rid)
    if cr is None:
        return Check("capacity reservation", "fail", f"{kind} {rid} does not exist in {facts.region}")
    state = str(cr.get("State", ""))
    ok_states = ("active", "scheduled") if facts.capacity_block else ("active",)
    problems: list[str] = []
    if state not in ok_states:
        problems.append(f"state is {state!r}, not {' or '.join(ok_states)}")
    if cr.get("InstanceType") != facts.gpu_type.name:
        problems.append(f"its type is {cr.get('InstanceType')}, the stack uses {facts.gpu_type.name}")
    if az and cr.get("AvailabilityZone") != az:
        problems.append(f"it is in {cr.get('AvailabilityZone')}, the stack in {az}")
    room_key = "AvailableInstanceCount" if state == "active" else "TotalInstanceCount"
    room = int(cr.get(room_key, 0))
    if room < facts.gpu_nodes:
        problems.append(f"{room} instance(s) available, the stack needs {facts.gpu_nodes}")
    if facts.capacity_block and cr.get("ReservationType") not in (None, "capacity-block"):
        problems.append(f"it is a {cr.get('ReservationType')} reservation, not a Capacity Block")
    platform = cr.get("InstancePlatform")
    if platform not in (None, "Linux/UNIX"):
        # The nodes boot Ubuntu (Linux/UNIX); an instance cannot use a reservation of another
        # platform (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-blocks-launch.html).
        problems.append(f"its platform is {platform}, the nodes run Linux/UNIX")
    pg_arn = str(cr.get("PlacementGroupArn", ""))
    if facts.placement_group_name and not pg_arn.endswith(f"placement-group/{facts.placement_group_name}"):
        problems.append(f"it is not in placement group {facts.placement_group_name} ({pg_arn or 'none'})")
    if problems:
        return Check("capacity reservation", "fail", f"{kind} {rid}: " + "; ".join(problems))
    end = cr.get("EndDate")
    if state == "scheduled":
        # A Capacity Block takes instances from its start date on; before it, the GPU nodes'
        # launch fails while the rest of the stack (image build, FSx, ...) is already billed.
        return Check(
            "capacity reservation",
            "warn",
            f"{kind} {rid}: scheduled, {cr.get('InstanceType')} in {cr.get('AvailabilityZone')}, "
            f"{room} instance(s); it starts {cr.get('StartDate') or '(start date unknown)'}: run "
            "pulumi up after that (the GPU nodes cannot launch into it before)",
        )
    return Check(
        "capacity reservation",
        "pass",
        f"{kind} {rid}: {state}, {cr.get('InstanceType')} in {cr.get('AvailabilityZone')}, "
        f"{room} available" + (f", ends {end}" if end else ""),
    )


def _ami(facts: StackFacts, reader: AccountReader) -> Check:
    if facts.backend == "slurm":
        # ParallelCluster launches its official AMI of the pinned release (Image.Os); its own
        # validators check it when the cluster is created. The DLAMI is not used there.
        return Check(
            "AMI",
            "pass",
            f"backend slurm: ParallelCluster {facts.slurm_version} boots its own official AMI "
            "(not checked here: ParallelCluster's validators check it at cluster creation); no DLAMI needed",
        )
    if facts.ami_id:
        if reader.image_exists(facts.ami_id):
            return Check("AMI", "pass", f"ami_id {facts.ami_id} exists in {facts.region}")
        return Check(
            "AMI", "fail", f"ami_id {facts.ami_id} does not exist in {facts.region} (or is not shared)"
        )
    value = reader.ssm_parameter(facts.dlami_parameter)
    if not value:
        return Check(
            "AMI",
            "fail",
            f"the DLAMI parameter {facts.dlami_parameter} does not resolve in {facts.region}; "
            "the GPU nodes' launch would fail: set ami_id or use a region that publishes the DLAMI",
        )
    return Check("AMI", "pass", f"DLAMI parameter resolves to {value}")


def _bucket(facts: StackFacts, reader: AccountReader) -> Check:
    rest = facts.model_s3_uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    region = reader.bucket_region(bucket)
    folder = f"{prefix}/{facts.model}/" if prefix else f"{facts.model}/"
    if not reader.prefix_has_objects(bucket, folder):
        return Check(
            "weights bucket",
            "fail",
            f"s3://{bucket}/{folder} is empty or missing: the servers would find no weights under "
            f"/fsx/models/{facts.model}",
        )
    if region != facts.region:
        return Check(
            "weights bucket",
            "warn",
            f"s3://{bucket}/{folder} is readable but in {region}, not {facts.region}: "
            "cross-region reads are slower and billed per GB",
        )
    return Check("weights bucket", "pass", f"s3://{bucket}/{folder} is readable ({region})")


def _certificate(facts: StackFacts, reader: AccountReader) -> Check:
    arn = facts.certificate_arn
    parts = arn.split(":")
    cert_region = parts[3] if len(parts) > 3 else ""
    if cert_region != facts.region:
        return Check(
            "certificate",
            "fail",
            f"{arn} is in {cert_region or 'no region'}; a load balancer in {facts.region} needs a "
            f"certificate of {facts.region}",
        )
    status = reader.certificate_status(arn)
    if status != "ISSUED":
        return Check("certificate", "fail", f"{arn} is {status}, not ISSUED (finish its DNS validation)")
    names = reader.certificate_names(arn)
    if not facts.endpoint_domain:
        return Check(
            "certificate",
            "warn",
            f"{arn} is ISSUED for {', '.join(names) or 'no name'}, but endpoint_domain is empty: clients "
            "reach the load balancer's own *.elb.amazonaws.com name, which it does not cover (TLS "
            "verification fails); set endpoint_domain",
        )
    if not certificate_covers(names, facts.endpoint_domain):
        return Check(
            "certificate",
            "fail",
            f"{arn} is ISSUED but does not name {facts.endpoint_domain} (it names "
            f"{', '.join(names) or 'nothing'}): every client's TLS verification would fail",
        )
    return Check("certificate", "pass", f"{arn} is ISSUED and names {facts.endpoint_domain}")
