"""Keys of the serving image: which image, and how the stack gets it (as given, mirrored into
ECR, or built with the EFA stack). Rules that need the layout live in
:mod:`infra.planning.image`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from infra.planning import syntax
from infra.spec.base import Keys, no_newline


class ImageKeys(Keys):
    """The container image every server runs."""

    image_source: Literal["auto", "uri", "mirror", "build"] = Field(
        "auto",
        description="auto: build when a server spans several nodes of an EFA type (NCCL crosses "
        "nodes over EFA) unless image_efa_complete is true, else uri; uri: run `image` as given; "
        "mirror: copy `image` unchanged into this stack's ECR repository; build: build "
        "docker/Dockerfile (`image` plus the EFA installer) and push it to that repository.",
    )
    image: str = Field(
        "lmsysorg/sglang:v0.5.23",
        description="Serving container image (must carry SGLang 0.5.23): what nodes run in uri "
        "and mirror modes, the base docker/Dockerfile adds the EFA stack to in build mode. "
        "SGLang's public release image by default (no EFA stack).",
    )
    image_efa_complete: bool = Field(
        False,
        description="State that `image` carries libfabric, rdma-core and aws-ofi-nccl from one "
        "EFA installer (built from docker/Dockerfile, or an AWS SGLang DLC) with NCCL_NET_PLUGIN=ofi "
        "and the plugin on LD_LIBRARY_PATH; lets multi-node EFA servers run it in uri/mirror mode.",
    )
    efa_host_libraries: bool = Field(
        False,
        description="Removed: bind-mounting the host's /opt/amazon into an image with distro "
        "rdma-core cannot load aws-ofi-nccl. Only false is accepted; use an EFA-complete image.",
    )

    @field_validator("image")
    @classmethod
    def _image_single_line(cls, v: str) -> str:
        return no_newline(v)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        # Docker's reference grammar (distribution/reference), see infra/planning/syntax.py.
        syntax.parse_image_reference(v)
        return v

    @field_validator("efa_host_libraries")
    @classmethod
    def _efa_host_libraries(cls, v: bool) -> bool:
        if v:
            raise ValueError(
                "no longer supported: the host's libfabric needs libefa symbol versions (EFA_1.2+) "
                "that an image's distro rdma-core lacks, so aws-ofi-nccl fails to load and NCCL "
                "silently uses TCP sockets; remove the key and run an EFA-complete image "
                "(image_source build, the default for multi-node servers on EFA types)"
            )
        return v
