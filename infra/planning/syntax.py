"""Syntax of identifiers users type into a stack file: AWS resource ids, container image
references and AWS region / Availability Zone names. Pure code, no AWS calls.

These checks catch a typo before ``pulumi up`` creates anything; whether the resource exists
is AWS's answer at deploy time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- AWS resource ids -------------------------------------------------------------------------

AWS_ID_PREFIXES: dict[str, str] = {
    "vpc": "VPC",
    "subnet": "subnet",
    "ami": "AMI",
    "sg": "security group",
    "cr": "capacity reservation (On-Demand Capacity Reservation or Capacity Block)",
}
"""Id prefixes the stack file can hold, with what each names."""

_AWS_ID_BODY = r"(?:[0-9a-f]{8}|[0-9a-f]{17})"


def is_aws_id(value: str, prefix: str) -> bool:
    """Whether ``value`` is an EC2 resource id of kind ``prefix`` (``vpc``, ``subnet``, ...).

    EC2 ids are the prefix, a hyphen, then 8 (before 2016) or 17 lowercase hexadecimal
    characters, e.g. ``vpc-1a2b3c4d`` or ``subnet-0123456789abcdef0``
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/resource-ids.html, read 2026-11).

    Args:
        value: the id as written in the stack file.
        prefix: one of :data:`AWS_ID_PREFIXES`.

    Raises:
        KeyError: for a prefix not in :data:`AWS_ID_PREFIXES`.
    """
    if prefix not in AWS_ID_PREFIXES:
        raise KeyError(prefix)
    return re.fullmatch(rf"{re.escape(prefix)}-{_AWS_ID_BODY}", value) is not None


def aws_id_error(value: str, prefix: str) -> str | None:
    """``None`` when ``value`` is a valid id of kind ``prefix``, else one sentence saying why."""
    if is_aws_id(value, prefix):
        return None
    return (
        f"not a {AWS_ID_PREFIXES[prefix]} id: expected {prefix}- followed by 8 or "
        f"17 lowercase hex digits (e.g. {prefix}-0123456789abcdef0)"
    )


# --- regions and Availability Zones -----------------------------------------------------------

_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d")


def is_region(value: str) -> bool:
    """Whether ``value`` is spelled like an AWS region code (``us-east-1``, ``us-gov-west-1``)."""
    return _REGION.fullmatch(value) is not None


PARTITION_REGIONS: tuple[tuple[str, str], ...] = (
    ("aws", r"(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+"),
    ("aws-cn", r"cn-\w+-\d+"),
    ("aws-us-gov", r"us-gov-\w+-\d+"),
    ("aws-iso", r"us-iso-\w+-\d+"),
    ("aws-iso-b", r"us-isob-\w+-\d+"),
    ("aws-iso-e", r"eu-isoe-\w+-\d+"),
    ("aws-iso-f", r"us-isof-\w+-\d+"),
    ("aws-eusc", r"eusc-(de)-\w+-\d+"),
)
"""AWS partitions and the region codes each holds: ``regionRegex`` of botocore 1.44's
``data/partitions.json`` (the AWS SDKs' endpoint data, read 2026-11)."""


def region_partition(region: str) -> str:
    """The ARN partition of a region code (``aws``, ``aws-cn``, ``aws-us-gov``, ...), or ``""``
    when no partition holds it. ARNs start ``arn:<partition>:``."""
    for partition, pattern in PARTITION_REGIONS:
        if re.fullmatch(pattern, region):
            return partition
    return ""


def az_region(az: str) -> str:
    """The region an Availability Zone name belongs to: the name without its letter.

    AZ names are the region code followed by a letter (``us-east-1a`` is in ``us-east-1``;
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-regions-availability-zones.html,
    read 2026-11). Local Zones (``us-west-2-lax-1a``) are not accepted by the spec.
    """
    return az[:-1]


# --- container image references ---------------------------------------------------------------
# Docker's reference grammar, as distribution/reference (the library docker and containerd use)
# documents it in reference.go and regexp.go (read 2026-11):
#   reference  := name [":" tag] ["@" digest]
#   name       := [domain "/"] path
#   domain     := host [":" port]     host := domain-name | "[" IPv6 "]"
#   domain-name:= component ("." component)*   component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
#   path       := path-component ("/" path-component)*
#   path-component := [a-z0-9]+ (separator [a-z0-9]+)*   separator := [._] | "__" | "-"+
#   tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
#   digest     := algorithm ":" hex{32,}   algorithm := [A-Za-z][A-Za-z0-9]* ([-_+.][A-Za-z][A-Za-z0-9]*)*
# and the name (domain and path) is at most 255 characters. Written here from that grammar.

NAME_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH}))"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference.

    Attributes:
        domain: registry host with optional port (``""`` when absent, i.e. Docker Hub).
        path: repository path (``lmsysorg/sglang``).
        tag: tag or ``""``; digest: ``algorithm:hex`` or ``""``.
    """

    domain: str
    path: str
    tag: str
    digest: str


def parse_image_reference(ref: str) -> ImageReference:
    """Parse ``ref`` with Docker's reference grammar (see the comment above for the source).

    Like distribution/reference, a first component counts as the registry only when the
    grammar makes it one: ``localhost:5000/app`` and ``registry.example.com/app`` have a
    domain, ``lmsysorg/sglang`` has none.

    Args:
        ref: e.g. ``lmsysorg/sglang:v0.5.23`` or ``123456789012.dkr.ecr.us-east-1.amazonaws.com/
            sglang@sha256:<64 hex>``.

    Returns:
        The :class:`ImageReference`.

    Raises:
        ValueError: saying what part is wrong (empty, upper case in the repository path,
            a tag over 128 characters, a malformed digest, a name over 255 characters, ...).
    """
    if not ref:
        raise ValueError("an image reference may not be empty")
    m = _REFERENCE.fullmatch(ref)
    if m is None:
        raise ValueError(_explain(ref))
    if len(m.group("name")) > NAME_MAX:
        raise ValueError(f"the repository name is longer than {NAME_MAX} characters")
    domain, path = m.group("domain") or "", m.group("path")
    if domain and not _is_registry(domain):
        # distribution/reference (normalize.go splitDockerDomain): a first component without
        # "." or ":", other than localhost and in lower case, is a path component (Docker Hub).
        domain, path = "", f"{domain}/{path}"
    return ImageReference(
        domain=domain,
        path=path,
        tag=m.group("tag") or "",
        digest=m.group("digest") or "",
    )


def _is_registry(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.lower() != first


def _explain(ref: str) -> str:
    """One sentence on why ``ref`` does not follow the grammar (best effort)."""
    base = (
        "must follow Docker's reference grammar [registry[:port]/]repository[:tag][@algo:hex], "
        "repository in lower case"
    )
    name, _, digest = ref.partition("@")
    if "@" in ref and not re.fullmatch(_DIGEST, digest, re.ASCII):
        return f"{base}; {digest!r} is not a digest (algorithm:hex, at least 32 hex digits)"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        tag = last.split(":", 1)[1]
        if len(tag) > 128:
            return f"{base}; the tag is {len(tag)} characters, at most 128 are allowed"
        if not re.fullmatch(_TAG, tag, re.ASCII):
            return f"{base}; {tag!r} is not a valid tag (letters, digits, _ . -, not starting with . or -)"
    if any(c.isupper() for c in name.split("/", 1)[-1].split(":", 1)[0]):
        return f"{base}; the repository path has upper-case letters"
    return base
