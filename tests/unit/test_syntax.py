"""Syntax of AWS ids, regions/AZs and image references, and the spec keys that use them."""

from __future__ import annotations

import pytest

from infra.planning.syntax import (
    AWS_ID_PREFIXES,
    aws_id_error,
    az_region,
    is_aws_id,
    is_region,
    parse_image_reference,
)
from infra.spec import SpecError, check_region, parse_config
from tests.conftest import base_config

# --- AWS ids (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/resource-ids.html) ---------


@pytest.mark.parametrize("prefix", sorted(AWS_ID_PREFIXES))
def test_short_and_long_ids_of_every_kind(prefix: str) -> None:
    assert is_aws_id(f"{prefix}-1a2b3c4d", prefix)
    assert is_aws_id(f"{prefix}-0123456789abcdef0", prefix)


@pytest.mark.parametrize(
    "value",
    [
        "vpc-1",  # too short
        "vpc-123456789",  # 9 digits: neither 8 nor 17
        "vpc-0123456789abcdef",  # 16
        "vpc-0123456789abcdef01",  # 18
        "vpc-0123456789ABCDEF0",  # upper case
        "vpc-0123456789abcdefg",  # not hex
        "vpc_0123456789abcdef0",  # underscore
        "subnet-0123456789abcdef0",  # another kind
        " vpc-0123456789abcdef0",
    ],
)
def test_malformed_vpc_ids(value: str) -> None:
    assert not is_aws_id(value, "vpc")
    assert "vpc- followed by 8 or 17 lowercase hex digits" in (aws_id_error(value, "vpc") or "")


def test_unknown_prefix_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        is_aws_id("i-0123456789abcdef0", "i")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("vpc_id", "vpc-12345"),
        ("subnet_id", "sub-0123456789abcdef0"),
        ("router_subnet_id", "subnet-xyz"),
        ("ami_id", "ami-123"),
    ],
)
def test_spec_refuses_malformed_ids_naming_the_key(key: str, value: str) -> None:
    net = {"vpc_id": "vpc-0123456789abcdef0", "subnet_id": "subnet-0123456789abcdef0"}
    with pytest.raises(SpecError) as e:
        parse_config(base_config(**{**net, key: value}))
    assert e.value.key == f"sglang-cluster:{key}"
    assert value in str(e.value)


def test_spec_accepts_well_formed_ids() -> None:
    spec = parse_config(
        base_config(
            vpc_id="vpc-0123456789abcdef0",
            subnet_id="subnet-1a2b3c4d",
            router_subnet_id="subnet-0fedcba9876543210",
            ami_id="ami-0abcdef1234567890",
        )
    )
    assert spec.vpc_id == "vpc-0123456789abcdef0"


# --- regions and AZs ---------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-2", "ap-southeast-3", "us-gov-west-1"])
def test_region_codes(region: str) -> None:
    assert is_region(region)
    assert az_region(region + "b") == region


@pytest.mark.parametrize("region", ["", "us-east", "US-EAST-1", "us-east-1a", "useast1"])
def test_not_region_codes(region: str) -> None:
    assert not is_region(region)


def test_az_of_another_region_is_refused() -> None:
    spec = parse_config(base_config(availability_zone="us-west-2a"))
    with pytest.raises(SpecError) as e:
        check_region(spec, "us-east-1")
    assert e.value.key == "sglang-cluster:availability_zone"
    assert "us-west-2a is in us-west-2, not in the stack's region us-east-1" in e.value.message


def test_az_of_a_neighbour_region_is_refused_with_a_suggestion() -> None:
    spec = parse_config(base_config(availability_zone="us-east-2a"))
    with pytest.raises(SpecError) as e:
        check_region(spec, "us-east-1")
    assert "such as us-east-1a" in e.value.message


def test_az_of_the_region_and_byo_network_pass() -> None:
    check_region(parse_config(base_config(availability_zone="us-east-1f")), "us-east-1")
    byo = parse_config(
        base_config(
            availability_zone=None,
            vpc_id="vpc-0123456789abcdef0",
            subnet_id="subnet-0123456789abcdef0",
            router_public_ip=False,
        )
    )
    check_region(byo, "eu-central-1")


