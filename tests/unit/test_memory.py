"""Memory fit: weights per GPU against the static pool, in GiB."""

from __future__ import annotations

import pytest

from infra.planning.catalog import CATALOG
from infra.planning.layout import plan_layout
from infra.planning.memory import (
    GIB,
    NVIDIA_SMI_TOTAL_MIB,
    effective_mem_fraction_static,
    gpu_total_mib,
    memory_fit,
    sglang_mem_fraction_static,
)
from infra.planning.shapes import KNOWN_MODELS, ModelShape
from infra.spec import SpecError, parse_config
from tests.conftest import base_config


def test_weights_split_over_tp_times_pp() -> None:
    shape = ModelShape(70.0, "bfloat16")
    fit = memory_fit(shape, 8, 2, 80.0, 0.9)
    assert fit.total_weights_gib == pytest.approx(140e9 / GIB)
    assert fit.weights_gib == pytest.approx(140e9 / GIB / 16)
    assert fit.static_pool_gib == pytest.approx(72.0)
    assert fit.kv_cache_gib == pytest.approx(72.0 - 140e9 / GIB / 16)


@pytest.mark.parametrize(("dtype", "factor"), [("bfloat16", 2), ("float8", 1), ("int4", 0.5), ("float32", 4)])
def test_dtype_bytes(dtype: str, factor: float) -> None:
    assert ModelShape(1.0, dtype).weight_bytes == 1e9 * factor


def test_72b_on_one_h100_is_refused_with_gib_figures() -> None:
    with pytest.raises(SpecError) as e:
        plan_layout(parse_config(base_config(tp_size=1)))
    msg = e.value.message
    assert "GiB of weights per GPU" in msg and "135.4 GiB" in msg and "66.1 GiB static pool" in msg
    assert "mem_fraction_static 0.83 (SGLang 0.5.23's own choice" in msg


def test_72b_fits_on_tp4_h200() -> None:
    lay = plan_layout(parse_config(base_config(tp_size=4, instance_type="p5en.48xlarge", replicas=2)))
    assert lay.memory.kv_cache_gib > 80


def test_min_kv_cache_is_configurable() -> None:
    spec = parse_config(base_config(tp_size=8, instance_type="p5en.48xlarge", min_kv_cache_gib="110"))
    with pytest.raises(SpecError, match="min_kv_cache_gib 110"):
        plan_layout(spec)


def test_every_known_model_has_a_dtype_with_bytes() -> None:
    for shape in KNOWN_MODELS.values():
        assert shape.weight_bytes > 0


def test_catalog_gpu_memory_below_marketing_size() -> None:
    assert CATALOG["p5.48xlarge"].gpu_memory_gib < 80


# --- SGLang 0.5.23's own mem_fraction_static (mirror; checked against SGLang itself in
# tests/conformance/test_sglang_resolution.py) -------------------------------------------------

H100_MIB = 81559  # nvidia-smi memory.total of an H100 80GB HBM3
L40S_MIB = 46068
PREFILL_GRAPHS_8192 = 58  # breakable prefill CUDA graph sizes up to 8192 tokens
PREFILL_GRAPHS_4096 = 50


@pytest.mark.parametrize(
    ("gpu", "tp", "pp", "mla", "reserved_mib"),
    [
        # 512 + 1.5 x chunk + tp*pp/8 GiB + 2 x decode max batch + prefill graphs
        (H100_MIB, 16, 1, False, 512 + 1.5 * 8192 + 2048 + 2 * 512 + 8 * PREFILL_GRAPHS_8192),
        (H100_MIB, 8, 1, False, 512 + 1.5 * 8192 + 1024 + 2 * 512 + 8 * PREFILL_GRAPHS_8192),
        (H100_MIB, 2, 1, False, 512 + 1.5 * 8192 + 256 + 2 * 256 + 8 * PREFILL_GRAPHS_8192),
        (H100_MIB, 8, 1, True, 512 + 1.5 * 8192 + 1024 + 2 * 512 + 1536),  # MLA: 1.5 GiB
        (H100_MIB, 8, 2, True, 512 + 1.5 * 8192 + 2048 + 2 * 512),  # PP: no prefill graphs
        (L40S_MIB, 1, 1, False, 512 + 1.5 * 4096 + 128 + 2 * 32 + 8 * PREFILL_GRAPHS_4096),
    ],
)
def test_sglang_fraction_by_layout(gpu: float, tp: int, pp: int, mla: bool, reserved_mib: float) -> None:
    got = sglang_mem_fraction_static(gpu, tp, pp, mla=mla)
    assert got == round((gpu - reserved_mib) / gpu, 3)


