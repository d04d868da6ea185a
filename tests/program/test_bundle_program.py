"""Node bundles under the SDK's mock runtime: the bucket's protections, the objects Pulumi
uploads, what each instance waits for, the role scope, and replacement on a script change.

A mock stands in for AWS (no account here): every input is the one the provider would get.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from functools import cache

import pytest

import infra.components.bundle as bundle_component
import infra.planning.cluster as planning_cluster
from infra.mockrun import ProgramRun, RecordedResource, run_program, run_stack
from infra.planning.bundle import Bundle, Kind, build, bundle, bundle_of
from infra.planning.userdata import shipped_file, unpack_b64
from tests.conftest import STACKS, engine_config

OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
INSTANCE = "aws:ec2/instance:Instance"


@cache
def _run(stack: str) -> ProgramRun:
    return run_stack(stack)


def _one(r: ProgramRun, type_token: str) -> RecordedResource:
    (res,) = r.of_type(type_token)
    return res


def _objects(r: ProgramRun) -> dict[str, RecordedResource]:
    return {o.name.rsplit("-", 1)[1]: o for o in r.of_type(OBJECT)}


def _kind(inst: RecordedResource) -> Kind:
    return "router" if inst.name == "router" else "server"


@pytest.mark.parametrize("stack", STACKS)
def test_bucket_is_private_encrypted_tls_only_and_destroyable(stack: str) -> None:
    r = _run(stack)
    bucket = _one(r, "aws:s3/bucket:Bucket")
    assert bucket.inputs["forceDestroy"] is True  # pulumi destroy empties it
    block = _one(r, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        block.inputs[k] is True
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    sse = _one(r, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.inputs["rules"] == [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
    owner = _one(r, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert owner.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    policy = _one(r, "aws:s3/bucketPolicy:BucketPolicy")
    (deny,) = json.loads(policy.inputs["policy"])["Statement"]
    arn = f"arn:aws:s3:::{bucket.id}"
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Resource"] == [arn, f"{arn}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert block.name in r.waits_for(policy)  # no concurrent bucket configuration (OperationAborted)
    for res in (block, sse, owner, policy):
        assert res.inputs["bucket"] == bucket.id


@pytest.mark.parametrize("stack", STACKS)
def test_objects_are_the_bundles_under_their_hash(stack: str) -> None:
    r = _run(stack)
    bucket = _one(r, "aws:s3/bucket:Bucket")
    objs = _objects(r)
    assert set(objs) == {"server", "router"}
    for kind, obj in objs.items():
        b = bundle(kind)  # type: ignore[arg-type]  # keys are the two kinds
        data = base64.b64decode(obj.inputs["contentBase64"])
        assert data == b.data and hashlib.sha256(gzip.decompress(data)).hexdigest() == b.sha256
        assert obj.inputs["key"] == f"node-bundles/{kind}-{b.sha256}.tar.gz"
        assert obj.inputs["bucket"] == bucket.id and obj.inputs["serverSideEncryption"] == "AES256"
        assert "sglang-bundles-sse" in r.waits_for(obj)  # encrypted by the bucket default too


@pytest.mark.parametrize("stack", STACKS)
def test_instances_wait_for_their_bundle_and_the_policy_that_grants_it(stack: str) -> None:
    r = _run(stack)
    bucket = _one(r, "aws:s3/bucket:Bucket")
    objs = _objects(r)
    policies = {p.name: json.loads(p.inputs["policy"]) for p in r.of_type("aws:iam/rolePolicy:RolePolicy")}
    instances = r.of_type(INSTANCE)
    assert len(instances) == len(r.plan.layout.nodes) + 1
    for inst in instances:
        kind = _kind(inst)
        obj = objs[kind]
        role_policy = (
            "sglang-identity-router-policy" if kind == "router" else "sglang-identity-servers-policy"
        )
        waits = r.waits_for(inst)
        assert {obj.name, role_policy, "sglang-bundles-tls-only", "sglang-bundles-private"} <= waits, (
            inst.name
        )
        (grant,) = [s for s in policies[role_policy]["Statement"] if s.get("Sid") == "NodeBundle"]
        assert grant["Action"] == "s3:GetObject"
        assert grant["Resource"] == f"arn:aws:s3:::{bucket.id}/{obj.inputs['key']}"
        other = objs["server" if kind == "router" else "router"].inputs["key"]
        assert other not in json.dumps(policies[role_policy])  # never the other kind's object
        b, env = bundle_of(unpack_b64(inst.inputs["userDataBase64"]))
        assert (b.kind, env["SGLANG_BUNDLE_BUCKET"], env["SGLANG_BUNDLE_KEY"]) == (
            kind,
            bucket.id,
            obj.inputs["key"],
        )
        assert env["SGLANG_BUNDLE_REGION"] == r.plan.region
        assert inst.inputs["userDataReplaceOnChange"] is True


def test_a_script_change_replaces_the_server_nodes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed server script is a new object key and new user data on every GPU node, which
    ``user_data_replace_on_change`` turns into a replacement, as an inline script change did;
    the router's user data and object stay the same."""
    before = run_stack("prod-tp16")
    changed = build("server", lambda n: shipped_file(n) + ("# v2\n" if n == "sglang-server-run" else ""))

    def patched(kind: Kind) -> Bundle:
        return changed if kind == "server" else bundle(kind)

    monkeypatch.setattr(planning_cluster, "bundle", patched)
    monkeypatch.setattr(bundle_component, "bundle", patched)
    after = run_stack("prod-tp16")
    ud = {i.name: i.inputs["userDataBase64"] for i in before.of_type(INSTANCE)}
    ud2 = {i.name: i.inputs["userDataBase64"] for i in after.of_type(INSTANCE)}
    assert ud.keys() == ud2.keys()
    for name in ud:
        assert (ud[name] == ud2[name]) == (name == "router"), name
        assert after.named(name).inputs["userDataReplaceOnChange"] is True
    assert _objects(after)["server"].inputs["key"] == changed.key != _objects(before)["server"].inputs["key"]
    assert _objects(after)["router"].inputs == _objects(before)["router"].inputs


