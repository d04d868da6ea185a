"""Keys of the backend that runs the servers: EC2 instance groups in a cluster placement
group (``ec2``), or an AWS ParallelCluster cluster whose Slurm queue runs the serving job
(``slurm``, :mod:`infra.planning.slurm`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from infra.planning import catalog
from infra.spec.base import Keys, SpecError, qualified

if TYPE_CHECKING:
    from infra.spec.stack import StackSpec


class BackendKeys(Keys):
    """Which backend provisions the GPU nodes and starts the servers."""

    backend: Literal["ec2", "slurm"] = Field(
        "ec2",
        description="ec2: GPU instance groups (one EC2 instance per node) in a cluster placement "
        "group, each node booting its ranks through cloud-init. slurm: an AWS ParallelCluster "
        "3.16 cluster (head node + one Slurm queue of static GPU nodes with EFA) deployed "
        "through ParallelCluster's CloudFormation custom resource; the servers run as one "
        "Slurm job.",
    )
    slurm_head_instance_type: str = Field(
        "c7i.2xlarge",
        description="backend slurm: EC2 instance type of the ParallelCluster head node "
        "(slurmctld, and the router when slurm_router is head_node).",
    )
    slurm_container_runtime: Literal["docker", "pyxis"] = Field(
        "docker",
        description="backend slurm: how the serving job starts its containers. docker: docker run "
        "with the EC2 nodes' flags (devices, EFA/NCCL env), only the job's containers removed at "
        "its end (installed by the custom action); pyxis: srun --container-image (Pyxis/Enroot, "
        "off by default in ParallelCluster since 3.11.1, enabled by the cluster's custom action).",
    )
    slurm_router: Literal["head_node", "own_node"] = Field(
        "head_node",
        description="backend slurm: where the router runs: on the head node, or on its own "
        "static node (router_instance_type) in a second Slurm queue named router.",
    )

    @model_validator(mode="before")
    @classmethod
    def _slurm_gateway_default(cls, data: object) -> object:
        # The SLURM job registers its workers through sglang-router's POST /workers (the path
        # tested under a real Slurm), so that is the gateway a SLURM stack gets unless it names
        # one (then check() refuses smg with the key named).
        if isinstance(data, dict) and data.get("backend") == "slurm" and "gateway" not in data:
            return {**data, "gateway": "sglang-router"}
        return data

    @field_validator("slurm_head_instance_type")
    @classmethod
    def _head_type(cls, v: str) -> str:
        if v not in catalog.CATALOG:
            allowed = ", ".join(catalog.CPU_TYPES + catalog.GPU_TYPES)
            raise ValueError(f"unknown instance type; allowed: {allowed}")
        return v


SLURM_ONLY_KEYS: tuple[str, ...] = ("slurm_head_instance_type", "slurm_container_runtime", "slurm_router")
"""Keys that mean something only with ``backend: slurm``."""


def check(spec: StackSpec) -> None:
    """Rules between the backend keys and the rest of the spec (no catalog, no layout).

    Raises:
        SpecError: naming the key:
            - a ``slurm_*`` key set away from its default with ``backend: ec2`` (it would be
              silently ignored);
            - with ``backend: slurm``: ``placement_group_name`` together with
              ``capacity_reservation_id``. ParallelCluster 3.16 checks the pair only at create
              time against the live reservation (``PlacementGroupCapacityReservationValidator``:
              an error when the reservation belongs to another group, a warning about
              insufficient capacity when it belongs to none), which the spec cannot see
              offline, and refuses a placement group with a Capacity Block; a SLURM stack takes
              either a placement group or the reservation / Capacity Block;
            - with ``backend: slurm``: ``ami_id`` (ParallelCluster needs its own AMI, built for the
              pinned release: ``Image.CustomAmi`` is not offered here);
            - with ``backend: slurm``: ``endpoint`` other than ``http``: the load balancer's
              target is the EC2 backend's router instance, which a SLURM stack does not have.
    """
    if spec.backend != "slurm":
        defaults = BackendKeys.model_fields
        for key in SLURM_ONLY_KEYS:
            if getattr(spec, key) != defaults[key].default:
                raise SpecError(
                    qualified(key),
                    f"is a setting of the SLURM backend, but backend is {spec.backend}; set "
                    "backend: slurm or remove the key",
                )
        return
    if spec.placement_group_name and spec.capacity_reservation_id:
        raise SpecError(
            qualified("placement_group_name"),
            "cannot be combined with capacity_reservation_id on the SLURM backend: give either "
            "a placement group (ParallelCluster creates one when both are empty) or the "
            "reservation / Capacity Block (capacity_reservation_id, capacity_block), not both",
        )
    if spec.ami_id:
        raise SpecError(
            qualified("ami_id"),
            "is not used by the SLURM backend: ParallelCluster runs its official "
            "ubuntu2204 AMI of the pinned release (leave ami_id empty)",
        )
    if spec.gateway != "sglang-router":
        raise SpecError(
            qualified("gateway"),
            f"{spec.gateway} is not offered with backend: slurm yet: the serving job registers its "
            "rank-0 URLs through sglang-router 0.3.2's POST /workers (tested under a real Slurm); "
            "set gateway: sglang-router",
        )
    if spec.pd_disaggregation:
        raise SpecError(
            qualified("pd_disaggregation"),
            "prefill/decode pools are not offered with backend: slurm yet (the job runs one "
            "pool); use backend: ec2 for pd-disagg layouts",
        )
    if spec.endpoint != "http":
        raise SpecError(
            qualified("endpoint"),
            f"{spec.endpoint} is not offered with backend: slurm yet (the load balancer targets the "
            "EC2 backend's router instance); use endpoint: http with client_cidrs, or backend: ec2",
        )
