"""ParallelCluster's own offline validators on every SLURM cluster configuration, and the
configuration as CloudFormation really hands it to ParallelCluster's Lambda.

- ``EfaPlacementGroupValidator`` (aws-parallelcluster 3.16.1, run from the pinned package in
  the pcluster venv, arguments computed by ParallelCluster's own config objects): an EFA
  compute resource with neither a placement group nor ``Enabled: false`` is an ERROR at
  ``pcluster create-cluster``, so the custom resource fails after the provider stack, the
  network and the FSx file system already exist. The other validators call AWS and cannot run
  here.
- CloudFormation passes every scalar of a custom resource's properties as a string
  (``MinCount: "2"``, ``Enabled: "true"``); ParallelCluster's Lambda reads ``ClusterConfiguration``
  from that event (``cloudformation/custom_resource/cluster.yaml``, handler ``create_or_update``).
  The stringified configuration must still load through the schema.
"""

from __future__ import annotations

from tests.conformance.conftest import run_json
from tests.conformance.test_slurm_conformance import PCLUSTER_PYTHON, all_docs, variant_doc


def _check(docs: dict, stringify: bool = False) -> list[dict]:
    payload = [
        {
            "cluster_name": d["slurm"]["cluster_name"],
            "yaml": d["slurm"]["cluster_config"],
            "stringify": stringify,
        }
        for d in docs.values()
    ]
    return run_json(PCLUSTER_PYTHON, "check_pcluster_validators.py", payload)


def test_efa_placement_group_validator_finds_no_error() -> None:
    docs = all_docs()
    for name, result in zip(docs, _check(docs), strict=True):
        assert result["loaded"], (name, result)
        errors = [f for f in result["failures"] if f["level"] == "ERROR"]
        assert errors == [], (name, errors)


def test_odcr_queue_disables_the_placement_group_explicitly() -> None:
    """The reservation variant: ParallelCluster's validator answers a WARNING (placement group
    disabled, "expected when using a capacity reservation"), not the ERROR an implicit group
    gets."""
    (result,) = _check({"odcr": variant_doc("odcr")})
    levels = [f["level"] for f in result["failures"]]
    assert levels == ["WARNING"], result


def test_configs_load_as_cloudformation_delivers_them() -> None:
    docs = all_docs()
    for name, result in zip(docs, _check(docs, stringify=True), strict=True):
        assert result["loaded"], (name, result["errors"])
