"""Keys of the backend that runs the servers: EC2 instance groups in a cluster placement
group (``ec2``, the only backend today).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from infra.spec.base import Keys


class BackendKeys(Keys):
    """Which backend provisions the GPU nodes and starts the servers."""

    backend: Literal["ec2"] = Field(
        "ec2",
        description="ec2: GPU instance groups (one EC2 instance per node) in a cluster placement "
        "group, each node booting its ranks through cloud-init.",
    )
