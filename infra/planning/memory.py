"""Memory fit: do the weights of one GPU's shard leave room for a KV cache? Pure code.

SGLang reserves ``mem_fraction_static`` of each GPU's memory for weights plus the KV cache pool
and keeps the rest for activations and CUDA graphs
(https://docs.sglang.ai/advanced_features/server_arguments.html, ``--mem-fraction-static``).
When the stack leaves ``mem_fraction_static`` unset (0), SGLang picks it per layout; the check
then uses :func:`sglang_mem_fraction_static`, a mirror of SGLang 0.5.23's own formula.
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


# --- SGLang's own mem_fraction_static --------------------------------------------------------

NVIDIA_SMI_TOTAL_MIB: dict[tuple[str, float], float] = {
    ("A100", 40.0): 40960,
    ("A100", 80.0): 81920,
    ("H100", 79.6): 81559,
    ("H200", 140.4): 143771,
    ("B200", 179.0): 183359,
    ("A10G", 22.4): 23028,
    ("L40S", 44.9): 46068,
}
"""``nvidia-smi --query-gpu=memory.total`` in MiB per (GPU model, catalog GiB): what SGLang
reads as the GPU's capacity (``utils/common.py`` ``get_nvgpu_memory_capacity``). Sources are
those of :mod:`infra.planning.catalog` (public issue logs, gathered 2026-11-21)."""

MLA_MODEL_PREFIXES: tuple[str, ...] = (
    "deepseek-ai/DeepSeek-V2",
    "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/DeepSeek-R1",
    "moonshotai/Kimi-K2",
)
"""Hugging Face ids of models with multi-head latent attention (SGLang's ``AttentionArch.MLA``,
``configs/model_config.py``), which changes SGLang's graph reserve."""


def gpu_total_mib(node: InstanceType) -> float:
    """GPU memory as ``nvidia-smi`` reports it (MiB), else the catalog's GiB x 1024."""
    return NVIDIA_SMI_TOTAL_MIB.get((node.gpu_model, node.gpu_memory_gib), node.gpu_memory_gib * 1024)


def _prefill_graph_sizes(max_bs: int) -> list[int]:
    """SGLang 0.5.23 ``cuda_graph_hook.generate_prefill_cuda_graph_batch_sizes``."""
    sizes = (
        list(range(4, 33, 4))
        + list(range(48, 257, 16))
        + list(range(288, 513, 32))
        + list(range(576, 1024 + 1, 64))
        + list(range(1280, 4096 + 1, 256))
        + list(range(4608, max_bs + 1, 512))
    )
    return [s for s in sizes if s <= max_bs]


def sglang_capacity_defaults(gpu_mem_mib: float, tp: int) -> tuple[int, int]:
    """SGLang 0.5.23's ``(chunked_prefill_size, decode CUDA graph max batch)`` for a GPU size.

    Mirror of the capacity tiers of ``handle_gpu_memory_settings`` in
    ``sglang/srt/arg_groups/memory_hook.py`` (0.5.23): H100/H200 get 8192 and 512 (256 below
    TP4), L40S/A100-40G 4096 and 160 (32 below TP4).
    """
    gib = 1024
    if gpu_mem_mib < 20 * gib:
        return 2048, 8
    if gpu_mem_mib < 35 * gib:
        return 4096, 48 if tp < 4 else 160
    if gpu_mem_mib < 60 * gib:
        return 4096, 32 if tp < 4 else 160
    if gpu_mem_mib < 160 * gib:
        return 8192, 256 if tp < 4 else 512
    return 16384, 512


