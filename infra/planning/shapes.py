"""Model shapes for the memory-fit check and the layout rules that depend on the model.

Each entry comes from the model's card (parameter count) and ``config.json`` (layers, heads,
experts), https://huggingface.co/<model id>, read 2026-11-21 through mirrors of the cards
(ZHUI/paddlenlp_model_readme) and config copies; Llama figures from meta-llama/llama-models
``models/sku_list.py``. Parameter counts round up where the card gives only "8B"/"70B". A model that is not here needs
``model_params_billion`` and ``model_dtype`` in the stack config.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bytes per parameter for each weight dtype accepted in ``model_dtype``.
DTYPE_BYTES: dict[str, float] = {
    "bfloat16": 2.0,
    "float16": 2.0,
    "float32": 4.0,
    "float8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs to know about a model.

    Attributes:
        params_billion: total parameters in billions (all experts for MoE models).
        dtype: weight dtype, a key of ``DTYPE_BYTES``.
        layers: ``num_hidden_layers`` (0 when unknown); a pipeline stage needs at least one.
        attention_heads: ``num_attention_heads`` (0 when unknown); SGLang shards heads over TP.
        experts: routed experts per MoE layer (0 for dense models).
    """

    params_billion: float
    dtype: str
    layers: int = 0
    attention_heads: int = 0
    experts: int = 0

    @property
    def weight_bytes(self) -> float:
        """Total weight size in bytes: parameters x bytes per dtype."""
        return self.params_billion * 1e9 * DTYPE_BYTES[self.dtype]

    @property
    def is_moe(self) -> bool:
        """True for mixture-of-experts models (expert parallelism applies)."""
        return self.experts > 0


KNOWN_MODELS: dict[str, ModelShape] = {
    # Model card: 0.6B parameters; config: 28 layers, 16 heads, bfloat16.
    "Qwen/Qwen3-0.6B": ModelShape(0.6, "bfloat16", 28, 16),
    # Model card: 7.61B; config: 28 layers, 28 heads.
    "Qwen/Qwen2.5-7B-Instruct": ModelShape(7.61, "bfloat16", 28, 28),
    # Model card: 14.7B; config: 48 layers, 40 heads.
    "Qwen/Qwen2.5-14B-Instruct": ModelShape(14.7, "bfloat16", 48, 40),
    # Model card: 72.7B; config: 80 layers, 64 heads.
    "Qwen/Qwen2.5-72B-Instruct": ModelShape(72.7, "bfloat16", 80, 64),
    # Model card: 15.7B total (2.4B active); config: 27 layers, 16 heads, 64 routed experts.
    "deepseek-ai/DeepSeek-V2-Lite": ModelShape(15.7, "bfloat16", 27, 16, 64),
    # Model card: 14.3B total (2.7B active); config: 24 layers, 16 heads, 60 experts.
    "Qwen/Qwen1.5-MoE-A2.7B": ModelShape(14.3, "bfloat16", 24, 16, 60),
    # Model card: "8B"; sku_list.py: 32 layers, 32 heads.
    "meta-llama/Llama-3.1-8B-Instruct": ModelShape(8.1, "bfloat16", 32, 32),
    # Model card: "70B"; sku_list.py: 80 layers, 64 heads.
    "meta-llama/Llama-3.1-70B-Instruct": ModelShape(70.6, "bfloat16", 80, 64),
}
