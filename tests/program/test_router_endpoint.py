"""The router's stable endpoint under the SDK's mock runtime: an Elastic IP associated with the
router instance for a public router, and the outputs built from the EIP's address.

The mocks stand in for AWS; the fake router instance carries its own (auto-assigned) public IP,
distinct from the EIP's, so an output built from the instance's address would fail here.
"""

from __future__ import annotations

from infra.mockrun import PlanMocks
from tests.program.test_store_image_identity import run_cfg


def test_public_router_gets_an_eip_on_its_instance() -> None:
    r = run_cfg()
    (eip,) = [e for e in r.of_type("aws:ec2/eip:Eip") if e.name == "router-eip"]
    assert eip.inputs["domain"] == "vpc"
    (assoc,) = r.of_type("aws:ec2/eipAssociation:EipAssociation")
    assert assoc.name == "router-eip-assoc" and assoc.parent == "router"
    assert assoc.inputs["allowReassociation"] is True
    assert assoc.inputs["allocationId"].startswith("eipalloc-")
    assert assoc.inputs["instanceId"] == r.outputs["nodes"]["router"]["instance_id"]
    # One interface: EC2 assigns a public IPv4 at launch; the EIP replaces it once associated.
    (nic,) = r.named("router-lt").inputs["networkInterfaces"]
    assert nic["associatePublicIpAddress"] == "true"


def test_outputs_use_the_eip_address() -> None:
    r = run_cfg()
    eip_ip = PlanMocks.eip_address("router-eip")
    # The mock's router instance has its own auto-assigned public IP (203.0.113.10): the URL
    # must not be built from it.
    assert "203.0.113.10" not in r.outputs["router_url"]
    assert r.outputs["router_url"] == f"http://{eip_ip}:8000"
    assert r.outputs["health_url"] == f"http://{eip_ip}:8000/health"
    assert r.outputs["metrics_url"] == f"http://{eip_ip}:29000/metrics"


def test_private_router_has_no_eip_and_a_private_url() -> None:
    r = run_cfg(router_public_ip=False)
    assert [e.name for e in r.of_type("aws:ec2/eip:Eip")] == ["sglang-net-nat-eip"]
    assert r.of_type("aws:ec2/eipAssociation:EipAssociation") == []
    assert r.outputs["router_url"] == f"http://{r.outputs['nodes']['router']['private_ip']}:8000"


def test_given_vpc_public_router_in_its_router_subnet() -> None:
    r = run_cfg(
        availability_zone=None,
        vpc_id="vpc-0a1b2c3d",
        subnet_id="subnet-0a1b2c3d",
        router_subnet_id="subnet-0e0f0a0b",
    )
    (nic,) = r.named("router-lt").inputs["networkInterfaces"]
    assert nic["subnetId"] == "subnet-0e0f0a0b"
    assert len(r.of_type("aws:ec2/eipAssociation:EipAssociation")) == 1
