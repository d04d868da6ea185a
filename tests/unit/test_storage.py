"""Model store sizing and weight paths (pure rules)."""

from __future__ import annotations

import pytest

from infra.planning.argv import server_argv
from infra.planning.cluster import plan_cluster
from infra.planning.storage import fsx_capacity_gib, model_path, model_source, valid_fsx_capacity
from infra.spec import SpecError, parse_config
from tests.conftest import base_config


@pytest.mark.parametrize(
    ("weights_gib", "capacity"),
    [(1, 1200), (135.4, 1200), (960, 1200), (961, 2400), (1920, 2400), (1921, 4800), (5000, 7200)],
)
def test_capacity_is_smallest_valid_size_with_headroom(weights_gib: float, capacity: int) -> None:
    got = fsx_capacity_gib(weights_gib)
    assert got == capacity and valid_fsx_capacity(got) and got >= weights_gib * 1.25


@pytest.mark.parametrize(
    ("gib", "ok"), [(1200, True), (2400, True), (4800, True), (1800, False), (3600, False), (0, False)]
)
def test_valid_capacities(gib: int, ok: bool) -> None:
    assert valid_fsx_capacity(gib) is ok


def test_weights_come_from_fsx_with_a_store() -> None:
    spec = parse_config(base_config())
    assert model_path(spec) == "/fsx/models/Qwen/Qwen2.5-72B-Instruct" and model_source(spec) == "hf"
    argv = server_argv(spec, plan_cluster(spec, "prod").layout.servers[0], 0, "10.0.1.10")
    assert argv[argv.index("--model-path") + 1] == "/fsx/models/Qwen/Qwen2.5-72B-Instruct"
    assert argv[argv.index("--served-model-name") + 1] == "Qwen/Qwen2.5-72B-Instruct"


def test_s3_source_and_local_path() -> None:
    assert model_source(parse_config(base_config(model_s3_uri="s3://weights/models"))) == "s3"
    local = parse_config(
        base_config(
            model="/fsx/ckpt/my-72b",
            served_model_name="my-72b",
            model_params_billion="72",
            model_dtype="bfloat16",
        )
    )
    assert model_path(local) == "/fsx/ckpt/my-72b" and model_source(local) == "local"


def test_without_store_sglang_downloads_itself() -> None:
    spec = parse_config(base_config(model_store=False))
    assert model_path(spec) == spec.model and model_source(spec) == "none"
    assert plan_cluster(spec, "p").fsx_capacity_gib == 0


def test_store_shrinks_the_root_volume() -> None:
    with_store = plan_cluster(parse_config(base_config()), "p").root_volume_gib
    without = plan_cluster(parse_config(base_config(model_store=False)), "p").root_volume_gib
    assert with_store == 150 and without > with_store


def test_scratch_only_for_dev_stacks() -> None:
    # Capacity-only sizing (no load-time target: a 72B SCRATCH_2 store grows for it,
    # tests/unit/test_fsx_sizing.py).
    spec = parse_config(base_config(fsx_deployment_type="SCRATCH_2", weights_load_target_secs=0))
    assert plan_cluster(spec, "dev").fsx_capacity_gib == 1200
    assert plan_cluster(spec, "dev-alice").fsx_capacity_gib == 1200
    with pytest.raises(SpecError) as e:
        plan_cluster(spec, "prod-tp16")
    assert e.value.key == "sglang-cluster:fsx_deployment_type"


def test_capacity_override_must_hold_the_weights() -> None:
    spec = parse_config(
        base_config(
            model="acme/huge",
            model_params_billion="1000",
            model_dtype="bfloat16",
            tp_size=16,
            instance_type="p6-b200.48xlarge",
            fsx_capacity_gib=1200,
        )
    )
    with pytest.raises(SpecError) as e:
        plan_cluster(spec, "p")
    assert e.value.key == "sglang-cluster:fsx_capacity_gib" and "2400 GiB" in e.value.message
