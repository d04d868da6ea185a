"""``python -m infra preflight`` against moto's AWS (``mock_aws``): offerings, instance types,
SSM, S3, ACM and STS are moto's. moto 5.2.5 has neither EC2's Service Quotas nor
``DescribeCapacityReservations``, so those two reads go through the seam
(:class:`infra.ops.preflight.AccountReader`) with recorded values."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from infra.cli import main
from infra.mockrun import STACKS_DIR
from infra.ops.preflight import Boto3Reader, StackFacts, run_preflight, stack_facts
from infra.planning.cluster import DLAMI_SSM_PARAMETER

REGION = "us-east-1"
DLAMI = "ami-0123456789abcdef0"


class Reader(Boto3Reader):
    """moto for everything it implements; recorded quota and reservations for the rest."""

    def __init__(
        self, quotas: dict[str, float] | None = None, reservations: dict[str, dict[str, Any]] | None = None
    ):
        super().__init__(REGION)
        self.quotas = quotas if quotas is not None else {"L-417A185B": 1536.0, "L-DB2E81BA": 64.0}
        self.reservations = reservations or {}

    def vcpu_quota(self, quota_code: str) -> float | None:
        return self.quotas.get(quota_code)

    def capacity_reservation(self, reservation_id: str) -> dict[str, Any] | None:
        return self.reservations.get(reservation_id)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def publish_dlami(value: str = DLAMI) -> None:
    """Add the public DLAMI parameter the way moto loads its own public parameters (moto
    publishes only Amazon Linux/ECS ones and refuses PutParameter under /aws/)."""
    from moto.ssm.models import Parameter, SimpleSystemManagerBackend, ssm_backends

    backend = ssm_backends[DEFAULT_ACCOUNT_ID][REGION]
    assert isinstance(backend, SimpleSystemManagerBackend)
    params = backend._parameters
    # moto's model metaclass types the constructor's result as its BaseModel.
    params[DLAMI_SSM_PARAMETER].append(
        cast(
            Parameter,
            Parameter(
                account_id=DEFAULT_ACCOUNT_ID,
                name=DLAMI_SSM_PARAMETER,
                value=value,
                parameter_type="String",
                description=None,
                allowed_pattern=None,
                keyid=None,
                last_modified_date=1.0,
                version=1,
                data_type="aws:ec2:image",
            ),
        )
    )


def stack_with(tmp_path: Path, base: str, **keys: Any) -> str:
    doc = yaml.safe_load((STACKS_DIR / f"Pulumi.{base}.yaml").read_text())
    for k, v in keys.items():
        doc["config"][f"sglang-cluster:{k}"] = v
    path = tmp_path / f"Pulumi.{base}-pf.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


def test_missing_offering_quota_shortfall_and_dlami_are_failures(aws: None, tmp_path: Path) -> None:
    """The issue's "done when": three failures with clear lines."""
    facts = stack_facts(stack_with(tmp_path, "dev", availability_zone="us-east-1e"))
    checks = by_name(run_preflight(facts, Reader(quotas={"L-DB2E81BA": 0.0})))
    off = checks["instance offering"]
    assert off.status == "fail"
    assert "g6e.xlarge is not offered in us-east-1e" in off.detail and "us-east-1a" in off.detail
    quota = checks["vCPU quota"]
    assert quota.status == "fail"
    assert (
        "L-DB2E81BA" in quota.detail
        and "4 more needed" in quota.detail
        and "--desired-value 4" in quota.detail
    )
    ami = checks["AMI"]
    assert ami.status == "fail" and DLAMI_SSM_PARAMETER in ami.detail and "does not resolve" in ami.detail
    assert checks["credentials"].status == "pass"


def test_a_good_account_passes(aws: None) -> None:
    publish_dlami()
    checks = run_preflight(stack_facts("prod-tp16"), Reader())
    assert {c.name: c.status for c in checks} == {
        "credentials": "pass",
        "instance offering": "pass",
        "router offering": "pass",
        "instance type": "pass",
        "vCPU quota": "pass",
        "AMI": "pass",
    }
    assert "384" in by_name(checks)["vCPU quota"].detail  # 2 x p5.48xlarge x 192 vCPUs
    assert DLAMI in by_name(checks)["AMI"].detail


