"""Which serving image a stack runs, and the image choices that cannot use EFA.

A server whose ranks span several nodes sends every decode step's all-reduces (TP) or its
activations (PP) between nodes through NCCL. On EFA instance types NCCL reaches EFA only through
aws-ofi-nccl, and that plugin loads only when libfabric, rdma-core (``libefa``, ``libibverbs``)
and the plugin come from one EFA installer inside the container: libfabric's EFA provider needs
``libefa`` symbol versions (``EFA_1.2`` from rdma-core v43, ``EFA_1.3`` v50, ``EFA_1.4`` v59;
rdma-core ``providers/efa/libefa.map``) that distro rdma-core lacks. When the plugin does not
load, NCCL logs it at INFO and silently uses TCP sockets (``shared/reference/aws-gpu-clusters.md``,
"Checked 2026-11"). SGLang's public image ``lmsysorg/sglang`` carries distro rdma-core and no
aws-ofi-nccl, so such servers need ``docker/Dockerfile`` (the pinned SGLang image plus the EFA
installer) or an image the user states is EFA-complete.

Pure code: no Pulumi, no AWS.
"""

from __future__ import annotations

import re
from typing import Literal

from infra.planning import flags, syntax
from infra.planning.layout import Layout
from infra.spec import SpecError, StackSpec, qualified

ImageSource = Literal["uri", "mirror", "build"]


def crosses_nodes_over_efa(spec: StackSpec, layout: Layout) -> bool:
    """True when NCCL traffic of one server crosses nodes over EFA.

    Args:
        spec: the validated spec (its instance type says whether EFA exists).
        layout: the planned layout (``nodes_per_server``).

    Returns:
        ``True`` for a server spanning more than one node of an EFA instance type. Servers that
        fit on one node (``replicas`` behind the router) keep NCCL on NVLink inside the node.
    """
    return layout.nodes_per_server > 1 and spec.node_type.has_efa


def efa_required(spec: StackSpec) -> bool:
    """Whether the stack insists on EFA for cross-node NCCL traffic: ``require_efa`` is not
    ``false`` (``auto`` is on for servers that span nodes, :func:`infra.planning.transport.require_efa`)."""
    return spec.require_efa != "false"


def image_source(spec: StackSpec, layout: Layout) -> ImageSource:
    """The effective ``image_source``: the given one, or what ``auto`` means for this layout.

    ``auto`` is ``build`` when a server crosses nodes over EFA and ``image_efa_complete`` is not
    set (the public SGLang image has no EFA stack); else, on an EFA instance type, ``mirror``
    unless the image already is in ECR (issue 10: every node of an EFA stack pulls its 20-30 GB
    image in-region from the stack's repository, not from Docker Hub through the NAT address,
    which allows 10 anonymous pulls an hour); else ``uri`` (no EFA: ``dev``-sized stacks run
    the public image as is).
    """
    if spec.image_source != "auto":
        return spec.image_source
    # Prefill/decode pools move the KV cache over EFA: the image needs the EFA stack and the
    # transfer engine's EFA build (docker/Dockerfile, KV_TRANSFER_ENGINE) even on one node.
    if (crosses_nodes_over_efa(spec, layout) or spec.pd_disaggregation) and not spec.image_efa_complete:
        return "build"
    if spec.node_type.has_efa and not is_ecr_image(spec.image):
        return "mirror"
    return "uri"


ECR_REGISTRY = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/")


def is_ecr_image(image: str) -> bool:
    """True for an image in a private ECR registry (``<account>.dkr.ecr.<region>.amazonaws.com/...``)."""
    return ECR_REGISTRY.match(image) is not None


def pull_source(spec: StackSpec, region: str) -> str:
    """Where GPU nodes pull the serving image from (``spec`` resolved): ``ecr-in-region`` (the
    stack's repository in ``build``/``mirror`` mode, or an ECR image of the stack's region),
    ``ecr-other-region``, or the registry host of the image (``docker.io`` for Docker Hub)."""
    if spec.image_source in ("build", "mirror"):
        return "ecr-in-region"
    m = ECR_REGISTRY.match(spec.image)
    if m:
        return "ecr-in-region" if m.group(2) == region else "ecr-other-region"
    return syntax.parse_image_reference(spec.image).domain or "docker.io"