def test_s3_gateway_endpoint_on_the_private_route_table_only_when_the_vpc_is_created() -> None:
    """A created VPC reaches S3 (bundle, weights, ECR layers) through a gateway endpoint on the
    GPU nodes' route table, off the NAT; a brought VPC gets no endpoint from this project."""
    r = _run("prod-tp16")
    (ep,) = r.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert (
        ep.inputs["vpcEndpointType"] == "Gateway"
        and ep.inputs["serviceName"] == f"com.amazonaws.{r.plan.region}.s3"
    )
    private_rt = r.named("sglang-net-private-rt")
    assert private_rt.id in ep.inputs["routeTableIds"]
    for inst in r.of_type(INSTANCE):
        assert ep.name in r.waits_for(inst)
    brought = run_program(
        "prod-test",
        engine_config(
            vpc_id="vpc-0123456789abcdef0", subnet_id="subnet-0123456789abcdef0", router_public_ip=False
        ),
    )
    assert brought.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") == []
    assert len(brought.of_type(OBJECT)) == 2  # the bundle still comes from S3 (the VPC's own route)


def test_plan_json_shows_each_nodes_bundle() -> None:
    """``python -m infra plan STACK --format json``: every node keeps ``user_data`` and
    ``user_data_bytes`` and gains ``bundle`` (kind, URI, SHA-256, file list)."""
    from infra.cli import plan_document

    r = _run("prod-tp16")
    doc = json.loads(json.dumps(plan_document(r)))  # what --format json prints
    bucket = _one(r, "aws:s3/bucket:Bucket").id
    for node in doc["nodes"]:
        kind = "router" if node["role"] == "router" else "server"
        b = bundle(kind)  # type: ignore[arg-type]
        assert node["user_data_bytes"] < 4096 and "#cloud-config" in node["user_data"]
        assert node["bundle"]["sha256"] == b.sha256 and node["bundle"]["kind"] == kind
        assert node["bundle"]["uri"] == f"s3://{bucket}/{b.key}"
        assert node["bundle"]["files"] == b.manifest()
        assert {"path": "/usr/local/bin/sglang-secrets", "mode": "0755"}.items() <= next(
            f for f in node["bundle"]["files"] if f["path"] == "/usr/local/bin/sglang-secrets"
        ).items()
    objs = [x for x in doc["resources"] if x["type"] == OBJECT]
    assert len(objs) == 2
    for x in objs:  # the archive is summarized, its files are in nodes[].bundle
        assert x["inputs"]["contentBase64"].startswith("[gzip+base64 tar, ")
        assert x["inputs"]["key"].startswith("node-bundles/")
