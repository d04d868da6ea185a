"""Keys of prefill/decode disaggregation: the two pools, the KV transfer backend, bootstrap port.

With ``pd_disaggregation: true`` the stack runs a prefill pool and a decode pool (each with its
own instance type, TP size and server count) instead of ``replicas`` identical servers; the
pools move the KV cache over EFA with Mooncake or NIXL. Planning: :mod:`infra.planning.pd`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from infra.planning import catalog
from infra.spec.base import Keys, SpecError, qualified

if TYPE_CHECKING:
    from infra.spec.stack import StackSpec

TRANSFER_ENV_KEYS: frozenset[str] = frozenset(
    {
        "MOONCAKE_PROTOCOL",
        "FI_HMEM",
        "GLOG_logtostderr",
        "MC_FORCE_TCP",
        "SGLANG_DISAGGREGATION_NIXL_BACKEND",
        "NIXL_LOG_LEVEL",
    }
)
"""``server_env`` names refused with PD: the project sets the first three (Mooncake) or the
last two (NIXL) so the KV transfer runs on EFA and says so in the log; ``MC_FORCE_TCP=1`` makes
Mooncake install its TCP transport (Mooncake ``transfer_engine_impl.cpp``)."""

OWNED_PD_FLAGS: dict[str, str] = {
    "--disaggregation-transfer-backend": "pd_transfer_backend",
    "--disaggregation-bootstrap-port": "pd_bootstrap_port",
    "--disaggregation-ib-device": "the node's EFA devices, found at boot",
}
"""Flags of SGLang 0.5.23 the project renders for prefill/decode servers, with what sets them
(``--disaggregation-mode`` is refused for every stack, ``infra/spec/server.py``)."""

_POOL_KEYS = (
    "prefill_instance_type",
    "prefill_tp_size",
    "prefill_replicas",
    "decode_instance_type",
    "decode_tp_size",
    "decode_replicas",
)


class DisaggregationKeys(Keys):
    """Prefill/decode pools and the KV transfer between them."""

    pd_disaggregation: bool = Field(
        False,
        description="Run a prefill pool and a decode pool (--disaggregation-mode prefill|decode) "
        "that move the KV cache over EFA, instead of `replicas` identical servers; the router "
        "pairs them. Pool keys: prefill_*/decode_* (instance type, tp size, replicas).",
    )
    pd_transfer_backend: Literal["mooncake", "nixl"] = Field(
        "mooncake",
        description="KV transfer engine of a PD stack: mooncake (EFA build of Mooncake's transfer "
        "engine, MOONCAKE_PROTOCOL=efa, FI_HMEM=cuda) or nixl (NIXL's libfabric backend, "
        "SGLANG_DISAGGREGATION_NIXL_BACKEND=LIBFABRIC).",
    )
    pd_bootstrap_port: int = Field(
        8998,
        ge=1024,
        le=65000,
        description="--disaggregation-bootstrap-port of the first prefill server on a node (the "
        "next ones on the same node +10); decode servers fetch KV-transfer metadata from it.",
    )
    prefill_instance_type: str = Field(
        "", description="EC2 instance type of the prefill nodes; empty = instance_type."
    )
    prefill_tp_size: int = Field(
        0, ge=0, description="Tensor parallel size of each prefill server; 0 = tp_size."
    )
    prefill_replicas: int = Field(1, ge=1, description="Number of prefill servers.")
    decode_instance_type: str = Field(
        "", description="EC2 instance type of the decode nodes; empty = instance_type."
    )
    decode_tp_size: int = Field(
        0, ge=0, description="Tensor parallel size of each decode server; 0 = tp_size."
    )
    decode_replicas: int = Field(1, ge=1, description="Number of decode servers.")

    @field_validator("prefill_instance_type", "decode_instance_type")
    @classmethod
    def _pool_type(cls, v: str) -> str:
        t = catalog.CATALOG.get(v)
        if v and (t is None or t.gpus == 0):
            raise ValueError(f"unknown GPU instance type; allowed: {', '.join(catalog.GPU_TYPES)}")
        return v


def pool_types(spec: StackSpec) -> dict[str, str]:
    """``{"prefill": type, "decode": type}``: each pool's own type, else ``instance_type``."""
    return {
        "prefill": spec.prefill_instance_type or spec.instance_type,
        "decode": spec.decode_instance_type or spec.instance_type,
    }


