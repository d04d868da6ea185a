"""Memory fit: do the weights of one GPU's shard leave room for a KV cache? Pure code.

SGLang reserves ``mem_fraction_static`` of each GPU's memory for weights plus the KV cache pool
and keeps the rest for activations and CUDA graphs
(https://docs.sglang.ai/advanced_features/server_arguments.html, ``--mem-fraction-static``).
Weights are split over ``tp_size * pp_size`` GPUs. With expert parallelism the experts are
still spread over the same TP group, and with attention DP the (small) attention weights are
replicated; both are second-order and ignored here, so the figure is a lower bound on use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.planning.catalog import InstanceType
from infra.planning.shapes import ModelShape

if TYPE_CHECKING:
    from infra.spec import StackSpec

GIB = 2**30


@dataclass(frozen=True)
class MemoryFit:
    """Per-GPU memory figures in GiB.

    Attributes:
        gpu_gib: usable memory of one GPU.
        static_pool_gib: ``gpu_gib * mem_fraction_static`` (weights + KV cache).
        weights_gib: weight bytes on one GPU.
        kv_cache_gib: what is left of the static pool for the KV cache.
        total_weights_gib: the whole checkpoint, for disk and download sizing.
    """

    gpu_gib: float
    static_pool_gib: float
    weights_gib: float
    kv_cache_gib: float
    total_weights_gib: float


def memory_fit(shape: ModelShape, tp: int, pp: int, gpu_gib: float, fraction: float) -> MemoryFit:
    """Compute the per-GPU figures.

    Args:
        shape: model shape (parameters and dtype).
        tp: tensor parallel size; pp: pipeline parallel size.
        gpu_gib: usable GPU memory in GiB; fraction: ``mem_fraction_static`` (0..1).

    Returns:
        The :class:`MemoryFit`, all figures in GiB.
    """
    total = shape.weight_bytes / GIB
    weights = total / (tp * pp)
    pool = gpu_gib * fraction
    return MemoryFit(gpu_gib, pool, weights, pool - weights, total)


def check_memory_fit(spec: StackSpec, shape: ModelShape, node: InstanceType) -> MemoryFit:
    """Refuse a layout whose weights leave less than ``min_kv_cache_gib`` of KV cache per GPU.

    Raises:
        SpecError: naming ``tp_size`` with the figures in GiB and what to change.
    """
    from infra.spec import SpecError, qualified

    fit = memory_fit(shape, spec.tp_size, spec.pp_size, node.gpu_memory_gib, spec.mem_fraction_static)
    if fit.kv_cache_gib < spec.min_kv_cache_gib:
        raise SpecError(
            qualified("tp_size"),
            f"{spec.model} does not fit: {fit.weights_gib:.1f} GiB of weights per GPU "
            f"({fit.total_weights_gib:.1f} GiB / tp_size {spec.tp_size} x pp_size {spec.pp_size}) "
            f"against {fit.static_pool_gib:.1f} GiB static pool ({fit.gpu_gib:.1f} GiB "
            f"{node.gpu_model} x mem_fraction_static {spec.mem_fraction_static}) leaves "
            f"{fit.kv_cache_gib:.1f} GiB for the KV cache, below min_kv_cache_gib "
            f"{spec.min_kv_cache_gib}; raise tp_size or pp_size, or use a GPU with more memory",
        )
    return fit
