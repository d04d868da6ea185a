"""The boot-path figures the cold-start model reads (infra/planning/fastboot.py)."""

from __future__ import annotations

import pytest

from infra.planning.cluster import ClusterPlan, plan_cluster
from infra.planning.fastboot import (
    boot_figures,
    fsx_throughput_mb_s,
    image_pull_source,
    nvme,
    nvme_present,
)
from infra.planning.image import pull_source, resolve_image
from infra.planning.layout import plan_layout
from infra.spec import parse_config
from tests.conftest import base_config

OWN_ECR = "210987654321.dkr.ecr.us-west-2.amazonaws.com/team/sglang-efa:v0.5.23"


def plan(**overrides: object) -> ClusterPlan:
    return plan_cluster(parse_config(base_config(**overrides)), "prod")


def test_prod_tp16_figures() -> None:
    p = plan()
    f = boot_figures(p)
    assert f.parallel_launch and f.image_pull_source == "ecr-in-region"
    assert (f.nvme_disks, f.nvme_total_gb, f.docker_on_nvme) == (8, 30720, True)
    # 7200 GiB x 250 MB/s/TiB (baseline; burst 1300 MB/s/TiB of disk, capped by the network's
    # 500 MB/s/TiB burst): the cheapest store that meets 180 s with 3 file servers per node.
    assert fsx_throughput_mb_s(p) == pytest.approx((7200 / 1024 * 250, 7200 / 1024 * 500))
    assert f.weights_readers == 2 and f.weights_load_secs is not None and f.weights_load_secs < 180
    assert f.prefetch_checkpoints and not f.startup_overlap


def test_no_store_no_fsx_figures() -> None:
    f = boot_figures(plan(model_store=False))
    assert f.fsx_baseline_mb_s is None and f.weights_load_secs is None and not f.prefetch_checkpoints


@pytest.mark.parametrize(
    ("overrides", "region", "source"),
    [
        ({}, "us-east-1", "ecr-in-region"),  # build
        ({"tp_size": 8}, "us-east-1", "ecr-in-region"),  # auto mirrors on an EFA type
        ({"tp_size": 8, "image_source": "uri"}, "us-east-1", "docker.io"),
        ({"model": "Qwen/Qwen3-0.6B", "tp_size": 1, "instance_type": "g6e.xlarge"}, "us-east-1", "docker.io"),
        ({"image": OWN_ECR, "image_source": "uri", "image_efa_complete": True}, "us-west-2", "ecr-in-region"),
        (
            {"image": OWN_ECR, "image_source": "uri", "image_efa_complete": True},
            "us-east-1",
            "ecr-other-region",
        ),
        (
            {"image": "public.ecr.aws/x/sglang:v0.5.23", "tp_size": 8, "image_source": "uri"},
            "us-east-1",
            "public.ecr.aws",
        ),
    ],
)
def test_pull_source(overrides: dict[str, object], region: str, source: str) -> None:
    spec = parse_config(base_config(**overrides))
    assert pull_source(resolve_image(spec, plan_layout(spec)), region) == source


def test_image_pull_source_of_a_plan_uses_its_region() -> None:
    spec = parse_config(base_config(image=OWN_ECR, image_source="uri", image_efa_complete=True))
    assert image_pull_source(plan_cluster(spec, "p", "us-east-1")) == "ecr-other-region"
    west = spec.model_copy(update={"availability_zone": "us-west-2a"})
    assert image_pull_source(plan_cluster(west, "p", "us-west-2")) == "ecr-in-region"


@pytest.mark.parametrize(
    ("itype", "disks", "raid0"),
    [("p5.48xlarge", 8, True), ("p4d.24xlarge", 8, True), ("g6e.xlarge", 1, False), ("c7i.xlarge", 0, False)],
)
def test_nvme_per_type(itype: str, disks: int, raid0: bool) -> None:
    n = nvme(itype)
    assert (n.disks, n.raid0) == (disks, raid0)


def test_nvme_present_follows_the_gpu_type() -> None:
    assert nvme_present(plan())
    assert nvme_present(plan(model="Qwen/Qwen3-0.6B", tp_size=1, instance_type="g6e.xlarge"))