def test_running_instances_count_against_the_quota(aws: None) -> None:
    publish_dlami()
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=image, InstanceType="p5.48xlarge", MinCount=1, MaxCount=1)
    quota = by_name(run_preflight(stack_facts("prod-tp16"), Reader(quotas={"L-417A185B": 384.0})))[
        "vCPU quota"
    ]
    assert quota.status == "fail" and "192 in use" in quota.detail


def test_catalog_difference_is_a_named_warning(aws: None) -> None:
    class Differs(Reader):
        def instance_type(self, instance_type: str) -> dict[str, Any]:
            info = super().instance_type(instance_type)
            info["NetworkInfo"]["EfaInfo"]["MaximumEfaInterfaces"] = 16
            return info

    publish_dlami()
    check = by_name(run_preflight(stack_facts("prod-tp16"), Differs()))["instance type"]
    assert check.status == "warn" and "max EFA interfaces: AWS 16, catalog 32" in check.detail


def _reservation(**over: Any) -> dict[str, Any]:
    cr = {
        "CapacityReservationId": "cr-0123456789abcdef0",
        "InstanceType": "p5.48xlarge",
        "AvailabilityZone": "us-east-1a",
        "State": "active",
        "TotalInstanceCount": 2,
        "AvailableInstanceCount": 2,
        "ReservationType": "default",
    }
    cr.update(over)
    return cr


@pytest.mark.parametrize(
    ("over", "expect"),
    [
        ({}, None),
        ({"State": "expired"}, "state is 'expired', not active"),
        ({"AvailabilityZone": "us-east-1b"}, "it is in us-east-1b, the stack in us-east-1a"),
        ({"InstanceType": "p5en.48xlarge"}, "its type is p5en.48xlarge"),
        ({"AvailableInstanceCount": 1}, "1 instance(s) available, the stack needs 2"),
        ({"InstancePlatform": "Windows"}, "its platform is Windows"),
    ],
)
def test_capacity_reservation(aws: None, tmp_path: Path, over: dict[str, Any], expect: str | None) -> None:
    publish_dlami()
    facts = stack_with(tmp_path, "prod-tp16", capacity_reservation_id="cr-0123456789abcdef0")
    reader = Reader(reservations={"cr-0123456789abcdef0": _reservation(**over)})
    check = by_name(run_preflight(stack_facts(facts), reader))["capacity reservation"]
    if expect is None:
        assert check.status == "pass", check
    else:
        assert check.status == "fail" and expect in check.detail


def test_missing_reservation_and_scheduled_block(aws: None, tmp_path: Path) -> None:
    publish_dlami()
    block = stack_with(
        tmp_path, "prod-tp16", capacity_reservation_id="cr-0123456789abcdef0", capacity_block=True
    )
    missing = by_name(run_preflight(stack_facts(block), Reader()))["capacity reservation"]
    assert missing.status == "fail" and "Capacity Block cr-0123456789abcdef0 does not exist" in missing.detail
    scheduled = _reservation(
        State="scheduled",
        AvailableInstanceCount=0,
        ReservationType="capacity-block",
        StartDate=datetime.datetime(2026, 12, 1, 11, 30, tzinfo=datetime.UTC),
    )
    ok = by_name(run_preflight(stack_facts(block), Reader(reservations={"cr-0123456789abcdef0": scheduled})))
    # Usable, but not yet: instances launch into a block from its start date on.
    assert ok["capacity reservation"].status == "warn"
    assert "2026-12-01 11:30" in ok["capacity reservation"].detail
    assert "pulumi up" in ok["capacity reservation"].detail


def test_weights_bucket(aws: None, tmp_path: Path) -> None:
    publish_dlami()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="weights-bucket")
    facts = stack_facts(stack_with(tmp_path, "prod-tp16", model_s3_uri="s3://weights-bucket/models"))
    empty = by_name(run_preflight(facts, Reader()))["weights bucket"]
    assert (
        empty.status == "fail"
        and "s3://weights-bucket/models/Qwen/Qwen2.5-72B-Instruct/ is empty" in empty.detail
    )
    s3.put_object(Bucket="weights-bucket", Key="models/Qwen/Qwen2.5-72B-Instruct/config.json", Body=b"{}")
    assert by_name(run_preflight(facts, Reader()))["weights bucket"].status == "pass"
    gone = dataclasses.replace(facts, model_s3_uri="s3://no-such-weights-bucket/models")
    row = by_name(run_preflight(gone, Reader()))["weights bucket"]
    assert row.status == "fail" and "NoSuchBucket" in row.detail and "\n" not in row.detail


