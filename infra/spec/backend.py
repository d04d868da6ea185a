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

    slurm_container_runtime: Literal["docker", "pyxis"] = Field(
        "docker",
        description="backend slurm: how the serving job starts its containers. docker: docker run "
        "with the EC2 nodes' flags (devices, EFA/NCCL env), only the job's containers removed at "
        "its end; pyxis: srun --container-image (Pyxis/Enroot, off by default in ParallelCluster "
        "since 3.11.1, enabled by the cluster's custom action).",
    )