def test_sglang_fraction_tp16_leaves_more_headroom_than_085() -> None:
    f = sglang_mem_fraction_static(H100_MIB, 16, 1)
    assert f == 0.8
    # 0.85 would leave 0.05 x 79.6 GiB less for activations and graphs.
    assert (0.85 - f) * H100_MIB / 1024 == pytest.approx(3.98, abs=0.01)


def test_sglang_fraction_floor_of_10_gib_on_big_gpus() -> None:
    # A small reserve (chunk 2048, TP1) is raised to 10 GiB on GPUs over 60 GiB.
    assert sglang_mem_fraction_static(H100_MIB, 1, 1, chunked_prefill_size=2048) == round(
        (H100_MIB - 10240) / H100_MIB, 3
    )


def test_sglang_fraction_attention_dp_and_running_cap() -> None:
    base = sglang_mem_fraction_static(H100_MIB, 8, 1)
    tp8_reserved = 512 + 1.5 * 8192 + 1024 + 2 * 512 + 8 * PREFILL_GRAPHS_8192
    # DP attention pads decode graphs: 3 (+1.5 above batch 300) x max batch x attn_dp_size MiB.
    dp_pad = 512 * 8 * 3 + 512 * 8 * 1.5
    with_dp = sglang_mem_fraction_static(H100_MIB, 8, 1, attn_dp_size=8)
    assert with_dp == round((H100_MIB - tp8_reserved - dp_pad) / H100_MIB, 3)
    capped = sglang_mem_fraction_static(H100_MIB, 8, 1, max_running_requests=64)
    assert capped > base


def test_memory_fit_uses_sglang_fraction_unless_set() -> None:
    spec = parse_config(base_config())
    assert effective_mem_fraction_static(spec, spec.node_type) == 0.8
    set_spec = parse_config(base_config(mem_fraction_static="0.85"))
    assert effective_mem_fraction_static(set_spec, set_spec.node_type) == 0.85
    chunked = parse_config(base_config(extra_server_args=["--chunked-prefill-size", "16384"]))
    assert effective_mem_fraction_static(chunked, chunked.node_type) < 0.8


def test_every_catalog_gpu_has_its_nvidia_smi_figure() -> None:
    for t in CATALOG.values():
        if t.gpus:
            assert (t.gpu_model, t.gpu_memory_gib) in NVIDIA_SMI_TOTAL_MIB, t.name
            assert gpu_total_mib(t) / 1024 == pytest.approx(t.gpu_memory_gib, abs=0.1)


def test_sglang_fraction_without_chunked_prefill() -> None:
    # Chunking off: activations sized by --max-prefill-tokens (16384), no prefill graph sizes.
    reserved = 512 + 1.5 * 16384 + 1024 + 2 * 512
    assert sglang_mem_fraction_static(H100_MIB, 8, 1, chunked_prefill_size=-1) == round(
        (H100_MIB - reserved) / H100_MIB, 3
    )
    spec = parse_config(
        base_config(extra_server_args=["--chunked-prefill-size", "-1", "--max-prefill-tokens=32768"])
    )
    reserved_32k = 512 + 1.5 * 32768 + 2048 + 2 * 512
    assert effective_mem_fraction_static(spec, spec.node_type) == round(
        (H100_MIB - reserved_32k) / H100_MIB, 3
    )
