"""The whole stack spec: :class:`StackSpec` joins the key groups of this package into one
flat, frozen pydantic model, and :func:`parse_config` validates a stack's config into it.

The config is flat (one key per setting) because Pulumi's project config schema declares only
``string``, ``integer``, ``boolean`` and ``array`` types
(https://github.com/pulumi/pulumi/blob/master/sdk/go/common/workspace/project.json); the
``config:`` section of ``Pulumi.yaml`` is generated from this model (``python -m infra schema``)
so that every key has a description and the same default here and there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from infra.planning import syntax
from infra.spec import model as model_keys
from infra.spec import network, router, server, storage
from infra.spec.backend import BackendKeys
from infra.spec.base import PROJECT, SpecError, no_newline, qualified
from infra.spec.compute import ComputeKeys
from infra.spec.image import ImageKeys
from infra.spec.layout import LayoutKeys
from infra.spec.model import ModelKeys
from infra.spec.network import NetworkKeys
from infra.spec.router import RouterKeys
from infra.spec.server import ServerKeys
from infra.spec.storage import StorageKeys

SECRET_KEYS: dict[str, str] = {
    "hf_token": "Hugging Face token for gated models (set with `pulumi config set --secret "
    "hf_token`). Stored as an SSM SecureString, read by the nodes at boot; never in user data.",
    "router_api_key": "API key clients must send to the router (set with `pulumi config set "
    "--secret router_api_key`). Stored as an SSM SecureString; empty = no key.",
}
"""Secret config keys: read with ``pulumi.Config.get_secret``, never part of :class:`StackSpec`."""

LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
"""Values CloudWatch Logs accepts for a retention period (PutRetentionPolicy)."""

_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")


# pydantic lists the fields of a class with several bases from the LAST base to the first, so
# the groups are written in reverse: the config keys (``Pulumi.yaml``, "allowed keys") then read
# model, layout, nodes, network, store, image, server, router, backend, stack.
class StackSpec(
    BackendKeys,
    RouterKeys,
    ServerKeys,
    ImageKeys,
    StorageKeys,
    NetworkKeys,
    ComputeKeys,
    LayoutKeys,
    ModelKeys,
):
    """Everything one stack file says about its cluster. Field names are the config keys; each
    group of keys (and its field rules) lives in its own module of :mod:`infra.spec`."""

    log_retention_days: int = Field(30, description="Retention of the stack's CloudWatch log group, in days.")
    tags: list[str] = Field(
        default_factory=list, description="Extra tags on every resource as KEY=VALUE strings."
    )

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(f"allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for item in v:
            key, sep, value = item.partition("=")
            if not sep or not _TAG_KEY.match(key) or key.lower().startswith("aws:"):
                raise ValueError(f"{item!r} must be KEY=VALUE (key not starting with aws:)")
            no_newline(value)
        return v

    @property
    def tag_map(self) -> dict[str, str]:
        """``tags`` as a dict."""
        return dict(t.split("=", 1) for t in self.tags)


_CONCERN_CHECKS = (network.check, router.check, server.check, model_keys.check, storage.check)
"""Cross-field rules of each key group, run in this order after the field rules."""


def _cross_field(spec: StackSpec) -> None:
    """Rules between keys of the spec alone (no catalog, no layout): each group's ``check``."""
    for check in _CONCERN_CHECKS:
        check(spec)


def check_region(spec: StackSpec, region: str) -> None:
    """Rules between the spec and ``aws:region`` (which the spec model does not hold).

    An Availability Zone name is its region's code plus a letter (``us-east-1a`` belongs to
    ``us-east-1``; https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-regions-availability-zones.html,
    read 2026-11); a subnet in another region's AZ cannot be created by the stack's provider.

    Args:
        spec: the validated spec.
        region: the stack's ``aws:region``.

    Raises:
        SpecError: ``aws:region`` when it is not spelled like a region code or is outside the
            commercial ``aws`` partition (GovCloud, China, ISO), or
            ``sglang-cluster:availability_zone`` when the AZ is not in the region.
    """
    if not syntax.is_region(region):
        raise SpecError("aws:region", f"{region!r} is not an AWS region code (us-east-1, eu-west-2, ...)")
    partition = syntax.region_partition(region)
    if partition != "aws":
        # IAM policies, the KMS key policy, SSM parameter ARNs and the AWS managed policy
        # are written as arn:aws:...; another partition refuses them mid-deploy.
        raise SpecError(
            "aws:region",
            f"{region} is in the {partition or 'unknown'} partition; this program writes ARNs of "
            "the commercial aws partition (arn:aws:...) into its IAM and KMS key policies; use a "
            "commercial region (us-east-1, us-west-2, eu-west-1, ...)",
        )
    az = spec.availability_zone
    if az and syntax.az_region(az) != region:
        raise SpecError(
            qualified("availability_zone"),
            f"{az} is in {syntax.az_region(az)}, not in the stack's region {region} "
            f"(aws:region); use an AZ of {region} such as {region}a, or change aws:region",
        )


def _decode_value(field: str, raw: Any) -> Any:
    """Turn one Pulumi config value (always a string at runtime) into the field's Python value."""
    info = StackSpec.model_fields.get(field)
    if info is None or not isinstance(raw, str) or info.annotation is str:
        return raw
    if info.annotation is not None and getattr(info.annotation, "__origin__", None) is Literal:
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


_NOT_ECHOED = frozenset({"extra_server_args", "server_env"})
"""Keys whose given value a refusal never repeats: they are lists that may hold a secret
(``--api-key VALUE``, ``HF_TOKEN=...``), and the message is printed to terminals and CI logs."""


def _format_validation_error(err: ValidationError) -> SpecError:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = loc[0] if loc else ""
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(StackSpec.model_fields)
        return SpecError(qualified(key), f"unknown config key; allowed keys: {allowed}")
    if first["type"] == "missing":
        desc = StackSpec.model_fields[key].description or ""
        return SpecError(qualified(key), f"required: {desc}")
    given = first.get("input")
    shown = f" (got {given!r})" if given is not None and not isinstance(given, dict) else ""
    if key in _NOT_ECHOED:
        shown = ""
    where = "[" + "][".join(loc[1:]) + "]" if len(loc) > 1 else ""
    return SpecError(qualified(key) + where, f"{msg}{shown}")


def parse_config(values: Mapping[str, Any]) -> StackSpec:
    """Validate a stack's config into a :class:`StackSpec`.

    Args:
        values: config keys of this project, either bare (``tp_size``) or qualified
            (``sglang-cluster:tp_size``); values as Pulumi hands them to a program (strings,
            JSON for arrays) or as YAML gives them (ints, lists). Keys of other namespaces
            (``aws:region``) are ignored.

    Returns:
        The frozen, validated spec.

    Raises:
        SpecError: the first problem found, naming the key and what is allowed.
    """
    own: dict[str, Any] = {}
    for k, v in values.items():
        ns, sep, bare = k.partition(":")
        if sep and ns != PROJECT:
            continue
        name = bare if sep else k
        if name in SECRET_KEYS:
            continue
        if isinstance(v, dict) and "secure" in v:
            raise SpecError(qualified(name), "is a secret here, but this key takes a plain value")
        own[name] = _decode_value(name, v)
    try:
        spec = StackSpec.model_validate(own)
    except ValidationError as e:
        raise _format_validation_error(e) from None
    _cross_field(spec)
    return spec