def check(spec: StackSpec) -> None:
    """Rules between the PD keys and the rest of the spec.

    Raises:
        SpecError: a ``prefill_*``/``decode_*`` key set without ``pd_disaggregation``;
            with it: ``replicas`` other than 1, a pool type without EFA and GPUDirect RDMA (the
            KV cache moves GPU to GPU over EFA: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa.html),
            a capacity reservation with two pool types (a reservation holds one type), a
            ``server_env`` entry in :data:`TRANSFER_ENV_KEYS` or a CUDA VMM allocator with
            Mooncake (SGLang refuses it on EFA), an owned ``--disaggregation-*``
            flag in ``extra_server_args``, or a bootstrap port within 1000 of ``server_port`` or
            ``dist_init_port``.
    """
    if not spec.pd_disaggregation:
        defaults = DisaggregationKeys.model_fields
        for key in _POOL_KEYS:
            if getattr(spec, key) != defaults[key].default:
                raise SpecError(
                    qualified(key),
                    "applies to prefill/decode pools only; set pd_disaggregation true or remove it",
                )
        return
    if spec.replicas != 1:
        raise SpecError(
            qualified("replicas"),
            f"is for regular servers (got {spec.replicas}); with pd_disaggregation set "
            "prefill_replicas and decode_replicas instead",
        )
    for role, name in pool_types(spec).items():
        node = catalog.lookup(name)
        if not (node.has_efa and node.gpudirect_rdma):
            key = f"{role}_instance_type" if getattr(spec, f"{role}_instance_type") else "instance_type"
            raise SpecError(
                qualified(key),
                f"the {role} pool runs on {name}, which has no EFA with GPUDirect RDMA; the KV "
                "cache moves GPU to GPU over EFA between the pools. Use one of "
                f"{', '.join(t for t in catalog.GPU_TYPES if catalog.lookup(t).gpudirect_rdma)}",
            )
    types = set(pool_types(spec).values())
    if spec.capacity_reservation_id and len(types) > 1:
        raise SpecError(
            qualified("capacity_reservation_id"),
            f"a reservation holds one instance type, and the pools use {' and '.join(sorted(types))}; "
            "give both pools the reserved type or launch on demand",
        )
    bad_env = sorted(TRANSFER_ENV_KEYS & set(spec.env_map))
    if bad_env:
        raise SpecError(
            qualified("server_env"),
            f"{bad_env[0]} is set by the project for pd_transfer_backend {spec.pd_transfer_backend} "
            "(the KV transfer must run on EFA and log its choice for the boot check); remove it",
        )
    env = spec.env_map
    alloc = ",".join(env.get(k, "") for k in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")).replace(
        " ", ""
    )
    pool = env.get("SGLANG_MOONCAKE_CUSTOM_MEM_POOL", "").upper()
    if spec.pd_transfer_backend == "mooncake" and (
        "expandable_segments:true" in alloc.lower() or pool in ("NVLINK", "BAREX")
    ):
        # SGLang 0.5.23 refuses both with MOONCAKE_PROTOCOL=efa at start (disaggregation/mooncake/
        # utils.py _validate_efa_allocator_compatibility): libfabric's EFA provider cannot move
        # CUDA VMM allocations.
        raise SpecError(
            qualified("server_env"),
            "CUDA VMM allocations (expandable_segments:True, SGLANG_MOONCAKE_CUSTOM_MEM_POOL "
            "NVLINK/BAREX) cannot be transferred by libfabric's EFA provider, and SGLang refuses "
            "them with Mooncake over EFA; remove them",
        )
    for arg in spec.extra_server_args:
        flag = arg.split("=", 1)[0]
        if flag in OWNED_PD_FLAGS:
            raise SpecError(
                qualified("extra_server_args"),
                f"{flag} is rendered by the project from {OWNED_PD_FLAGS[flag]}; remove it",
            )
    for key, port in (("server_port", spec.server_port), ("dist_init_port", spec.dist_init_port)):
        if abs(spec.pd_bootstrap_port - port) < 1000:
            raise SpecError(
                qualified("pd_bootstrap_port"),
                f"{spec.pd_bootstrap_port} is within 1000 of {key} {port}; SGLang binds ports "
                "above both, keep them at least 1000 apart (default 8998)",
            )
