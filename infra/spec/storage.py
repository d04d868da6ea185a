"""Keys of the model store: the FSx for Lustre file system shared by every node, and its
optional S3 association. Sizing rules live in :mod:`infra.planning.storage`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from infra.spec.base import Keys, SpecError, qualified

if TYPE_CHECKING:
    from infra.spec.stack import StackSpec

FSX_THROUGHPUTS = (125, 250, 500, 1000)
"""PERSISTENT_2 per-unit throughputs in MB/s per TiB (FSx for Lustre)."""

_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")


class StorageKeys(Keys):
    """The shared weights store."""

    model_store: bool = Field(
        True,
        description="Create an FSx for Lustre file system shared by every node, mounted at /fsx; "
        "weights land in /fsx/models/<model id> once and every rank loads them from there.",
    )
    fsx_deployment_type: Literal["PERSISTENT_2", "SCRATCH_2"] = Field(
        "PERSISTENT_2",
        description="FSx for Lustre deployment type; SCRATCH_2 (not replicated) only for stacks "
        "named dev or dev-*.",
    )
    fsx_capacity_gib: int = Field(
        0,
        ge=0,
        description="FSx capacity in GiB: 1200 or a multiple of 2400; 0 = sized from the weights.",
    )
    fsx_throughput_mb_per_tib: int = Field(
        250, description="PERSISTENT_2 throughput in MB/s per TiB: 125, 250, 500 or 1000."
    )
    model_s3_uri: str = Field(
        "",
        description="s3://bucket/prefix holding <model id>/ folders; associated with /fsx/models so "
        "weights load lazily from S3 instead of the Hugging Face hub. Empty = download from the hub.",
    )

    @field_validator("fsx_capacity_gib")
    @classmethod
    def _fsx_capacity(cls, v: int) -> int:
        if v and not (v == 1200 or v % 2400 == 0):
            raise ValueError("must be 1200 or a multiple of 2400 (FSx for Lustre SSD increments)")
        return v

    @field_validator("fsx_throughput_mb_per_tib")
    @classmethod
    def _fsx_throughput(cls, v: int) -> int:
        if v not in FSX_THROUGHPUTS:
            raise ValueError(f"allowed: {', '.join(map(str, FSX_THROUGHPUTS))}")
        return v

    @field_validator("model_s3_uri")
    @classmethod
    def _s3(cls, v: str) -> str:
        if v and not _S3_URI.match(v):
            raise ValueError("must look like s3://bucket/prefix")
        return v.rstrip("/")


def check(spec: StackSpec) -> None:
    """Rules between the store keys and the model.

    Raises:
        SpecError: ``model_s3_uri`` with SCRATCH_2, without the store, or with a local path.
    """
    if spec.model_s3_uri and spec.fsx_deployment_type == "SCRATCH_2":
        raise SpecError(
            qualified("model_s3_uri"),
            "S3 associations at /fsx/models need PERSISTENT_2 (SCRATCH_2 links S3 only at the "
            "file system root); set fsx_deployment_type PERSISTENT_2 or leave model_s3_uri empty",
        )
    if spec.model_s3_uri and not spec.model_store:
        raise SpecError(
            qualified("model_s3_uri"), "needs model_store true (S3 is associated with /fsx/models)"
        )
    if spec.model_s3_uri and spec.model.startswith("/"):
        raise SpecError(
            qualified("model_s3_uri"),
            "a local checkpoint path in `model` skips every download; leave model_s3_uri empty",
        )
