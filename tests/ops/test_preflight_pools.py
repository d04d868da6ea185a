"""``preflight`` for a PD stack whose pools run on different instance types
(``decode_instance_type``): every GPU type is checked and the P quota counts each node's own
vCPUs (moto for offerings/types/SSM; the quota through the seam, as in test_preflight.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.cli import main
from infra.ops.preflight import run_preflight, stack_facts
from tests.ops.test_preflight import Reader, aws, by_name, publish_dlami, stack_with

__all__ = ["aws"]  # the fixture, used by name


def test_each_pool_type_counts_in_the_quota_and_is_offered(aws: None, tmp_path: Path) -> None:
    publish_dlami()
    facts = stack_facts(stack_with(tmp_path, "pd-disagg", decode_instance_type="p4d.24xlarge"))
    checks = run_preflight(facts, Reader(quotas={"L-417A185B": 300.0}))
    quota = by_name(checks)["vCPU quota"]
    # 1 x p5.48xlarge (192 vCPUs) prefill + 1 x p4d.24xlarge (96 vCPUs) decode = 288 <= 300.
    assert quota.status == "pass", quota.detail
    assert "needs 288" in quota.detail
    offered = [c for c in checks if c.name.startswith("instance offering")]
    assert any("p4d.24xlarge" in c.detail for c in offered), offered
    assert any("p5.48xlarge" in c.detail for c in offered), offered
    types = [c for c in checks if c.name.startswith("instance type")]
    assert any("p4d.24xlarge" in c.detail for c in types), types


def test_slurm_stack_checks_the_head_node_and_not_the_dlami(aws: None) -> None:
    """ParallelCluster boots its own official AMI (``Image.Os``), not the DLAMI: a region
    without the DLAMI parameter is no failure there; the head node's type is what launches
    next to the GPU nodes (the router runs on it with ``slurm_router: head_node``)."""
    facts = stack_facts("slurm-tp16")  # no DLAMI published in moto
    checks = by_name(run_preflight(facts, Reader()))
    assert checks["AMI"].status != "fail" and "ParallelCluster" in checks["AMI"].detail
    assert "c7i.2xlarge" in checks["router offering"].detail


def test_unknown_aws_profile_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """botocore raises ProfileNotFound when the session is made (before any call): one clear
    line and exit 1, never a traceback."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    code = main(["preflight", "dev"])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.out + captured.err
    line = next(ln for ln in captured.out.splitlines() if "credentials" in ln)
    assert "FAIL" in line and "no-such-profile" in captured.out


def test_certificate_must_name_the_endpoint_domain(aws: None) -> None:
    """An ISSUED certificate that does not name ``endpoint_domain`` fails every client's TLS
    verification: preflight says so before the load balancer exists (moto's ACM keeps the
    imported certificate's names)."""
    import dataclasses

    import boto3

    from tests.ops.test_preflight import REGION, _self_signed

    publish_dlami()
    facts = stack_facts("prod-tp16-https")
    assert facts.endpoint_domain == "llm.example.com"
    cert, key = _self_signed()  # CN llm.example.com
    arn = boto3.client("acm", region_name=REGION).import_certificate(Certificate=cert, PrivateKey=key)[
        "CertificateArn"
    ]

    def row(**over: str) -> Any:
        return by_name(run_preflight(dataclasses.replace(facts, certificate_arn=arn, **over), Reader()))[
            "certificate"
        ]

    assert row().status == "pass" and "llm.example.com" in row().detail
    other = row(endpoint_domain="api.example.org")
    assert other.status == "fail" and "does not name api.example.org" in other.detail
    none = row(endpoint_domain="")
    assert none.status == "warn" and "endpoint_domain" in none.detail
