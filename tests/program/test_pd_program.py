"""Prefill/decode pools under Pulumi mocks: one launch template per pool type, each node
launched from its pool's template with its type's EFA interfaces, role tags on the nodes."""

from __future__ import annotations

from pathlib import Path

import yaml

from infra.mockrun import run_stack
from tests.conftest import base_config


def test_pools_of_two_types_get_their_own_templates(tmp_path: Path) -> None:
    cfg = base_config(
        tp_size=8,
        pd_disaggregation=True,
        prefill_instance_type="p5en.48xlarge",
        decode_replicas=2,
    )
    path = tmp_path / "Pulumi.pd-mixed.yaml"
    path.write_text(
        yaml.safe_dump({"config": {(k if ":" in k else f"sglang-cluster:{k}"): v for k, v in cfg.items()}})
    )
    r = run_stack(str(path))
    templates = {
        t.name: t for t in r.of_type("aws:ec2/launchTemplate:LaunchTemplate") if t.name != "router-lt"
    }
    # One template per GPU node (parallel launch: each attaches its node's primary interface),
    # each with its own pool's instance type.
    types = {name: t.inputs["instanceType"] for name, t in templates.items()}
    assert types == {f"{n.name}-lt": n.instance_type for n in r.plan.layout.nodes}, types
    assert sorted(set(types.values())) == ["p5.48xlarge", "p5en.48xlarge"], types
    efa = {
        t.inputs["instanceType"]: sum(
            i.get("interfaceType") in ("efa", "efa-only") for i in t.inputs["networkInterfaces"]
        )
        for t in templates.values()
    }
    assert efa == {"p5.48xlarge": 32, "p5en.48xlarge": 16}
    instances = {i.name: i for i in r.of_type("aws:ec2/instance:Instance") if i.name != "router"}
    assert sorted(instances) == ["decode-g1-r0", "decode-g2-r0", "prefill-g0-r0"]
    for name, inst in instances.items():
        role = name.split("-")[0]
        assert inst.inputs["tags"]["sglang:role"] == role
        lt_id = inst.inputs["launchTemplate"]["id"]
        (used,) = [t for t in templates.values() if t.id == lt_id]
        assert used.inputs["instanceType"] == ("p5en.48xlarge" if role == "prefill" else "p5.48xlarge")
