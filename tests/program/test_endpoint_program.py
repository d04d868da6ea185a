"""The endpoint under the SDK's mock runtime: the Application Load Balancer in front of a private
router (``endpoint: https`` and ``private``), its listener, target group, security groups, the
deploy order and the outputs.

The mocks stand in for AWS and the engine (no account here): they hand back fake ids, ARNs, a
load balancer DNS name and three AZs for ``get_availability_zones``. Every input is checked as
the provider receives it, and edges as the SDK sends them to the engine.
"""

from __future__ import annotations

from functools import cache

from infra.cli import plan_document
from infra.mockrun import ProgramRun, load_stack_config, run_program, run_stack, stack_file
from infra.planning.endpoint import SSL_POLICY

LB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TG = "aws:lb/targetGroup:TargetGroup"
ATTACH = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
SUBNET = "aws:ec2/subnet:Subnet"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
EIP = "aws:ec2/eip:Eip"

CERT = "arn:aws:acm:us-east-1:210987654321:certificate/0f2b6c1e-3d4a-4b5c-8d7e-9f0a1b2c3d4e"
BYO = {
    "sglang-cluster:vpc_id": "vpc-0a1b2c3d4e5f60718",
    "sglang-cluster:subnet_id": "subnet-0a1b2c3d4e5f60718",
    "sglang-cluster:load_balancer_subnet_ids": '["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]',
}


@cache
def run(stack: str = "prod-tp16-https", **overrides: str) -> ProgramRun:
    cfg = load_stack_config(stack_file(stack)[1])
    cfg.update({f"sglang-cluster:{k}" if ":" not in k else k: v for k, v in overrides.items()})
    return run_program(stack, cfg)


def private(**more: str) -> ProgramRun:
    return run(
        "prod-tp16",
        **{"sglang-cluster:endpoint": "private", "sglang-cluster:client_cidrs": '["10.20.0.0/16"]', **more},
    )


def router_sg(r: ProgramRun) -> str:
    (nic,) = r.named("router-lt").inputs["networkInterfaces"]
    (sg,) = nic["securityGroups"]
    return sg


# ----- https: the shipped stack -----


def test_https_stack_has_one_internet_facing_alb_in_two_subnets_of_two_azs() -> None:
    r = run_stack("prod-tp16-https")
    (lb,) = r.of_type(LB)
    assert lb.inputs["loadBalancerType"] == "application"
    assert lb.inputs["internal"] is False
    assert lb.inputs["idleTimeout"] == 1800
    subnets = {s.id: s.inputs for s in r.of_type(SUBNET)}
    azs = [subnets[s]["availabilityZone"] for s in lb.inputs["subnets"]]
    assert len(azs) == 2 and len(set(azs)) == 2, azs
    assert "us-east-1a" in azs  # the AZ of the GPU nodes and the router
    # Both subnets route through the internet gateway (internet-facing ALB).
    public = r.named("sglang-net-public").id
    assert public in lb.inputs["subnets"]
    rta = r.named("sglang-endpoint-subnet-b-rta")
    assert rta.inputs["routeTableId"] == r.named("sglang-net-public-rt").id


def test_https_listener_uses_the_certificate_and_forwards_to_the_router() -> None:
    r = run_stack("prod-tp16-https")
    (listener,) = r.of_type(LISTENER)
    li = listener.inputs
    assert (li["protocol"], li["port"]) == ("HTTPS", 443)
    assert li["certificateArn"] == r.plan.spec.certificate_arn
    assert li["sslPolicy"] == SSL_POLICY
    (tg,) = r.of_type(TG)
    assert li["defaultActions"] == [{"type": "forward", "targetGroupArn": tg.id}]
    assert li["loadBalancerArn"] == r.of_type(LB)[0].id
    hc = tg.inputs["healthCheck"]
    assert (hc["path"], hc["matcher"], hc["port"], hc["protocol"]) == (
        "/readiness",
        "200",
        "traffic-port",
        "HTTP",
    )
    assert (tg.inputs["port"], tg.inputs["targetType"]) == (8000, "instance")
    (att,) = r.of_type(ATTACH)
    assert att.inputs["targetId"] == r.named("router").id
    assert att.inputs["port"] == 8000
    # No plain-HTTP listener: the API key never reaches the load balancer in clear.
    assert len(r.of_type(LISTENER)) == 1


def test_https_router_has_no_public_ip_and_no_eip() -> None:
    r = run_stack("prod-tp16-https")
    (nic,) = r.named("router-lt").inputs["networkInterfaces"]
    assert nic["associatePublicIpAddress"] == "false"
    assert nic["subnetId"] == r.named("sglang-net-private").id
    assert [e.name for e in r.of_type(EIP)] == ["sglang-net-nat-eip"]
    assert r.of_type("aws:ec2/eipAssociation:EipAssociation") == []


def test_https_security_groups_clients_to_lb_to_router_port_only() -> None:
    r = run_stack("prod-tp16-https")
    lb_sg = r.of_type(LB)[0].inputs["securityGroups"]
    assert len(lb_sg) == 1
    rsg = router_sg(r)
    into_router = [x.inputs for x in r.of_type(INGRESS) if x.inputs["securityGroupId"] == rsg]
    assert into_router == [
        {
            "securityGroupId": rsg,
            "referencedSecurityGroupId": lb_sg[0],
            "ipProtocol": "tcp",
            "fromPort": 8000,
            "toPort": 8000,
            "description": "Router port from the load balancer only",
        }
    ]
    into_lb = [x.inputs for x in r.of_type(INGRESS) if x.inputs["securityGroupId"] == lb_sg[0]]
    assert {(x["cidrIpv4"], x["fromPort"], x["toPort"]) for x in into_lb} == {
        (c, 443, 443) for c in r.plan.spec.client_cidrs
    }
    out_of_lb = [x.inputs for x in r.of_type(EGRESS) if x.inputs["securityGroupId"] == lb_sg[0]]
    assert [(x["referencedSecurityGroupId"], x["fromPort"], x["toPort"]) for x in out_of_lb] == [
        (rsg, 8000, 8000)
    ]


