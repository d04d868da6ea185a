"""Invalid stack files: `python -m infra plan FILE` exits 2 with one message naming the key.

Each case writes a real stack file and runs the CLI entry point, so the refusal is checked on
the path a user takes, before any resource is registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import main
from tests.conftest import base_config

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing model", {"model": None}, "sglang-cluster:model"),
    ("unknown instance type", {"instance_type": "p9.96xlarge"}, "sglang-cluster:instance_type"),
    ("typo in a key", {"tp": 16}, "sglang-cluster:tp"),
    ("tp not an integer", {"tp_size": "sixteen"}, "sglang-cluster:tp_size"),
    ("tp zero", {"tp_size": 0}, "sglang-cluster:tp_size"),
    ("tp not filling whole nodes", {"tp_size": 12}, "sglang-cluster:tp_size"),
    (
        "tp not dividing a node",
        {"tp_size": 3, "model": "Qwen/Qwen2.5-14B-Instruct"},
        "sglang-cluster:tp_size",
    ),
    ("weights do not fit", {"tp_size": 1}, "sglang-cluster:tp_size"),
    (
        "dp without attention DP across nodes",
        {"tp_size": 8, "dp_size": 2, "model": "Qwen/Qwen2.5-14B-Instruct"},
        "sglang-cluster:dp_size",
    ),
    (
        "attention DP not dividing tp",
        {"tp_size": 8, "dp_size": 3, "attention_dp": True, "model": "Qwen/Qwen2.5-14B-Instruct"},
        "sglang-cluster:dp_size",
    ),
    ("ep on a dense model", {"ep_size": 2}, "sglang-cluster:ep_size"),
    (
        "ep not dividing tp",
        {"model": "Qwen/Qwen1.5-MoE-A2.7B", "tp_size": 8, "ep_size": 3},
        "sglang-cluster:ep_size",
    ),
    (
        "pp larger than layers",
        {"model": "Qwen/Qwen3-0.6B", "tp_size": 1, "pp_size": 32, "instance_type": "g6e.48xlarge"},
        "sglang-cluster:pp_size",
    ),
    ("node_count disagrees", {"node_count": 3}, "sglang-cluster:node_count"),
    (
        "multi-node without EFA",
        {"model": "Qwen/Qwen3-0.6B", "instance_type": "g6e.xlarge", "tp_size": 2},
        "sglang-cluster:instance_type",
    ),
    ("no client CIDRs", {"client_cidrs": None}, "sglang-cluster:client_cidrs"),
    ("bad client CIDR", {"client_cidrs": ["10.0.0.1/8"]}, "sglang-cluster:client_cidrs"),
    ("no AZ for a created VPC", {"availability_zone": None}, "sglang-cluster:availability_zone"),
    ("subnet without vpc", {"subnet_id": "subnet-0123456789abcdef0"}, "sglang-cluster:vpc_id"),
    ("vpc without subnet", {"vpc_id": "vpc-0123456789abcdef0"}, "sglang-cluster:subnet_id"),
    (
        "owned flag in extra args",
        {"extra_server_args": ["--tp-size", "8"]},
        "sglang-cluster:extra_server_args",
    ),
    (
        "abbreviated flag in extra args",
        {"extra_server_args": ["--enable-ep"]},
        "sglang-cluster:extra_server_args",
    ),
    ("bad router policy", {"router_policy": "fastest"}, "sglang-cluster:router_policy"),
    (
        "smg-only policy on sglang-router",
        {"router_policy": "least_load", "gateway": "sglang-router"},
        "sglang-cluster:router_policy",
    ),
    ("unknown gateway", {"gateway": "nginx"}, "sglang-cluster:gateway"),
    ("power_of_two with one server", {"router_policy": "power_of_two"}, "sglang-cluster:router_policy"),
    (
        "decode policy without PD",
        {"router_decode_policy": "round_robin"},
        "sglang-cluster:router_decode_policy",
    ),
    (
        "bucket on sglang-router",
        {"router_prefill_policy": "bucket", "gateway": "sglang-router"},
        "sglang-cluster:router_prefill_policy",
    ),
    (
        "prometheus host not an address",
        {"router_prometheus_host": "localhost"},
        "sglang-cluster:router_prometheus_host",
    ),
    (
        "health timeout over start-up wait",
        {"router_health_check_timeout_secs": 120, "router_worker_startup_timeout_secs": 60},
        "sglang-cluster:router_worker_startup_timeout_secs",
    ),
    ("cache threshold over 1", {"router_cache_threshold": "1.5"}, "sglang-cluster:router_cache_threshold"),
    (
        "zero failure threshold",
        {"router_health_failure_threshold": 0},
        "sglang-cluster:router_health_failure_threshold",
    ),
    ("mem fraction out of range", {"mem_fraction_static": "1.5"}, "sglang-cluster:mem_fraction_static"),
    (
        "too many servers per node",
        {"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 2, "replicas": 8, "servers_per_node": 5},
        "sglang-cluster:servers_per_node",
    ),
    (
        "replicas not a multiple of servers per node",
        {"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 2, "replicas": 6, "servers_per_node": 4},
        "sglang-cluster:replicas",
    ),
    ("bad env entry", {"server_env": ["NOT VALID"]}, "sglang-cluster:server_env"),
    ("root volume too small", {"root_volume_gib": 50}, "sglang-cluster:root_volume_gib"),
    (
        "heads not divisible by tp",
        {"model": "Qwen/Qwen2.5-14B-Instruct", "tp_size": 16},
        "sglang-cluster:tp_size",
    ),
    ("router ports collide", {"router_prometheus_port": 8000}, "sglang-cluster:router_prometheus_port"),
    ("unknown model without shape", {"model": "acme/unknown-13b"}, "sglang-cluster:model_params_billion"),
    ("missing region", {"aws:region": None}, "aws:region"),
    ("colon in served model name", {"served_model_name": "qwen:72b"}, "sglang-cluster:served_model_name"),
    ("bad image reference", {"image": "my image"}, "sglang-cluster:image"),
    ("FSx capacity not an FSx size", {"fsx_capacity_gib": 1000}, "sglang-cluster:fsx_capacity_gib"),
    (
        "FSx throughput not offered",
        {"fsx_throughput_mb_per_tib": 300},
        "sglang-cluster:fsx_throughput_mb_per_tib",
    ),
    ("S3 URI malformed", {"model_s3_uri": "bucket/prefix"}, "sglang-cluster:model_s3_uri"),
    (
        "S3 without a model store",
        {"model_s3_uri": "s3://weights/m", "model_store": False},
        "sglang-cluster:model_s3_uri",
    ),
    (
        "SCRATCH_2 on a non-dev stack",
        {"fsx_deployment_type": "SCRATCH_2"},
        "sglang-cluster:fsx_deployment_type",
    ),
    ("log retention not offered", {"log_retention_days": 10}, "sglang-cluster:log_retention_days"),
    ("unknown image source", {"image_source": "pull"}, "sglang-cluster:image_source"),
    (
        "public image run as is by a TP16 server across EFA nodes",
        {"image_source": "uri"},
        "sglang-cluster:image_source",
    ),
    (
        "public image mirrored for a TP8xPP2 server across EFA nodes",
        {
            "image_source": "mirror",
            "model": "deepseek-ai/DeepSeek-V2-Lite",
            "tp_size": 8,
            "pp_size": 2,
            "trust_remote_code": True,
        },
        "sglang-cluster:image_source",
    ),
    (
        "own ECR image across EFA nodes without stating it is EFA-complete",
        {"image_source": "uri", "image": "210987654321.dkr.ecr.us-west-2.amazonaws.com/team/sglang:v0.5.23"},
        "sglang-cluster:image_source",
    ),
    ("host EFA libraries bind-mounted", {"efa_host_libraries": True}, "sglang-cluster:efa_host_libraries"),
    ("EFA statement not a boolean", {"image_efa_complete": "maybe"}, "sglang-cluster:image_efa_complete"),
    (
        "S3 with a SCRATCH_2 store",
        {"model_s3_uri": "s3://w/m", "fsx_deployment_type": "SCRATCH_2"},
        "sglang-cluster:model_s3_uri",
    ),
]


def _write_stack(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    qualified = {(k if ":" in k else f"sglang-cluster:{k}"): v for k, v in cfg.items()}
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(yaml.safe_dump({"config": qualified}), encoding="utf-8")
    return path


# Part 9 of issue 6 (spec rules users trip on), kept in one block.
CASES += [
    ("AZ of another region", {"availability_zone": "us-west-2a"}, "sglang-cluster:availability_zone"),
    ("region misspelt", {"aws:region": "us-east"}, "aws:region"),
    (
        "VPC id not hex",
        {"vpc_id": "vpc-prod", "subnet_id": "subnet-0123456789abcdef0"},
        "sglang-cluster:vpc_id",
    ),
    (
        "subnet id of 12 digits",
        {"vpc_id": "vpc-0123456789abcdef0", "subnet_id": "subnet-0123456789ab"},
        "sglang-cluster:subnet_id",
    ),
    ("AMI id with a wrong prefix", {"ami_id": "ami0123456789abcdef0"}, "sglang-cluster:ami_id"),
    ("image with upper-case repository", {"image": "lmsysorg/SGLang:v0.5.23"}, "sglang-cluster:image"),
    ("image tag too long", {"image": "lmsysorg/sglang:" + "v" * 129}, "sglang-cluster:image"),
    ("image digest too short", {"image": "lmsysorg/sglang@sha256:abc"}, "sglang-cluster:image"),
    (
        "owned flag through an alias",
        {"extra_server_args": ["--attention-data-parallel-size", "8"]},
        "sglang-cluster:extra_server_args",
    ),
    (
        "model path through --model",
        {"extra_server_args": ["--model=/fsx/other"]},
        "sglang-cluster:extra_server_args",
    ),
    (
        "config file in extra args",
        {"extra_server_args": ["--config", "x.yaml"]},
        "sglang-cluster:extra_server_args",
    ),
    (
        "a2a backend that changes ep_size",
        {"extra_server_args": ["--moe-a2a-backend", "deepep"]},
        "sglang-cluster:extra_server_args",
    ),
    (
        "prefill/decode mode behind a regular router",
        {"extra_server_args": ["--disaggregation-mode", "prefill"]},
        "sglang-cluster:extra_server_args",
    ),
]


def test_enough_distinct_cases() -> None:
    assert len({c[0] for c in CASES}) >= 15
    assert len({c[2] for c in CASES}) >= 15


@pytest.mark.parametrize(("what", "overrides", "key"), CASES, ids=[c[0] for c in CASES])
def test_invalid_spec_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, overrides: dict[str, Any], key: str
) -> None:
    path = _write_stack(tmp_path, base_config(**overrides))
    rc = main(["plan", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2, f"{what}: expected exit 2, got {rc}"
    assert out == ""
    assert key in err, f"{what}: {err!r} does not name {key}"
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, f"{what}: more than one line: {err!r}"


def test_valid_base_plans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The base the cases mutate is itself valid: each failure comes from its override."""
    assert main(["plan", str(_write_stack(tmp_path, base_config()))]) == 0
    assert "server-g0-r1" in capsys.readouterr().out


def test_unknown_stack_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "no-such-stack"]) == 2
    assert "known stacks" in capsys.readouterr().err
