"""Teardown safety, once per stack file: ``pulumi destroy`` removes everything the stack made.

Under the SDK's mock runtime every ``RegisterResource`` request is read as the engine gets it:
each resource must sit in the stack's component tree (parent chain up to the ``sglang``
cluster component; the explicit AWS provider is the one top-level resource), and none may be
``protect``ed or ``retain_on_delete`` (the engine would refuse to delete it, or delete it from
the state and leave it in the account; https://www.pulumi.com/docs/iac/concepts/options/protect/,
https://www.pulumi.com/docs/iac/concepts/options/retainondelete/). No spec key asks for either
today; one that does would be listed in ``RETAIN_ALLOWED``. The inputs that decide what outlives
the resource itself are pinned too (FSx final backup, ECR images, log group, KMS key).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest

import infra.mockrun
from infra.mockrun import ProgramRun, run_stack
from tests.conftest import ALL_STACKS, SLURM_STACKS, STACKS

ROOT_COMPONENTS = {("sglang:index:Cluster", "sglang"), ("sglang:index:SlurmServingCluster", "sglang")}
"""The stack's one component: the EC2 backend's cluster, or the SLURM backend's."""
RETAIN_ALLOWED: dict[str, set[str]] = {}
"""Stack -> resource names a spec key asks to keep (none: no such key exists)."""


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    """URN of the parent ("" for none): logical names repeat across types (``router``)."""
    protect: bool
    retain_on_delete: bool


def record(monkeypatch: pytest.MonkeyPatch) -> list[Registration]:
    """Wrap the plan's recording monitor to keep the teardown options of every request."""
    seen: list[Registration] = []
    original = infra.mockrun._RecordingMonitor.RegisterResource

    def register(self: Any, request: Any) -> Any:
        resp = original(self, request)
        seen.append(
            Registration(
                request.type,
                request.name,
                resp.urn,
                request.parent,
                bool(request.protect),
                bool(request.retainOnDelete),
            )
        )
        return resp

    monkeypatch.setattr(infra.mockrun._RecordingMonitor, "RegisterResource", register)
    return seen


@pytest.fixture
def registrations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Registration]]:
    yield record(monkeypatch)


def teardown_problems(stack: str, regs: list[Registration]) -> list[str]:
    """Every resource outside the component tree, protected or retained on delete."""
    by_urn = {r.urn: r for r in regs}
    problems: list[str] = []
    for r in regs:
        if r.type == "pulumi:pulumi:Stack":
            continue
        if r.protect:
            problems.append(f"{r.type} {r.name} is protect=True: `pulumi destroy` refuses to delete it")
        if r.retain_on_delete and r.name not in RETAIN_ALLOWED.get(stack, set()):
            problems.append(
                f"{r.type} {r.name} is retain_on_delete: `pulumi destroy` leaves it in the account"
            )
        if r.type.startswith("pulumi:providers:"):
            continue
        node, hops = r, 0
        while (node.type, node.name) not in ROOT_COMPONENTS and node.parent in by_urn and hops < 50:
            node, hops = by_urn[node.parent], hops + 1
        if (node.type, node.name) not in ROOT_COMPONENTS:
            problems.append(
                f"{r.type} {r.name} is not in the sglang component tree (top: {node.type} {node.name})"
            )
    return problems


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_every_resource_is_in_the_tree_and_deletable(stack: str, registrations: list[Registration]) -> None:
    run: ProgramRun = run_stack(stack)
    # The Stack registers once per process (not on every mocked run): count the others.
    assert len([r for r in registrations if r.type != "pulumi:pulumi:Stack"]) == len(run.resources)
    assert teardown_problems(stack, registrations) == []
    providers = [r for r in registrations if r.type.startswith("pulumi:providers:")]
    assert [r.type for r in providers] == ["pulumi:providers:aws"]
    # Top level: its parent is the Stack (the mock runtime keeps the first run's Stack URN).
    assert "::pulumi:pulumi:Stack::" in providers[0].parent


