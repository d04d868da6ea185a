"""Shared fixtures: a valid base config and helpers to mutate it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.mockrun import STACKS_DIR

ROOT = Path(__file__).resolve().parents[1]
ALL_STACKS = sorted(p.stem.removeprefix("Pulumi.") for p in STACKS_DIR.glob("Pulumi.*.yaml"))


def _backend(stack: str) -> str:
    import yaml

    doc = yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")) or {}
    return str((doc.get("config") or {}).get("sglang-cluster:backend", "ec2"))


SLURM_STACKS = [s for s in ALL_STACKS if _backend(s) == "slurm"]
"""Stacks with ``backend: slurm`` (ParallelCluster; no instances, launch templates or user data
of ours: tests/program/test_slurm_program.py and tests/conformance/test_slurm_conformance.py)."""
STACKS = [s for s in ALL_STACKS if s not in SLURM_STACKS]
"""Stacks of the EC2 backend (instance groups booting through cloud-init)."""


def base_config(**overrides: Any) -> dict[str, Any]:
    """A valid prod-tp16-like config with bare keys; overrides replace or (value None) delete."""
    cfg: dict[str, Any] = {
        "aws:region": "us-east-1",
        "availability_zone": "us-east-1a",
        "client_cidrs": ["203.0.113.0/24"],
        "model": "Qwen/Qwen2.5-72B-Instruct",
        "instance_type": "p5.48xlarge",
        "tp_size": 16,
    }
    for k, v in overrides.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


@pytest.fixture
def base() -> dict[str, Any]:
    return base_config()


def engine_config(**overrides: Any) -> dict[str, str]:
    """``base_config`` as the engine hands it to the program (qualified keys, string values)."""
    out = {}
    for k, v in base_config(**overrides).items():
        key = k if ":" in k else f"sglang-cluster:{k}"
        out[key] = v if isinstance(v, str) else json.dumps(v)
    return out
