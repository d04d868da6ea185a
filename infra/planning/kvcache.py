"""KV-cache capacity per server and per stack, the longest request, and layout advice. Pure code.

Mirrors how SGLang 0.5.23 sizes its token pool (``model_executor/pool_configurator.py``
``DefaultPoolConfigurator._compute_cell_size`` and ``mem_cache/kv_cache_configurator.py``):

- bytes per token on one GPU (the *cell*): ``kv_heads_per_gpu x (head_dim + v_head_dim) x
  layers x dtype bytes`` with ``kv_heads_per_gpu = max(1, kv_heads // attn_tp)``
  (``ModelConfig.get_num_kv_heads``: with more TP ranks than KV heads each head is replicated);
  for multi-head latent attention (``kv_lora_rank`` in the config) ``(kv_lora_rank +
  qk_rope_head_dim) x layers x dtype bytes``, the same on every TP rank (TP does not split the
  latent; attention DP does, by giving each DP rank its own pool);
- the pool gets what the static pool leaves after the weights (:mod:`infra.planning.memory`),
  so tokens per pool = ``kv_cache bytes per GPU / cell``; a PP stage holds ``ceil(layers /
  pp)`` layers at most and the smallest pool bounds the server;
- one pool per attention-DP rank (or per ``dp_size`` replica without attention DP); the longest
  request is ``min(context_len - 1, tokens per pool - 1)`` (``managers/tp_worker.py``).

The figures are an upper bound by a few percent: SGLang takes ``mem_fraction_static`` of the
memory free before the weights load (``KVCacheConfigurator._profile_available_bytes``), after
the CUDA context and NCCL have taken theirs, and this uses the GPU's whole memory.

Model shapes come from the models' own ``config.json`` (``data/model_configs.json``, a copy of the
keys SGLang reads from ``tests/fixtures/model-configs/``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.planning.memory import (
    MLA_MODEL_PREFIXES,
    _int_arg,
    gpu_total_mib,
    memory_fit,
    sglang_mem_fraction_static,
)

if TYPE_CHECKING:
    from infra.planning.catalog import InstanceType
    from infra.planning.layout import Layout
    from infra.planning.shapes import ModelShape
    from infra.spec import StackSpec

DATA_FILE = Path(__file__).with_name("data") / "model_configs.json"
GIB = 2**30
ADVICE_RATIO = 1.25
"""Another layout is "clearly better" when it holds at least this many times the stack's KV
tokens without shortening the longest request."""

KV_DTYPE_BYTES: dict[str, float] = {
    "bfloat16": 2.0,
    "bf16": 2.0,
    "float16": 2.0,
    "fp16": 2.0,
    "float32": 4.0,
    "fp8_e4m3": 1.0,
    "fp8_e5m2": 1.0,
}
"""Bytes per element of ``--kv-cache-dtype`` values (``auto`` = the model's dtype)."""


@dataclass(frozen=True)
class KvShape:
    """What the KV pool depends on, from a model's ``config.json``.

    Attributes:
        layers: ``num_hidden_layers``.
        kv_heads: ``num_key_value_heads`` (``num_attention_heads`` when absent).
        head_dim: ``head_dim``, else ``hidden_size / num_attention_heads``.
        mla_dim: ``kv_lora_rank + qk_rope_head_dim`` for MLA models, else 0.
        dtype_bytes: bytes of ``torch_dtype``.
        context_len: SGLang's derived context length (``max_position_embeddings`` times a rope
            scaling factor unless ``original_max_position_embeddings`` is given).
    """

    layers: int
    kv_heads: int
    head_dim: int
    mla_dim: int
    dtype_bytes: float
    context_len: int

    def cell_bytes(self, attn_tp: int, pp: int, dtype_bytes: float | None = None) -> float:
        """KV bytes per token on one GPU of the largest PP stage."""
        layers = math.ceil(self.layers / pp)
        size = self.dtype_bytes if dtype_bytes is None else dtype_bytes
        if self.mla_dim:
            return self.mla_dim * layers * size
        heads = max(1, self.kv_heads // attn_tp)
        return heads * 2 * self.head_dim * layers * size


@cache
def _configs() -> dict[str, dict[str, Any]]:
    raw: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def kv_shape_from_config(cfg: dict[str, Any]) -> KvShape:
    """A :class:`KvShape` from a Hugging Face ``config.json`` mapping."""
    heads = int(cfg["num_attention_heads"])
    head_dim = int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads)
    mla = int(cfg["kv_lora_rank"]) + int(cfg.get("qk_rope_head_dim", 0)) if cfg.get("kv_lora_rank") else 0
    rope = cfg.get("rope_scaling") or {}
    factor = 1.0
    if rope and "original_max_position_embeddings" not in rope and rope.get("rope_type") != "llama3":
        factor = float(rope.get("factor", 1))
    return KvShape(
        layers=int(cfg["num_hidden_layers"]),
        kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=head_dim,
        mla_dim=mla,
        dtype_bytes=KV_DTYPE_BYTES.get(str(cfg.get("torch_dtype", "bfloat16")), 2.0),
        context_len=int(factor * int(cfg.get("max_position_embeddings", 2048))),
    )


def kv_shape(model: str) -> KvShape | None:
    """The shape of a shipped model, else None (no config shipped for it)."""
    cfg = _configs().get(model)
    return kv_shape_from_config(cfg) if cfg else None


@dataclass(frozen=True)
class KvLayout:
    """One layout's KV figures.

    Attributes:
        tp, pp, attn_dp, replicas_per_server, servers: the layout (``attn_dp`` pools share a
            server's GPUs; ``replicas_per_server`` is ``dp_size`` without attention DP).
        kv_gib_per_gpu: KV pool per GPU in GiB.
        cell_bytes: KV bytes per token per GPU.
        tokens_per_pool: tokens of one pool (the longest request is bounded by it).
        tokens_per_server: all pools of one server.
        tokens_per_stack: all servers.
        max_request_tokens: the longest request SGLang accepts (``min(context_len, pool) - 1``).
        spans_nodes: a server spans nodes (its all-reduces cross EFA).
    """

    tp: int
    pp: int
    attn_dp: int
    replicas_per_server: int
    servers: int
    kv_gib_per_gpu: float
    cell_bytes: float
    tokens_per_pool: int
    tokens_per_server: int
    tokens_per_stack: int
    max_request_tokens: int
    spans_nodes: bool

    @property
    def label(self) -> str:
        """``TP16``, ``2 x TP8``, ``TP8 x PP2``, ..."""
        core = f"TP{self.tp}" + (f" x PP{self.pp}" if self.pp > 1 else "")
        core += f" (attention DP {self.attn_dp})" if self.attn_dp > 1 else ""
        n = self.servers * self.replicas_per_server
        return f"{n} x {core}" if n > 1 else core


def kv_layout(
    shape: KvShape,
    model: ModelShape,
    node: InstanceType,
    *,
    tp: int,
    pp: int,
    attn_dp: int,
    replicas_per_server: int,
    servers: int,
    fraction: float,
    kv_dtype_bytes: float | None = None,
    context_len: int | None = None,
) -> KvLayout:
    """KV figures of one layout.

    Args:
        shape: KV shape from the config; model: weight size; node: the GPU type.
        tp, pp: per server; attn_dp: attention-DP size (1 = off); replicas_per_server: DP
            replicas inside a server without attention DP; servers: servers in the stack.
        fraction: ``mem_fraction_static``.
        kv_dtype_bytes: ``--kv-cache-dtype`` bytes (None = the model's dtype).
        context_len: ``--context-length`` (None = derived from the config).
    """
    fit = memory_fit(model, tp, pp, node.gpu_memory_gib, fraction)
    cell = shape.cell_bytes(tp // attn_dp, pp, kv_dtype_bytes)
    per_pool = max(0, int(fit.kv_cache_gib * GIB // cell))
    pools = attn_dp * replicas_per_server
    ctx = context_len or shape.context_len
    return KvLayout(
        tp=tp,
        pp=pp,
        attn_dp=attn_dp,
        replicas_per_server=replicas_per_server,
        servers=servers,
        kv_gib_per_gpu=fit.kv_cache_gib,
        cell_bytes=cell,
        tokens_per_pool=per_pool,
        tokens_per_server=per_pool * pools,
        tokens_per_stack=per_pool * pools * servers,
        max_request_tokens=max(0, min(ctx - 1, per_pool - 1)),
        spans_nodes=tp * pp > node.gpus,
    )


def _kv_dtype_bytes(spec: StackSpec) -> float | None:
    args = spec.extra_server_args
    for i, a in enumerate(args):
        value = args[i + 1] if a == "--kv-cache-dtype" and i + 1 < len(args) else None
        if a.startswith("--kv-cache-dtype="):
            value = a.split("=", 1)[1]
        if value is not None:
            return None if value == "auto" else KV_DTYPE_BYTES.get(value)
    return None


def _fraction(spec: StackSpec, node: InstanceType, tp: int, pp: int, attn_dp: int) -> float:
    if spec.mem_fraction_static:
        return spec.mem_fraction_static
    return sglang_mem_fraction_static(
        gpu_total_mib(node),
        tp,
        pp,
        attn_dp_size=attn_dp,
        mla=spec.model.startswith(MLA_MODEL_PREFIXES),
        chunked_prefill_size=_int_arg(spec.extra_server_args, "--chunked-prefill-size"),
        max_running_requests=_int_arg(spec.extra_server_args, "--max-running-requests"),
    )


def stack_kv(spec: StackSpec, layout: Layout) -> KvLayout | None:
    """The stack's own KV figures (None when no config is shipped for its model)."""
    shape = kv_shape(spec.model)
    if shape is None:
        return None
    node = spec.node_type
    attn_dp = spec.dp_size if spec.attention_dp else 1
    return kv_layout(
        shape,
        spec.shape(),
        node,
        tp=spec.tp_size,
        pp=spec.pp_size,
        attn_dp=attn_dp,
        replicas_per_server=1 if spec.attention_dp else spec.dp_size,
        servers=len(layout.servers),
        fraction=_fraction(spec, node, spec.tp_size, spec.pp_size, attn_dp),
        kv_dtype_bytes=_kv_dtype_bytes(spec),
        context_len=_int_arg(spec.extra_server_args, "--context-length"),
    )


def alternatives(spec: StackSpec, layout: Layout) -> list[KvLayout]:
    """Plain TP layouts on the same GPUs: TP sizes that divide one node's GPUs and the model's
    attention heads, one server per TP group, whose weights leave at least
    ``min_kv_cache_gib`` per GPU."""
    shape = kv_shape(spec.model)
    if shape is None:
        return []
    node = spec.node_type
    model = spec.shape()
    heads = model.attention_heads
    out: list[KvLayout] = []
    tp = 1
    while tp <= node.gpus:
        if node.gpus % tp == 0 and (not heads or heads % tp == 0):
            fraction = _fraction(spec, node, tp, 1, 1)
            fit = memory_fit(model, tp, 1, node.gpu_memory_gib, fraction)
            if fit.kv_cache_gib >= spec.min_kv_cache_gib:
                out.append(
                    kv_layout(
                        shape,
                        model,
                        node,
                        tp=tp,
                        pp=1,
                        attn_dp=1,
                        replicas_per_server=1,
                        servers=layout.total_gpus // tp,
                        fraction=fraction,
                        kv_dtype_bytes=_kv_dtype_bytes(spec),
                        context_len=_int_arg(spec.extra_server_args, "--context-length"),
                    )
                )
        tp *= 2
    return out


def layout_advice(current: KvLayout, options: list[KvLayout]) -> tuple[KvLayout, str] | None:
    """A note when another layout on the same nodes is clearly better, else None.

    Clearly better: at least :data:`ADVICE_RATIO` times the stack's KV tokens, and a longest
    request at least as long. The user's layout stands: this is advice, never a refusal.
    """
    best: KvLayout | None = None
    for o in options:
        if (o.tp, o.pp, o.attn_dp, o.replicas_per_server) == (
            current.tp,
            current.pp,
            current.attn_dp,
            current.replicas_per_server,
        ):
            continue
        if o.tokens_per_stack < ADVICE_RATIO * current.tokens_per_stack:
            continue
        if o.max_request_tokens < current.max_request_tokens:
            continue
        if best is None or o.tokens_per_stack > best.tokens_per_stack:
            best = o
    if best is None:
        return None
    cross = "; no all-reduce crosses nodes" if current.spans_nodes and not best.spans_nodes else ""
    text = (
        f"layout: {best.label} on the same GPUs holds {fmt_tokens(best.tokens_per_stack)} KV tokens, "
        f"{best.tokens_per_stack / max(1, current.tokens_per_stack):.2f}x this stack's "
        f"{fmt_tokens(current.tokens_per_stack)} as {current.label} "
        f"({fmt_tokens(best.tokens_per_pool)} vs {fmt_tokens(current.tokens_per_pool)} per pool, longest "
        f"request {best.max_request_tokens} vs {current.max_request_tokens} tokens{cross}). "
        "A note, not a refusal: your layout is kept"
    )
    return best, text


def fmt_tokens(n: int) -> str:
    """``1.45M``, ``812k``, ``950``."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    return str(n)


def _layout_doc(k: KvLayout) -> dict[str, Any]:
    return {
        "layout": k.label,
        "tp_size": k.tp,
        "pp_size": k.pp,
        "attn_dp_size": k.attn_dp,
        "servers": k.servers,
        "kv_cache_gib_per_gpu": round(k.kv_gib_per_gpu, 2),
        "kv_bytes_per_token_per_gpu": round(k.cell_bytes),
        "tokens_per_pool": k.tokens_per_pool,
        "tokens_per_server": k.tokens_per_server,
        "tokens_per_stack": k.tokens_per_stack,
        "max_request_tokens": k.max_request_tokens,
        "spans_nodes": k.spans_nodes,
    }


def kv_cache_document(spec: StackSpec, layout: Layout) -> tuple[dict[str, Any] | None, list[str]]:
    """``estimates.kv_cache`` of the plan JSON and the advice notes.

    Returns:
        ``(document, notes)``; ``(None, [])`` when no config is shipped for the model.
    """
    current = stack_kv(spec, layout)
    if current is None:
        return None, []
    shape = kv_shape(spec.model)
    assert shape is not None
    options = alternatives(spec, layout)
    advice = layout_advice(current, options)
    doc = {
        **_layout_doc(current),
        "model_config": {
            "layers": shape.layers,
            "kv_heads": shape.kv_heads,
            "head_dim": shape.head_dim,
            "mla_latent_dim": shape.mla_dim or None,
            "dtype_bytes": shape.dtype_bytes,
            "context_len": shape.context_len,
        },
        "alternatives": [_layout_doc(o) for o in options],
        "advice": advice[1] if advice else None,
        "source": "SGLang 0.5.23 pool sizing (pool_configurator.py, kv_cache_configurator.py, "
        "tp_worker.py) on the model's config.json (infra/planning/data/model_configs.json); an "
        "upper bound: SGLang sizes from the memory free after CUDA and NCCL start",
    }
    return doc, [advice[1]] if advice else []
