"""Keys of the parallelism layout: TP/PP/DP/EP sizes, attention DP, replicas, packing.

SGLang's own rules between these keys (and the node's GPU count, the model's heads and
layers) need the catalog and the model shape, so they live in :mod:`infra.planning.layout`.
"""

from __future__ import annotations

from pydantic import Field

from infra.spec.base import Keys


class LayoutKeys(Keys):
    """How each server is parallelised and how many servers run."""

    tp_size: int = Field(1, ge=1, description="Tensor parallel size of each server (--tp-size).")
    pp_size: int = Field(1, ge=1, description="Pipeline parallel size of each server (--pp-size).")
    dp_size: int = Field(
        1,
        ge=1,
        description="Data parallel size inside one server (--dp-size). Without attention_dp this "
        "runs dp_size replicas of TP inside one server on one node; prefer `replicas` for "
        "independent servers behind the router.",
    )
    ep_size: int = Field(
        1, ge=1, description="Expert parallel size for MoE models (--ep-size); must divide tp_size."
    )
    attention_dp: bool = Field(
        False,
        description="Data-parallel attention inside the TP group (--attn-dp-size dp_size); "
        "needs dp_size > 1 dividing tp_size.",
    )
    replicas: int = Field(1, ge=1, description="Independent servers behind the router (each tp*pp*dp GPUs).")
    servers_per_node: int = Field(
        0,
        ge=0,
        description="Servers packed on one node when a server needs fewer GPUs than a node has; "
        "0 = as many as fit.",
    )