def check_image(spec: StackSpec, layout: Layout, source: ImageSource) -> None:
    """Refuse an image that would make a multi-node EFA server's NCCL fall back to sockets.

    Raises:
        SpecError: naming ``sglang-cluster:image_source`` when a server spans several nodes of
            an EFA type, the image is run as given (``uri``/``mirror``), the user has not stated
            ``image_efa_complete: true`` and EFA is required.
    """
    if source == "build" or spec.image_efa_complete:
        return
    if spec.pd_disaggregation:
        raise SpecError(
            qualified("image_source"),
            f"{source} runs {spec.image} as is, but prefill/decode pools move the KV cache over "
            f"EFA with {spec.pd_transfer_backend}, which needs the EFA installer's libfabric and "
            "the transfer engine's EFA build in the image; SGLang's public image has neither. "
            "Leave image_source unset (auto builds docker/Dockerfile with KV_TRANSFER_ENGINE) or "
            f"set it to build; or set image_efa_complete true if {spec.image} carries both",
        )
    if not efa_required(spec):
        return
    if not crosses_nodes_over_efa(spec, layout):
        return
    hint = "; or set require_efa false to accept TCP sockets"
    raise SpecError(
        qualified("image_source"),
        f"{source} runs {spec.image} as is, but each server spans {layout.nodes_per_server} "
        f"{spec.instance_type} nodes and its NCCL traffic needs EFA. Run as is, an image must "
        "carry its own EFA stack (libfabric, rdma-core and aws-ofi-nccl from one EFA installer) "
        "and SGLang's public image does not: NCCL would silently fall back to TCP sockets. Leave "
        "image_source unset (auto builds docker/Dockerfile: the image plus the EFA installer) or "
        f"set it to build; or set image_efa_complete true if {spec.image} carries that stack{hint}",
    )


SGLANG_RELEASE_REPOSITORY = "lmsysorg/sglang"
"""SGLang's public release images (Docker Hub; also mirrored under ``public.ecr.aws``)."""


def check_release_tag(spec: StackSpec) -> None:
    """Refuse an SGLang release image that does not carry the SGLang version the argv is for.

    Every server argv is rendered and checked for ``sglang==`` :data:`infra.planning.flags.SGLANG_VERSION`;
    the release image ``lmsysorg/sglang:vX.Y.Z[-variant]`` carries SGLang X.Y.Z. Another
    version may not know a rendered flag (or give it another meaning), and ``build`` fails only
    after pulling the 20-30 GB base (``docker/check_efa_stack.py --sglang-version``). ``latest``
    or no tag moves with every release. Other repositories (an ECR copy, an AWS DLC) and a
    release image pinned by digest alone are not checked here.

    Raises:
        SpecError: naming ``sglang-cluster:image`` for ``lmsysorg/sglang`` with a tag that is
            not ``v<SGLANG_VERSION>`` or ``v<SGLANG_VERSION>-<variant>``.
    """
    ref = syntax.parse_image_reference(spec.image)
    if not ref.path.endswith(SGLANG_RELEASE_REPOSITORY) or (ref.digest and not ref.tag):
        return
    want = f"v{flags.SGLANG_VERSION}"
    if re.fullmatch(re.escape(want) + r"(-.+)?", ref.tag):
        return
    raise SpecError(
        qualified("image"),
        f"{spec.image}: tag {ref.tag or '(none: latest)'} is not SGLang {flags.SGLANG_VERSION}, "
        f"the version whose flags this project renders and checks; use "
        f"{SGLANG_RELEASE_REPOSITORY}:{want} (or a {want}-<variant> tag, or pin it by digest)",
    )


def resolve_image(spec: StackSpec, layout: Layout) -> StackSpec:
    """The spec with ``image_source`` resolved (never ``auto``), after :func:`check_image`.

    Every component reads ``plan.spec.image_source``; resolving it once here keeps them unaware
    of ``auto``.

    Raises:
        SpecError: see :func:`check_release_tag` and :func:`check_image`.
    """
    check_release_tag(spec)
    source = image_source(spec, layout)
    check_image(spec, layout, source)
    if source == spec.image_source:
        return spec
    return spec.model_copy(update={"image_source": source})


def image_summary(spec: StackSpec, layout: Layout) -> dict[str, object]:
    """What the plan shows about the serving image (``spec`` already resolved).

    Returns:
        ``{"source", "image", "efa_stack", "nccl_crosses_nodes_over_efa", "summary"}``:
        ``efa_stack`` is ``"built"`` (docker/Dockerfile adds the EFA installer), ``"stated"``
        (``image_efa_complete``) or ``"none"``; ``summary`` is one readable line.
    """
    crosses = crosses_nodes_over_efa(spec, layout)
    if spec.image_source == "build":
        efa = "built"
        text = f"build docker/Dockerfile on {spec.image} + EFA installer (libfabric, rdma-core, aws-ofi-nccl)"
    elif spec.image_efa_complete:
        efa = "stated"
        text = f"{spec.image_source} {spec.image} (stated EFA-complete: image_efa_complete)"
    else:
        efa = "none"
        text = f"{spec.image_source} {spec.image} (no EFA stack)"
    why = (
        f"NCCL crosses {layout.nodes_per_server} nodes over EFA" if crosses else "NCCL stays inside each node"
    )
    return {
        "source": spec.image_source,
        "image": spec.image,
        "efa_stack": efa,
        "nccl_crosses_nodes_over_efa": crosses,
        "summary": f"{text}; {why}",
    }
