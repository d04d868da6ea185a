"""Which image each layout runs (``image_source: auto``) and the image choices refused.

Pure planning code: the spec and the layout planner, no Pulumi.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.planning.cluster import plan_cluster
from infra.planning.image import efa_required, image_source, image_summary, resolve_image
from infra.planning.layout import plan_layout
from infra.spec import SpecError, StackSpec, parse_config
from tests.conftest import base_config

PP2 = {"model": "deepseek-ai/DeepSeek-V2-Lite", "tp_size": 8, "pp_size": 2, "trust_remote_code": True}
ONE_NODE = {"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 8}
REPLICAS = {"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 8, "replicas": 2}
DEV = {"model": "Qwen/Qwen3-0.6B", "tp_size": 1, "instance_type": "g6e.xlarge"}
OWN_ECR = "210987654321.dkr.ecr.us-west-2.amazonaws.com/team/sglang-efa:v0.5.23"


def resolved(**overrides: Any) -> StackSpec:
    return plan_cluster(parse_config(base_config(**overrides)), "prod").spec


@pytest.mark.parametrize(
    ("overrides", "source"),
    [
        ({}, "build"),  # TP16 across two p5 nodes
        (PP2, "build"),  # TP8 x PP2 across two p5 nodes
        # NCCL stays on NVLink inside the node; an EFA type still pulls in-region from ECR.
        (ONE_NODE, "mirror"),
        (REPLICAS, "mirror"),  # two single-node servers behind the router
        (DEV, "uri"),  # no EFA at all
        ({"image_efa_complete": True}, "mirror"),  # the user's image carries the EFA stack
        ({"image_efa_complete": True, "image": OWN_ECR}, "uri"),  # already in ECR
        ({**ONE_NODE, "image_source": "build"}, "build"),  # an explicit choice is kept
        ({"image_source": "mirror", "image_efa_complete": True}, "mirror"),
    ],
    ids=[
        "tp16",
        "tp8pp2",
        "one-node",
        "replicas",
        "dev",
        "stated",
        "stated-ecr",
        "explicit-build",
        "mirror-stated",
    ],
)
def test_auto_resolves_per_layout(overrides: dict[str, Any], source: str) -> None:
    spec = resolved(**overrides)
    assert spec.image_source == source


def test_auto_is_the_default() -> None:
    assert parse_config(base_config()).image_source == "auto"
    assert StackSpec.model_fields["efa_host_libraries"].default is False
    assert StackSpec.model_fields["image_efa_complete"].default is False


@pytest.mark.parametrize("source", ["uri", "mirror"])
@pytest.mark.parametrize("layout", [{}, PP2], ids=["tp16", "tp8pp2"])
def test_public_image_as_is_across_efa_nodes_is_refused(source: str, layout: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as e:
        resolved(image_source=source, **layout)
    assert e.value.key == "sglang-cluster:image_source"
    msg = e.value.message
    assert "lmsysorg/sglang:v0.5.23" in msg and "2 p5.48xlarge nodes" in msg
    assert "TCP sockets" in msg and "image_efa_complete true" in msg and "build" in msg


@pytest.mark.parametrize("overrides", [ONE_NODE, REPLICAS, DEV], ids=["one-node", "replicas", "dev"])
def test_public_image_as_is_within_a_node_is_fine(overrides: dict[str, Any]) -> None:
    for source in ("uri", "mirror"):
        assert resolved(image_source=source, **overrides).image_source == source


def test_stated_efa_image_runs_as_is() -> None:
    spec = resolved(image=OWN_ECR, image_source="uri", image_efa_complete=True)
    assert spec.image_source == "uri" and spec.image == OWN_ECR


def test_efa_host_libraries_refused() -> None:
    with pytest.raises(SpecError) as e:
        parse_config(base_config(efa_host_libraries=True))
    assert e.value.key == "sglang-cluster:efa_host_libraries"
    assert "EFA_1.2" in e.value.message and "rdma-core" in e.value.message
    # false (what old stack files wrote) is still accepted
    assert parse_config(base_config(efa_host_libraries=False)).efa_host_libraries is False


def test_efa_requirement_can_be_turned_off_by_require_efa() -> None:
    """``require_efa: false`` lets a user run a public image across nodes on purpose."""
    assert efa_required(parse_config(base_config())) is True
    for on in ("auto", "true"):
        assert efa_required(parse_config(base_config(require_efa=on))) is True
    off = parse_config(base_config(require_efa="false", image_source="uri"))
    assert efa_required(off) is False
    assert resolve_image(off, plan_layout(off)).image_source == "uri"


def test_resolve_keeps_the_spec_when_nothing_changes() -> None:
    spec = parse_config(base_config(**ONE_NODE, image_source="uri"))
    assert resolve_image(spec, plan_layout(spec)) is spec
    auto = parse_config(base_config())
    out = resolve_image(auto, plan_layout(auto))
    assert out.image_source == "build" and auto.image_source == "auto"


def test_summary_says_which_image_and_why() -> None:
    spec = parse_config(base_config())
    layout = plan_layout(spec)
    built = image_summary(resolve_image(spec, layout), layout)
    assert built["efa_stack"] == "built" and built["nccl_crosses_nodes_over_efa"] is True
    assert "docker/Dockerfile on lmsysorg/sglang:v0.5.23" in str(built["summary"])
    single = parse_config(base_config(**ONE_NODE))
    one = image_summary(resolve_image(single, plan_layout(single)), plan_layout(single))
    assert one == {
        "source": "mirror",
        "image": "lmsysorg/sglang:v0.5.23",
        "efa_stack": "none",
        "nccl_crosses_nodes_over_efa": False,
        "summary": "mirror lmsysorg/sglang:v0.5.23 (no EFA stack); NCCL stays inside each node",
    }
    assert image_source(single, plan_layout(single)) == "mirror"
