"""Regions outside the commercial ``aws`` partition are refused before anything is created.

The program writes ``arn:aws:...`` ARNs into IAM policies and the KMS key policy
(``arn:aws:iam::<account>:root``, ``arn:aws:ssm:...:parameter/...``,
``arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore``); GovCloud (``arn:aws-us-gov:``),
China (``arn:aws-cn:``) and the ISO partitions refuse those at create time, after the VPC and
roles already exist. The partition table is checked against the AWS SDK's own endpoint data
(botocore's ``data/partitions.json``, a pinned dependency of this project).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore
import pytest

from infra.planning.syntax import PARTITION_REGIONS, region_partition
from infra.spec import SpecError, check_region, parse_config
from tests.conftest import base_config

BOTOCORE_PARTITIONS = Path(botocore.__file__).parent / "data" / "partitions.json"


def botocore_partition(region: str) -> str:
    """The partition botocore's endpoint data gives a region code (``""`` for none)."""
    data = json.loads(BOTOCORE_PARTITIONS.read_text())
    for p in data["partitions"]:
        if region in p.get("regions", {}) or re.match(p["regionRegex"], region):
            return p["id"]
    return ""


def test_partition_table_is_botocores() -> None:
    data = json.loads(BOTOCORE_PARTITIONS.read_text())
    theirs = {p["id"]: p["regionRegex"].replace("\\-", "-").strip("^$") for p in data["partitions"]}
    assert dict(PARTITION_REGIONS) == theirs


REGIONS = [
    "us-east-1",
    "eu-west-2",
    "ap-southeast-3",
    "il-central-1",
    "mx-central-1",
    "us-gov-west-1",
    "us-gov-east-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "eu-isoe-west-1",
    "us-isof-south-1",
]


@pytest.mark.parametrize("region", REGIONS)
def test_region_partition_matches_botocore(region: str) -> None:
    assert region_partition(region) == botocore_partition(region) != ""


@pytest.mark.parametrize(
    ("region", "partition"),
    [("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn"), ("us-iso-east-1", "aws-iso")],
)
def test_other_partitions_are_refused_as_aws_region(region: str, partition: str) -> None:
    spec = parse_config(base_config(availability_zone=f"{region}a"))
    with pytest.raises(SpecError) as e:
        check_region(spec, region)
    assert e.value.key == "aws:region"
    assert f"{region} is in the {partition} partition" in e.value.message
    assert "arn:aws:" in e.value.message


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-2", "ap-southeast-3"])
def test_commercial_regions_pass(region: str) -> None:
    check_region(parse_config(base_config(availability_zone=f"{region}a")), region)
