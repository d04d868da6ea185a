"""Which serving image every stack file gets, under the SDK's mock runtime.

The mocks stand in for AWS and for the Docker build (no account and no Docker daemon here): the
assertions are on what the program hands the providers (the docker build context and arguments,
the image reference in each node's user data), not on a built image.

Rule checked: every stack whose servers span several nodes of an EFA type (NCCL crosses nodes
over EFA) runs the EFA-complete image built from ``docker/Dockerfile``; stacks whose servers fit
on one node run SGLang's public image as is, mirrored into the stack's ECR repository on EFA
instance types so every node pulls in-region.
"""

from __future__ import annotations

import shlex
from functools import cache

import pytest
import yaml

from infra.components.image import DOCKER_DIR, PROJECT_ROOT
from infra.mockrun import ProgramRun, run_stack
from infra.planning.userdata import split_mime, unpack_b64
from tests.conftest import STACKS

IMAGE = "docker:index/image:Image"
REPO = "aws:ecr/repository:Repository"
EXPECTED = {
    "dev": "uri",
    "moe-ep": "mirror",  # EFA types pull in-region from ECR (issue 10)
    "tp2-dp8": "mirror",
    "tp8-dp2": "mirror",
    "prod-tp16": "build",
    "prod-tp16-https": "build",
    "tp8-pp2": "build",
    "pd-disagg": "build",  # the KV transfer engine's EFA build must be in the image
}
"""The image source of each shipped stack file (README "Serving image" says why)."""


@cache
def run(stack: str) -> ProgramRun:
    return run_stack(stack)


def node_env(r: ProgramRun, name: str) -> dict[str, str]:
    """``/etc/sglang/node.env`` of a node, read from its cloud-config (``shlex`` quoting undone)."""
    ud = unpack_b64(r.named(name).inputs["userDataBase64"])
    doc = yaml.safe_load(split_mime(ud)["text/cloud-config"])
    (f,) = [f for f in doc["write_files"] if f["path"] == "/etc/sglang/node.env"]
    env = {}
    for line in f["content"].splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key] = " ".join(shlex.split(value))
    return env


def test_every_stack_is_classified() -> None:
    assert set(STACKS) == set(EXPECTED)


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_gets_its_image(stack: str) -> None:
    r = run(stack)
    crosses = r.plan.layout.nodes_per_server > 1 and r.plan.node_type.has_efa
    assert r.plan.spec.image_source == EXPECTED[stack]
    # The rule itself: NCCL across EFA nodes (or a KV transfer over EFA) means the EFA build.
    assert (r.plan.spec.image_source == "build") == (crosses or r.plan.spec.pd_disaggregation)
    images = r.of_type(IMAGE)
    if EXPECTED[stack] == "uri":
        assert images == [] and r.of_type(REPO) == []
        assert r.outputs["image"] == "lmsysorg/sglang:v0.5.23"
        return
    (img,) = images
    build = img.inputs["build"]
    if EXPECTED[stack] == "build":
        assert PROJECT_ROOT / build["dockerfile"] == DOCKER_DIR / "Dockerfile"
        assert PROJECT_ROOT / build["context"] == DOCKER_DIR  # holds check_efa_stack.py for the gate
        assert build["args"]["BASE_IMAGE"] == "lmsysorg/sglang:v0.5.23"
    else:
        assert PROJECT_ROOT / build["dockerfile"] == DOCKER_DIR / "mirror" / "Dockerfile"
    # Every GPU node pulls the pushed digest from the stack's repository.
    for inst in r.plan.layout.nodes:
        env = node_env(r, inst.name)
        assert env["SGLANG_IMAGE"] == r.outputs["image"] and "@sha256:" in env["SGLANG_IMAGE"]
        assert ".dkr.ecr." in env["SGLANG_ECR_REGISTRY"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_host_efa_libraries_on_any_node(stack: str) -> None:
    r = run(stack)
    for node in r.plan.layout.nodes:
        env = node_env(r, node.name)
        assert "SGLANG_EFA_HOST_LIBS" not in env and "SGLANG_EFA_LD_PATH" not in env
        ud = unpack_b64(r.named(node.name).inputs["userDataBase64"])
        assert "/opt/amazon:/opt/amazon" not in ud


@pytest.mark.parametrize("stack", [s for s, v in EXPECTED.items() if v == "build"])
def test_efa_stacks_load_the_plugin(stack: str) -> None:
    """The container env of an EFA-image stack asks NCCL for the plugin the image carries."""
    r = run(stack)
    assert r.plan.container_env["NCCL_NET_PLUGIN"] == "ofi"
    assert "LD_LIBRARY_PATH" not in r.plan.container_env  # the image's own path stays in force
