"""Memory fit: weights per GPU against the static pool, in GiB."""

from __future__ import annotations

import pytest

from infra.planning.catalog import CATALOG
from infra.planning.layout import plan_layout
from infra.planning.memory import GIB, memory_fit
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
