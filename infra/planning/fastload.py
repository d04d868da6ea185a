"""SGLang 0.5.23's faster weight-load options, where the checkpoint and the layout allow them.
Pure code; the flags join the server argv through :func:`infra.planning.serving.serving_default_args`.

- ``--weight-loader-prefetch-checkpoints`` when the weights are on the FSx model store: each
  node's ranks split the shards and read them once into the node's page cache, "reducing
  total network I/O on shared filesystems (NFS/Lustre) from N*checkpoint to 1*checkpoint"
  (the flag's help in SGLang 0.5.23, ``arg_groups/fields/model.py``; the split is by
  node-local rank, ``model_loader/weight_utils.py`` ``_prefetch_all_checkpoints``). This is
  what makes the store sizing's "each node reads the checkpoint once"
  (:mod:`infra.planning.fsx_sizing`) hold. Not for a node-local cache (no store): there SGLang
  says prefetch is a no-op and multi-threaded loading, its default, is the faster path.
- ``--startup-weight-load-mode overlap``: stages the checkpoint while CUDA graphs are captured.
  SGLang 0.5.23 refuses it at model load (a failed start) outside a narrow matrix
  (``model_executor/model_runner_components/startup_weight_load.py``
  ``_get_unsupported_reason``): CUDA with CUDA graphs on, the default loader and load format,
  TP1 or TP2, no PP, DP, EP, context parallelism, speculative decoding, LoRA or offload,
  FP16/BF16 without quantization, one of ``LlamaForCausalLM``, ``Qwen2ForCausalLM``,
  ``Qwen3ForCausalLM``. The planner adds it only for the models below (architecture and dtype
  from their ``config.json``, ``tests/fixtures/model-configs``) in that matrix, and only when
  ``extra_server_args`` is empty (any user flag might leave the matrix).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.spec import StackSpec

PREFETCH_FLAG = "--weight-loader-prefetch-checkpoints"
OVERLAP_FLAG = "--startup-weight-load-mode"
OVERLAP_VALUE = "overlap"

OVERLAP_ARCHITECTURES = frozenset({"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"})
"""SGLang 0.5.23's own allowlist (``_SUPPORTED_ARCHITECTURES``; re-read from the installed
package by ``tests/conformance/test_fastload_sglang.py``)."""
OVERLAP_TP_SIZES = (1, 2)

MODEL_ARCHITECTURES: dict[str, tuple[str, str]] = {
    # model id: (architectures[0], torch_dtype) of its config.json (tests/fixtures/model-configs,
    # every entry checked against its file); none is quantized. Other models get no overlap.
    "Qwen/Qwen3-0.6B": ("Qwen3ForCausalLM", "bfloat16"),
    "Qwen/Qwen2.5-14B-Instruct": ("Qwen2ForCausalLM", "bfloat16"),
    "Qwen/Qwen2.5-72B-Instruct": ("Qwen2ForCausalLM", "bfloat16"),
    "Qwen/Qwen1.5-MoE-A2.7B": ("Qwen2MoeForCausalLM", "bfloat16"),
    "deepseek-ai/DeepSeek-V2-Lite": ("DeepseekV2ForCausalLM", "bfloat16"),
}


def weights_on_network_storage(spec: StackSpec) -> bool:
    """True when servers load from the FSx model store (a hub/S3 model with ``model_store``,
    or a local path under ``/fsx``)."""
    if spec.model.startswith("/"):
        return spec.model.startswith("/fsx/")
    return spec.model_store


def overlap_allowed(spec: StackSpec) -> bool:
    """Whether SGLang 0.5.23 accepts ``--startup-weight-load-mode overlap`` for this spec (see
    the module docstring; ``False`` whenever that cannot be known offline)."""
    arch = MODEL_ARCHITECTURES.get(spec.model)
    if arch is None or arch[0] not in OVERLAP_ARCHITECTURES or arch[1] not in ("bfloat16", "float16"):
        return False
    if spec.model_dtype and spec.model_dtype not in ("bfloat16", "float16"):
        return False
    layout_ok = (
        spec.tp_size in OVERLAP_TP_SIZES
        and spec.pp_size == 1
        and spec.dp_size == 1
        and not spec.attention_dp
        and spec.ep_size == 1
    )
    return layout_ok and not spec.extra_server_args


def fast_load_args(spec: StackSpec) -> list[str]:
    """The weight-load flags for this spec, in argv order.

    Returns:
        ``["--weight-loader-prefetch-checkpoints"]`` for weights on FSx, plus
        ``["--startup-weight-load-mode", "overlap"]`` where :func:`overlap_allowed`.
    """
    out: list[str] = []
    if weights_on_network_storage(spec):
        out.append(PREFETCH_FLAG)
    if overlap_allowed(spec):
        out += [OVERLAP_FLAG, OVERLAP_VALUE]
    return out