def test_https_deploy_order_nothing_races() -> None:
    r = run_stack("prod-tp16-https")
    lb = r.of_type(LB)[0]
    before_lb = r.waits_for(lb)
    assert {"sglang-net-igw", "sglang-net-public-rta", "sglang-endpoint-subnet-b-rta"} <= before_lb
    listener = r.of_type(LISTENER)[0]
    clients = {x.name for x in r.of_type(INGRESS) if x.name.startswith("sglang-endpoint-lb-in-")}
    assert clients and clients <= r.waits_for(listener)
    att = r.of_type(ATTACH)[0]
    assert {"router", "sglang-endpoint-lb-to-router", "sglang-endpoint-router-from-lb"} <= r.waits_for(att)
    # The router itself waits for its private route (NAT), not for the internet gateway path.
    assert "sglang-net-nat" in r.waits_for(r.named("router"))


def test_https_outputs_are_https_urls_on_the_domain() -> None:
    r = run_stack("prod-tp16-https")
    o = r.outputs
    assert o["router_url"] == "https://llm.example.com"
    assert o["openai_base_url"] == "https://llm.example.com/v1"
    assert o["health_url"] == "https://llm.example.com/health"
    assert o["load_balancer_dns_name"].endswith(".us-east-1.elb.amazonaws.com")
    assert not o["load_balancer_dns_name"].startswith("internal-")
    assert (
        o["endpoint"]["kind"] == "https" and o["endpoint"]["certificate_arn"] == r.plan.spec.certificate_arn
    )


def test_https_without_a_domain_uses_the_alb_dns_name() -> None:
    r = run(**{"sglang-cluster:endpoint_domain": "", "sglang-cluster:certificate_arn": CERT})
    assert r.outputs["router_url"] == f"https://{r.outputs['load_balancer_dns_name']}"


def test_plan_json_endpoint_object_and_warnings() -> None:
    doc = plan_document(run_stack("prod-tp16-https"))
    ep = doc["endpoint"]
    assert ep["kind"] == "https" and ep["router_public_ip"] is False
    lb = ep["load_balancer"]
    assert lb["scheme"] == "internet-facing"
    assert lb["listener"] == {
        "protocol": "HTTPS",
        "port": 443,
        "certificate_arn": doc["outputs"]["endpoint"]["certificate_arn"],
        "ssl_policy": SSL_POLICY,
    }
    assert lb["health_check"]["path"] == "/readiness"
    assert any(w.startswith("sglang-cluster:certificate_arn: account 123456789012") for w in doc["warnings"])
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    assert router["private_ip"].startswith("10.0.1.")  # the private subnet


def test_http_stack_keeps_its_shape_and_warns_about_a_clear_api_key() -> None:
    cfg = load_stack_config(stack_file("prod-tp16")[1])
    cfg["sglang-cluster:client_cidrs"] = '["0.0.0.0/0"]'
    cfg["sglang-cluster:router_api_key"] = "sk-endpoint-test-key-0001"
    r = run_program("prod-tp16", cfg, ["sglang-cluster:router_api_key"])
    assert r.of_type(LB) == [] and r.of_type(LISTENER) == []
    doc = plan_document(r)
    assert doc["endpoint"]["kind"] == "http" and doc["endpoint"]["load_balancer"] is None
    assert any(w.startswith("sglang-cluster:endpoint: http with router_api_key set") for w in doc["warnings"])
    assert doc["outputs"]["router_url"].startswith("http://")


# ----- private -----


def test_private_without_certificate_is_an_internal_alb_on_http_80() -> None:
    r = private()
    (lb,) = r.of_type(LB)
    assert lb.inputs["internal"] is True
    (listener,) = r.of_type(LISTENER)
    assert (listener.inputs["protocol"], listener.inputs["port"]) == ("HTTP", 80)
    assert "certificateArn" not in listener.inputs and "sslPolicy" not in listener.inputs
    assert r.outputs["router_url"].startswith("http://internal-")
    (nic,) = r.named("router-lt").inputs["networkInterfaces"]
    assert nic["associatePublicIpAddress"] == "false"
    lb_sg = lb.inputs["securityGroups"][0]
    into_lb = [x.inputs for x in r.of_type(INGRESS) if x.inputs["securityGroupId"] == lb_sg]
    assert [(x["cidrIpv4"], x["fromPort"]) for x in into_lb] == [("10.20.0.0/16", 80)]


def test_private_with_certificate_listens_https() -> None:
    r = private(
        **{"sglang-cluster:certificate_arn": CERT, "sglang-cluster:endpoint_domain": "llm.corp.internal"}
    )
    (listener,) = r.of_type(LISTENER)
    assert (listener.inputs["protocol"], listener.inputs["port"]) == ("HTTPS", 443)
    assert listener.inputs["certificateArn"] == CERT
    assert r.outputs["router_url"] == "https://llm.corp.internal"


def test_brought_vpc_uses_the_given_subnets_and_creates_none() -> None:
    r = private(**BYO)
    (lb,) = r.of_type(LB)
    assert lb.inputs["subnets"] == ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]
    assert r.of_type(SUBNET) == []
    assert lb.inputs["internal"] is True