def test_malformed_region_is_refused_as_aws_region() -> None:
    with pytest.raises(SpecError) as e:
        check_region(parse_config(base_config()), "us-east")
    assert e.value.key == "aws:region"


# --- image references (distribution/reference grammar) ----------------------------------------

DIGEST = "sha256:" + "ff" * 32


@pytest.mark.parametrize(
    ("ref", "domain", "path", "tag", "digest"),
    [
        # the examples distribution/reference's grammar documents and tests
        ("test_com", "", "test_com", "", ""),
        ("test.com:tag", "", "test.com", "tag", ""),
        ("test.com:5000", "", "test.com", "5000", ""),
        ("test.com/repo:tag", "test.com", "repo", "tag", ""),
        ("test:5000/repo", "test:5000", "repo", "", ""),
        ("test:5000/repo:tag", "test:5000", "repo", "tag", ""),
        (f"test:5000/repo@{DIGEST}", "test:5000", "repo", "", DIGEST),
        (f"test:5000/repo:tag@{DIGEST}", "test:5000", "repo", "tag", DIGEST),
        ("lowercase:Uppercase", "", "lowercase", "Uppercase", ""),
        ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", "", ""),
        ("foo_bar.com:8080", "", "foo_bar.com", "8080", ""),
        ("foo/foo_bar.com:8080", "", "foo/foo_bar.com", "8080", ""),
        ("Foo/bar", "Foo", "bar", "", ""),  # upper case: a registry host, as Docker reads it
        ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "repo", "", ""),
        ("localhost:5000/a--b/c__d", "localhost:5000", "a--b/c__d", "", ""),
        # the project's own kinds
        ("lmsysorg/sglang:v0.5.23", "", "lmsysorg/sglang", "v0.5.23", ""),
        (
            f"123456789012.dkr.ecr.us-east-1.amazonaws.com/sglang-prod@{DIGEST}",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "sglang-prod",
            "",
            DIGEST,
        ),
        (
            "public.ecr.aws/lmsysorg/sglang:v0.5.23-cu129",
            "public.ecr.aws",
            "lmsysorg/sglang",
            "v0.5.23-cu129",
            "",
        ),
        ("a/" + "b" * 250, "", "a/" + "b" * 250, "", ""),  # name of 252 characters
        ("repo:" + "t" * 128, "", "repo", "t" * 128, ""),
    ],
)
def test_valid_references(ref: str, domain: str, path: str, tag: str, digest: str) -> None:
    r = parse_image_reference(ref)
    assert (r.domain, r.path, r.tag, r.digest) == (domain, path, tag, digest)


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("", "empty"),
        (":justtag", "grammar"),
        (f"@{DIGEST}", "grammar"),
        (f"repo@sha256:{'f' * 31}", "not a digest"),  # 124-bit digest
        ("validname@invaliddigest:ecc86", "not a digest"),
        ("Uppercase:tag", "upper-case"),
        ("lmsysorg/SGLang:v0.5.23", "upper-case"),
        ("repo:" + "t" * 129, "at most 128"),
        ("repo:-tag", "not a valid tag"),
        ("repo:.tag", "not a valid tag"),
        ("aa/asdf$$^/aa", "grammar"),
        ("a/a/a/a/", "grammar"),
        ("a//a", "grammar"),
        ("a/_/b", "grammar"),
        ("a--.b", "grammar"),
        ("-foo/bar", "grammar"),
        ("foo/bar-", "grammar"),
        ("[fe80::1%eth0]:5000/repo", "grammar"),
        ("registry.example.com:port/repo", "grammar"),
        ("lmsysorg/sglang:v0.5.23 ", "not a valid tag"),
        ("a/" + "b" * 254, "longer than 255"),
    ],
)
def test_invalid_references(ref: str, why: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_image_reference(ref)
    assert why in str(e.value)


def test_spec_refuses_a_bad_image_naming_the_key() -> None:
    with pytest.raises(SpecError) as e:
        parse_config(base_config(image="lmsysorg/SGLang:latest"))
    assert e.value.key == "sglang-cluster:image"
    assert "Docker's reference grammar" in e.value.message