def _self_signed() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llm.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def test_certificate(aws: None) -> None:
    """``certificate_arn`` is the https helper's key: read with getattr, so today's spec (without
    it) gives no row, and a value gives the ACM check."""
    publish_dlami()
    facts = stack_facts("prod-tp16")
    assert facts.certificate_arn == "" and "certificate" not in by_name(run_preflight(facts, Reader()))
    acm = boto3.client("acm", region_name=REGION)
    pending = acm.request_certificate(DomainName="llm.example.com", ValidationMethod="DNS")["CertificateArn"]
    cert, key = _self_signed()
    issued = acm.import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"]

    def row(arn: str) -> Any:
        https = dataclasses.replace(facts, certificate_arn=arn, endpoint_domain="llm.example.com")
        return by_name(run_preflight(https, Reader()))["certificate"]

    assert row(issued).status == "pass"
    assert row(pending).status == "fail" and "PENDING_VALIDATION, not ISSUED" in row(pending).detail
    other = issued.replace(":us-east-1:", ":eu-west-1:")
    assert row(other).status == "fail" and "is in eu-west-1" in row(other).detail


def test_aws_errors_are_one_line_each(aws: None) -> None:
    class Denied(Reader):
        def offered_azs(self, instance_type: str) -> list[str]:
            raise ClientError(
                {
                    "Error": {
                        "Code": "UnauthorizedOperation",
                        "Message": "You are not authorized.\nEncoded...",
                    }
                },
                "DescribeInstanceTypeOfferings",
            )

        def instance_type(self, instance_type: str) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "Rate exceeded"}}, "X")

    checks = by_name(run_preflight(stack_facts("prod-tp16"), Denied()))
    assert checks["instance offering"].detail == (
        "access denied: allow ec2:DescribeInstanceTypeOfferings to this identity (UnauthorizedOperation)"
    )
    assert checks["instance type"].detail.startswith("throttled by AWS on ec2:DescribeInstanceTypes")
    assert all("\n" not in c.detail for c in checks.values())


def test_no_credentials_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No mock: botocore finds no credentials (env cleared, no files, IMDS disabled: nothing
    leaves the machine) and the command prints one row, no traceback."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    code = main(["preflight", "prod-tp16"])
    captured = capsys.readouterr()
    assert code == 1
    assert "no AWS credentials: set AWS_PROFILE" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert "0 passed, 1 failed" in captured.out


def test_cli_exit_codes(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Boto3Reader, "vcpu_quota", lambda self, code: 1536.0)
    monkeypatch.setattr(Boto3Reader, "capacity_reservation", lambda self, rid: None)
    assert main(["preflight", "prod-tp16"]) == 1  # the DLAMI parameter is missing in moto
    publish_dlami()
    assert main(["preflight", "prod-tp16"]) == 0
    out = capsys.readouterr().out
    assert "6 passed, 0 failed" in out
    assert main(["preflight", "no-such-stack"]) == 2


def test_facts_are_read_offline() -> None:
    facts: StackFacts = stack_facts("tp2-dp8")
    assert (
        facts.gpu_nodes == 2
        and facts.gpu_type.name == "p5.48xlarge"
        and facts.router_type.name == "c7i.xlarge"
    )


def test_bring_your_own_subnets_are_looked_up(aws: None) -> None:
    """With subnet_id / router_subnet_id the AZs come from DescribeSubnets (moto's VPC)."""
    publish_dlami()
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    gpu = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24", AvailabilityZone="us-east-1b")["Subnet"][
        "SubnetId"
    ]
    pub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.2.0/24", AvailabilityZone="us-east-1e")["Subnet"][
        "SubnetId"
    ]
    facts = dataclasses.replace(stack_facts("prod-tp16"), az="", subnet_id=gpu, router_subnet_id=pub)
    checks = by_name(run_preflight(facts, Reader()))
    assert checks["subnet"].detail == f"{gpu} is in us-east-1b"
    assert checks["instance offering"].detail == "p5.48xlarge is offered in us-east-1b"
    assert (
        checks["router offering"].status == "fail"
        and "c7i.xlarge is not offered in us-east-1e" in checks["router offering"].detail
    )