def sglang_mem_fraction_static(
    gpu_mem_mib: float,
    tp: int,
    pp: int,
    *,
    attn_dp_size: int = 1,
    mla: bool = False,
    chunked_prefill_size: int | None = None,
    max_running_requests: int | None = None,
    max_prefill_tokens: int = 16384,
    disaggregation_mode: str = "null",
) -> float:
    """The ``mem_fraction_static`` SGLang 0.5.23 chooses when ``--mem-fraction-static`` is unset.

    A mirror of ``handle_gpu_memory_settings`` and ``reserve_for_graph_mb`` in
    ``sglang/srt/arg_groups/memory_hook.py`` of sglang 0.5.23, for what this project renders:
    a CUDA device, no PD disaggregation, no speculative decoding, default CUDA graph backends
    (decode ``full``; prefill ``breakable``, which SGLang turns off when ``pp > 1``,
    ``arg_groups/cuda_graph_hook.py``), no DeepEP all-to-all (the spec refuses
    ``--moe-a2a-backend``), a text-only model, and ``SGLANG_ENABLE_POST_CAPTURE_KV_SIZING`` off
    (its default). SGLang reserves, in MiB::

        512 + 1.5 x max(chunked_prefill_size, 2048) + tp x pp / 8 x 1024
            + 2 x decode_max_bs                         (decode CUDA graphs)
            + attention DP padding (3, +1.5 above batch 300, x decode_max_bs x attn_dp_size)
            + 8 per prefill graph size (1536 for MLA models; none when pp > 1)
        at least 10240 on GPUs over 60 GiB

    and returns ``round((gpu - reserved) / gpu, 3)``. ``tests/conformance/
    test_sglang_resolution.py`` checks this mirror against SGLang's own resolution.

    Args:
        gpu_mem_mib: GPU memory as nvidia-smi reports it (:func:`gpu_total_mib`), MiB.
        tp: ``--tp-size``; pp: ``--pp-size``; attn_dp_size: ``--attn-dp-size`` (1 = off).
        mla: the model uses multi-head latent attention (:data:`MLA_MODEL_PREFIXES`).
        chunked_prefill_size: ``--chunked-prefill-size`` when set (<= 0 turns chunking off),
            else None for SGLang's default.
        max_running_requests: ``--max-running-requests`` when set; caps the decode graph batch.
        max_prefill_tokens: ``--max-prefill-tokens`` (SGLang's default 16384); sizes the
            activation reserve when chunked prefill is off.
        disaggregation_mode: ``--disaggregation-mode`` (``null``, ``prefill``, ``decode``). A
            prefill server reserves no decode CUDA graphs (nor their attention-DP padding); a
            decode server reserves no prefill graphs and sizes the activation reserve by its
            running requests, ``max(max_running_requests or decode_max_bs, 2048)`` tokens.

    Returns:
        The fraction (0..1), rounded to 3 decimals as SGLang rounds it.
    """
    default_chunk, decode_max_bs = sglang_capacity_defaults(gpu_mem_mib, tp)
    chunk = default_chunk if chunked_prefill_size is None else chunked_prefill_size
    if max_running_requests is not None and decode_max_bs > max_running_requests:
        decode_max_bs = max_running_requests
    prefill_max_bs = min(8192, chunk) if mla else chunk
    activation_tokens = max(chunk if chunk > 0 else max_prefill_tokens, 2048)
    if disaggregation_mode == "decode":
        activation_tokens = max(max_running_requests or decode_max_bs or 1, 2048)

    reserved = 512 + activation_tokens * 1.5 + tp * pp / 8 * 1024
    graphs = 0.0 if disaggregation_mode == "prefill" else decode_max_bs * 2.0
    if attn_dp_size > 1 and disaggregation_mode != "prefill":
        graphs += decode_max_bs * attn_dp_size * 3
        if decode_max_bs > 300:
            graphs += decode_max_bs * attn_dp_size * 1.5
    if pp == 1 and disaggregation_mode != "decode":
        # Breakable prefill graphs are SGLang's default on CUDA, but off by default with PP
        # (cuda_graph_hook.py apply_cuda_graph_compatibility).
        graphs += 1.5 * 1024 if mla else len(_prefill_graph_sizes(prefill_max_bs)) * 8
    reserved += graphs
    if gpu_mem_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)


def _int_arg(args: list[str], flag: str) -> int | None:
    """The integer value of ``flag`` in an argv (``--flag N`` or ``--flag=N``), else None."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
        else:
            continue
        try:
            return int(value)
        except ValueError:
            return None
    return None


def effective_mem_fraction_static(spec: StackSpec, node: InstanceType, role: str = "regular") -> float:
    """The ``mem_fraction_static`` a server of this stack runs with: the stack's value when set,
    else what SGLang 0.5.23 computes (:func:`sglang_mem_fraction_static`), taking
    ``--chunked-prefill-size``, ``--max-running-requests`` and ``--max-prefill-tokens`` from
    ``extra_server_args``. Other extra flags that move SGLang's choice (speculative decoding,
    PD disaggregation, CUDA graph backends or sizes, ``SGLANG_ENABLE_POST_CAPTURE_KV_SIZING`` in
    ``server_env``) are not mirrored: set ``mem_fraction_static`` explicitly with them.
    ``role`` is a PD pool's (``prefill``/``decode``, :mod:`infra.planning.pd`), which SGLang
    reserves for differently."""
    if spec.mem_fraction_static:
        return spec.mem_fraction_static
    prefill_tokens = _int_arg(spec.extra_server_args, "--max-prefill-tokens")
    return sglang_mem_fraction_static(
        gpu_total_mib(node),
        spec.tp_size,
        spec.pp_size,
        attn_dp_size=spec.dp_size if spec.attention_dp else 1,
        mla=spec.model.startswith(MLA_MODEL_PREFIXES),
        chunked_prefill_size=_int_arg(spec.extra_server_args, "--chunked-prefill-size"),
        max_running_requests=_int_arg(spec.extra_server_args, "--max-running-requests"),
        max_prefill_tokens=16384 if prefill_tokens is None else prefill_tokens,
        disaggregation_mode="null" if role == "regular" else role,
    )


def check_memory_fit(
    spec: StackSpec, shape: ModelShape, node: InstanceType, role: str = "regular"
) -> MemoryFit:
    """Refuse a layout whose weights leave less than ``min_kv_cache_gib`` of KV cache per GPU.

    Raises:
        SpecError: naming ``tp_size`` with the figures in GiB and what to change.
    """
    from infra.spec import SpecError, qualified

    fraction = effective_mem_fraction_static(spec, node, role)
    source = "" if spec.mem_fraction_static else " (SGLang 0.5.23's own choice for this layout)"
    fit = memory_fit(shape, spec.tp_size, spec.pp_size, node.gpu_memory_gib, fraction)
    if fit.kv_cache_gib < spec.min_kv_cache_gib:
        raise SpecError(
            qualified("tp_size"),
            f"{spec.model} does not fit: {fit.weights_gib:.1f} GiB of weights per GPU "
            f"({fit.total_weights_gib:.1f} GiB / tp_size {spec.tp_size} x pp_size {spec.pp_size}) "
            f"against {fit.static_pool_gib:.1f} GiB static pool ({fit.gpu_gib:.1f} GiB "
            f"{node.gpu_model} x mem_fraction_static {fraction:g}{source}) leaves "
            f"{fit.kv_cache_gib:.1f} GiB for the KV cache, below min_kv_cache_gib "
            f"{spec.min_kv_cache_gib}; raise tp_size or pp_size, or use a GPU with more memory",
        )
    return fit
