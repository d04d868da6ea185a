"""Model store sizing and paths: FSx for Lustre capacity and where weights live. Pure code.

FSx for Lustre SSD capacity for SCRATCH_2 and PERSISTENT_2 is 1200 GiB, 2400 GiB, or a multiple
of 2400 GiB; PERSISTENT_2 throughput is 125, 250, 500 or 1000 MB/s per TiB
(https://docs.aws.amazon.com/fsx/latest/LustreGuide/managing-storage-capacity.html,
https://docs.aws.amazon.com/fsx/latest/LustreGuide/performance.html).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.spec import StackSpec

FSX_MOUNT = "/fsx"
MODELS_DIR = f"{FSX_MOUNT}/models"
"""Where weights live on the store; an S3 association maps its prefix here."""

FSX_SMALLEST_GIB = 1200
FSX_STEP_GIB = 2400
FSX_THROUGHPUTS = (125, 250, 500, 1000)
FSX_HEADROOM = 1.25
"""Capacity over the checkpoint size: room for a second revision or a converted copy."""


def valid_fsx_capacity(gib: int) -> bool:
    """True for 1200 GiB or a positive multiple of 2400 GiB."""
    return gib == FSX_SMALLEST_GIB or (gib > 0 and gib % FSX_STEP_GIB == 0)


def fsx_capacity_gib(total_weights_gib: float) -> int:
    """Smallest valid capacity that holds the checkpoint with ``FSX_HEADROOM``.

    Args:
        total_weights_gib: checkpoint size in GiB.

    Returns:
        Capacity in GiB: 1200, or a multiple of 2400.
    """
    need = total_weights_gib * FSX_HEADROOM
    if need <= FSX_SMALLEST_GIB:
        return FSX_SMALLEST_GIB
    return int(math.ceil(need / FSX_STEP_GIB) * FSX_STEP_GIB)


def is_local_model(spec: StackSpec) -> bool:
    """True when ``model`` is a path on the node (no download)."""
    return spec.model.startswith("/")


def model_path(spec: StackSpec) -> str:
    """The ``--model-path`` servers get.

    Returns:
        The local checkpoint path as given; ``/fsx/models/<model id>`` with a model store; else
        the Hugging Face id (SGLang downloads it into the node's cache).
    """
    if is_local_model(spec):
        return spec.model
    if spec.model_store:
        return f"{MODELS_DIR}/{spec.model}"
    return spec.model


def model_source(spec: StackSpec) -> str:
    """How weights reach the store: ``local`` (given path), ``s3`` (data repository
    association, loaded lazily on first read), ``hf`` (downloaded once from the hub) or
    ``none`` (no store: each node's SGLang downloads into its own cache)."""
    if is_local_model(spec):
        return "local"
    if not spec.model_store:
        return "none"
    return "s3" if spec.model_s3_uri else "hf"
