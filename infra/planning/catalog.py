"""Instance catalog: the one source of truth for GPU counts, GPU memory, EFA and prices.

Every number here is data with a source, never logic. The planner, the EFA interface
builder, the cost estimate and the components read this table; nothing else restates it.

Sources (read 2026-11-21):
- GPUs, vCPUs, memory, EFA counts: ``shared/reference/aws-gpu-clusters.md`` (from meta-pytorch/torchx
  ``torchx/specs/named_resources_aws.py`` and awsome-distributed-training
  ``instance-profiles.conf``), cross-checked with the EC2 user guide, "Supported instance types"
  for EFA: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa.html#efa-instance-types
- ``max_efa`` is ``EfaInfo.MaximumEfaInterfaces`` from DescribeInstanceTypes, not the network-card
  count (eksctl PR #8692).
- EFA counts and network cards, cross-checked 2026-11-21 with aws/sagemaker-hyperpod-cli
  ``src/sagemaker/hyperpod/training/constants.py`` and aws/karpenter-provider-aws
  ``pkg/providers/instancetype/zz_generated.vpclimits.go`` (generated 2026-08-06).
- GPU memory is ``nvidia-smi`` memory.total in MiB / 1024, from logs in public issues: H100 81559
  (NVIDIA/nccl#1264), H200 143771 (NVIDIA/cuda-samples#311), B200 183359 (NVIDIA/TensorRT-LLM#10278),
  A10G 23028 (NVIDIA/DCGM#232), A100 40960/81920 and L40S 46068 (modal-labs/modal-client#2797).
- Prices: EC2 On-Demand Linux, us-east-1, USD per hour; see ``PRICE_SOURCE``. ``None`` where no
  source was found (the estimate then says so instead of guessing).
"""

from __future__ import annotations

from dataclasses import dataclass

PRICE_SOURCE = (
    "EC2 On-Demand Linux us-east-1, as generated from the AWS pricing API into "
    "aws/karpenter-provider-aws pkg/providers/pricing/zz_generated.pricing_aws.go "
    "(generated 2026-07-20; includes the June 2025 P4/P5 price cut)"
)
PRICE_DATE = "2026-07-20"


@dataclass(frozen=True)
class InstanceType:
    """One EC2 instance type as the planner sees it.

    Attributes:
        name: EC2 instance type, e.g. ``p5.48xlarge``.
        gpus: GPUs per instance (0 for CPU types).
        gpu_model: marketing name of the GPU (``H100``).
        gpu_memory_gib: usable memory per GPU in GiB (nvidia-smi total / 1024).
        vcpus: vCPUs per instance.
        memory_gib: host memory in GiB.
        max_efa: ``EfaInfo.MaximumEfaInterfaces`` (0 when the type has no EFA).
        network_cards: ``MaximumNetworkCards``.
        gpudirect_rdma: True when EFA supports GPUDirect RDMA (P-series from p4d on). On G-series
            ``FI_EFA_USE_DEVICE_RDMA=1`` aborts the process (aws-ofi-nccl #547, #981).
        cuda_arch: CUDA compute capability as ``"9.0"``; empty for CPU types.
        hourly_usd: on-demand price in USD/hour (see ``PRICE_SOURCE``), ``None`` when unknown.
    """

    name: str
    gpus: int
    gpu_model: str
    gpu_memory_gib: float
    vcpus: int
    memory_gib: int
    max_efa: int
    network_cards: int
    gpudirect_rdma: bool
    cuda_arch: str
    hourly_usd: float | None

    @property
    def has_efa(self) -> bool:
        """True when at least one EFA interface can be attached."""
        return self.max_efa > 0


def _t(*args: object) -> InstanceType:
    return InstanceType(*args)  # type: ignore[arg-type]


# name, gpus, gpu, GiB/GPU, vCPU, RAM GiB, max EFA, cards, RDMA, arch, USD/h
_TYPES: tuple[InstanceType, ...] = (
    _t("p4d.24xlarge", 8, "A100", 40.0, 96, 1152, 4, 4, True, "8.0", 21.957642),
    _t("p4de.24xlarge", 8, "A100", 80.0, 96, 1152, 4, 4, True, "8.0", 27.44705),
    _t("p5.48xlarge", 8, "H100", 79.6, 192, 2048, 32, 32, True, "9.0", 55.04),
    _t("p5e.48xlarge", 8, "H200", 140.4, 192, 2048, 32, 32, True, "9.0", None),
    _t("p5en.48xlarge", 8, "H200", 140.4, 192, 2048, 16, 16, True, "9.0", 63.296),
    _t("p6-b200.48xlarge", 8, "B200", 179.0, 192, 2048, 8, 8, True, "10.0", 113.9328),
    _t("g5.xlarge", 1, "A10G", 22.4, 4, 16, 0, 1, False, "8.6", 1.006),
    _t("g5.12xlarge", 4, "A10G", 22.4, 48, 192, 1, 1, False, "8.6", 5.672),
    _t("g5.48xlarge", 8, "A10G", 22.4, 192, 768, 1, 1, False, "8.6", 16.288),
    _t("g6e.xlarge", 1, "L40S", 44.9, 4, 32, 0, 1, False, "8.9", 1.861),
    _t("g6e.12xlarge", 4, "L40S", 44.9, 48, 384, 1, 1, False, "8.9", 10.49264),
    _t("g6e.24xlarge", 4, "L40S", 44.9, 96, 768, 2, 2, False, "8.9", 15.06559),
    _t("g6e.48xlarge", 8, "L40S", 44.9, 192, 1536, 4, 4, False, "8.9", 30.13118),
    # CPU types for the router node.
    _t("c7i.xlarge", 0, "", 0.0, 4, 8, 0, 1, False, "", 0.1785),
    _t("c7i.2xlarge", 0, "", 0.0, 8, 16, 0, 1, False, "", 0.357),
    _t("m7i.xlarge", 0, "", 0.0, 4, 16, 0, 1, False, "", 0.2016),
)

CATALOG: dict[str, InstanceType] = {t.name: t for t in _TYPES}

GPU_TYPES: tuple[str, ...] = tuple(t.name for t in _TYPES if t.gpus > 0)
CPU_TYPES: tuple[str, ...] = tuple(t.name for t in _TYPES if t.gpus == 0)


def lookup(name: str) -> InstanceType:
    """Return the catalog entry for ``name``.

    Raises:
        KeyError: when the type is not in the catalog (the spec refuses it earlier with the list
            of known types).
    """
    return CATALOG[name]
