"""The SLURM backend's artifacts through the real tools.

- Every SLURM stack's cluster configuration, and variants that reach every branch of
  :func:`infra.planning.slurm.cluster_config` (Capacity Block, On-Demand Capacity Reservation,
  existing placement group, router on its own node, docker runtime, private router, no model
  store), loads through ParallelCluster's own schema (``ClusterSchema(...).load``) of the pinned
  ``aws-parallelcluster`` in ``.tools/pcluster-venv``. Only the schema runs: ParallelCluster's
  validators call AWS, which this machine has no account for.
- The cluster stack's CloudFormation template of each of them passes ``cfn-lint``
  (``.tools/cfn-lint-venv``).
- Negative controls show both tools refuse what they should, so a green run means something.
- The custom-action scripts pass shellcheck.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import plan_document
from infra.mockrun import run_program
from tests.conformance.conftest import TOOLS, plan_json, require, run_json
from tests.conftest import ROOT, SLURM_STACKS, engine_config

PCLUSTER_PYTHON = Path(os.environ.get("PCLUSTER_PYTHON", str(TOOLS / "pcluster-venv" / "bin" / "python")))
CFN_LINT = Path(os.environ.get("CFN_LINT", str(TOOLS / "cfn-lint-venv" / "bin" / "cfn-lint")))
ACTIONS = sorted((ROOT / "slurm" / "custom-actions").glob("*.sh"))

VARIANTS: dict[str, dict[str, Any]] = {
    "capacity-block": {"capacity_reservation_id": "cr-0123456789abcdef0", "capacity_block": True},
    "odcr": {"capacity_reservation_id": "cr-0123456789abcdef0"},
    "existing-pg": {"placement_group_name": "my-cluster-pg"},
    "router-own-node": {"slurm_router": "own_node"},
    "docker-private": {"slurm_container_runtime": "docker", "router_public_ip": False},
    "no-store": {"model_store": False},
    "no-efa": {"instance_type": "g6e.xlarge", "model": "Qwen/Qwen3-0.6B", "tp_size": 1, "node_count": 1},
    "byo-network": {
        "vpc_id": "vpc-0123456789abcdef0",
        "subnet_id": "subnet-0123456789abcdef0",
        "router_subnet_id": "subnet-0123456789abcdef1",
        "availability_zone": None,
    },
}


@cache
def variant_doc(name: str) -> dict[str, Any]:
    config = engine_config(**{"backend": "slurm", "node_count": 2, **VARIANTS[name]})
    return plan_document(run_program(f"slurm-{name}", config))


def all_docs() -> dict[str, dict[str, Any]]:
    docs = {s: plan_json(s) for s in SLURM_STACKS}
    docs.update({f"variant:{v}": variant_doc(v) for v in VARIANTS})
    return docs


def test_there_is_a_slurm_stack() -> None:
    assert "slurm-tp16" in SLURM_STACKS


def test_every_cluster_config_loads_through_parallelclusters_schema() -> None:
    docs = all_docs()
    payload = [
        {"cluster_name": d["slurm"]["cluster_name"], "yaml": d["slurm"]["cluster_config"]}
        for d in docs.values()
    ]
    results = run_json(PCLUSTER_PYTHON, "check_pcluster_config.py", payload)
    for name, result in zip(docs, results, strict=True):
        assert result == {"ok": True, "errors": None, "type": "SlurmClusterConfig"}, (name, result)


def test_the_schema_refuses_what_it_should() -> None:
    """Negative controls: the same configuration with one thing wrong is refused by the schema."""
    config = yaml.safe_load(plan_json("slurm-tp16")["slurm"]["cluster_config"])
    broken = []
    c1 = json.loads(json.dumps(config))
    c1["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["Efa"]["Enable"] = True  # typo of Enabled
    broken.append(c1)
    c2 = json.loads(json.dumps(config))
    c2["Scheduling"]["SlurmQueues"][0]["CapacityType"] = "RESERVED"
    broken.append(c2)
    c3 = json.loads(json.dumps(config))
    c3["SharedStorage"][0]["StorageType"] = "Lustre"
    broken.append(c3)
    payload = [{"cluster_name": "sglang-slurm-tp16", "yaml": yaml.safe_dump(c)} for c in broken]
    results = run_json(PCLUSTER_PYTHON, "check_pcluster_config.py", payload)
    assert [r["ok"] for r in results] == [False, False, False], results
    assert "Enable" in json.dumps(results[0]["errors"])


def _cfn_lint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(require(CFN_LINT)), "--format", "parseable", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_cluster_stack_template_passes_cfn_lint(tmp_path: Path) -> None:
    paths = []
    for name, doc in all_docs().items():
        path = tmp_path / f"{name.replace(':', '-')}.json"
        path.write_text(doc["slurm"]["cloudformation_template"], encoding="utf-8")
        paths.append(path)
    proc = _cfn_lint(paths)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cfn_lint_refuses_a_broken_template(tmp_path: Path) -> None:
    """Negative control: an output reading a parameter the template does not declare."""
    template = json.loads(plan_json("slurm-tp16")["slurm"]["cloudformation_template"])
    del template["Parameters"]["ServiceToken"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    proc = _cfn_lint([path])
    assert proc.returncode != 0 and "ServiceToken" in proc.stdout, proc.stdout


def _shellcheck() -> str:
    exe = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    return str(require(Path(exe)))


@pytest.mark.parametrize("script", ACTIONS, ids=[p.name for p in ACTIONS])
def test_custom_actions_pass_shellcheck(script: Path) -> None:
    proc = subprocess.run(
        [_shellcheck(), "--severity=style", str(script)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout


def test_every_action_the_config_names_is_a_file_we_upload() -> None:
    from infra.planning import slurm

    assert sorted(p.name for p in ACTIONS) == sorted(slurm.ACTION_FILES)