def _common_outlives(run: ProgramRun) -> None:
    for fs in run.of_type("aws:fsx/lustreFileSystem:LustreFileSystem"):
        assert fs.inputs.get("skipFinalBackup") is True, fs.name
    for repo in run.of_type("aws:ecr/repository:Repository"):
        assert repo.inputs.get("forceDelete") is True, repo.name
    for group in run.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert not group.inputs.get("skipDestroy"), group.name
    for key in run.of_type("aws:kms/key:Key"):
        assert key.inputs.get("deletionWindowInDays") == 7, key.name


@pytest.mark.parametrize("stack", SLURM_STACKS)
def test_what_outlives_a_slurm_stack(stack: str) -> None:
    """FSx, ECR, log groups and KMS as on EC2; the ParallelCluster cluster (a custom resource in
    the cluster's CloudFormation stack) is deleted with that stack, and so is its CloudWatch log
    group (ParallelCluster's ``Monitoring.Logs.CloudWatch.DeletionPolicy`` defaults to Retain:
    https://docs.aws.amazon.com/parallelcluster/latest/ug/Monitoring-v3.html)."""
    import json

    run = run_stack(stack)
    _common_outlives(run)
    stacks = run.of_type("aws:cloudformation/stack:Stack")
    assert stacks
    clusters = [
        res
        for st in stacks
        for res in json.loads(st.inputs.get("templateBody") or "{}").get("Resources", {}).values()
        if res.get("Type") == "Custom::PclusterCluster"
    ]
    assert len(clusters) == 1
    (c,) = clusters
    assert c["DeletionPolicy"] == "Delete" and c["Properties"]["DeletionPolicy"] == "Delete"
    logs = c["Properties"]["ClusterConfiguration"]["Monitoring"]["Logs"]["CloudWatch"]
    assert logs["DeletionPolicy"] == "Delete"
    for st in stacks:
        for res in json.loads(st.inputs.get("templateBody") or "{}").get("Resources", {}).values():
            assert res.get("DeletionPolicy", "Delete") == "Delete", res.get("Type")


@pytest.mark.parametrize("stack", STACKS)
def test_what_outlives_a_resource(stack: str) -> None:
    """FSx takes no final backup, ECR deletes its images, the log group is deleted, the KMS key
    waits the minimum 7 days (AWS's floor for ScheduleKeyDeletion), and every node's root
    volume and network interfaces are deleted on termination."""
    run = run_stack(stack)
    _common_outlives(run)
    templates = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert templates
    for lt in templates:  # root volumes and interfaces go with the instance
        assert [m["ebs"]["deleteOnTermination"] for m in lt.inputs["blockDeviceMappings"]] == ["true"], (
            lt.name
        )
        for n in lt.inputs["networkInterfaces"]:
            # A GPU node's primary interface is the stack's own NetworkInterface resource (it
            # keeps the node's address across replacements, infra/components/server_fleet.py),
            # deleted by `pulumi destroy` after the instance; every other interface goes with
            # the instance.
            assert n.get("deleteOnTermination") == "true" or "networkInterfaceId" in n, lt.name
    enis = run.of_type("aws:ec2/networkInterface:NetworkInterface")
    assert len(enis) == len(run.plan.layout.nodes)


def test_the_check_sees_protect_and_retain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not blind: a component whose options say protect / retain_on_delete (as a
    hand edit might) is reported for each of its resources."""
    import infra.components.network as network

    regs = record(monkeypatch)
    original = network.Network.__init__

    def keep(self: Any, *args: Any, opts: pulumi.ResourceOptions | None = None, **kwargs: Any) -> None:
        extra = pulumi.ResourceOptions(protect=True, retain_on_delete=True)
        original(self, *args, opts=pulumi.ResourceOptions.merge(opts, extra), **kwargs)

    monkeypatch.setattr(network.Network, "__init__", keep)
    run_stack("dev")
    problems = teardown_problems("dev", regs)
    assert any("aws:ec2/vpc:Vpc" in p and "protect=True" in p for p in problems)
    # retain_on_delete is not inherited by children (protect is): the component itself is named.
    assert any(p.endswith("is retain_on_delete: `pulumi destroy` leaves it in the account") for p in problems)
