"""SGLang's release image must carry the SGLang version whose flags the project renders."""

from __future__ import annotations

from typing import Any

import pytest

from infra.planning.cluster import plan_cluster
from infra.spec import SpecError, parse_config
from tests.conftest import base_config

DIGEST = "sha256:" + "a" * 64


def plan(**overrides: Any) -> object:
    return plan_cluster(parse_config(base_config(**overrides)), "prod")


@pytest.mark.parametrize(
    "image",
    [
        "lmsysorg/sglang:v0.5.22",
        "lmsysorg/sglang:v0.5.24-cu130",
        "lmsysorg/sglang:v0.5.2",
        "lmsysorg/sglang:v0.5.230",
        "lmsysorg/sglang:latest",
        "lmsysorg/sglang",
        "docker.io/lmsysorg/sglang:v0.4.10",
        f"public.ecr.aws/lmsysorg/sglang:v0.5.22@{DIGEST}",
    ],
)
def test_other_release_tags_are_refused(image: str) -> None:
    with pytest.raises(SpecError) as e:
        plan(image=image)
    assert e.value.key == "sglang-cluster:image"
    assert "0.5.23" in e.value.message and image in e.value.message


@pytest.mark.parametrize(
    "image",
    [
        "lmsysorg/sglang:v0.5.23",
        "lmsysorg/sglang:v0.5.23-cu129-amd64",
        "public.ecr.aws/lmsysorg/sglang:v0.5.23-cu129",
        f"lmsysorg/sglang:v0.5.23@{DIGEST}",
        f"lmsysorg/sglang@{DIGEST}",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/sglang-efa:custom",
    ],
)
def test_the_pinned_release_and_other_repositories_pass(image: str) -> None:
    overrides: dict[str, Any] = {"image": image}
    if not image.startswith("lmsysorg") and "lmsysorg" not in image:
        overrides["image_efa_complete"] = True
    assert plan(**overrides)
