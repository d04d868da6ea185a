"""Secrets in plain config are refused before any resource exists, on both paths.

- The offline plan: real stack files through ``python -m infra plan FILE`` (exit 2, one line
  naming the key and saying ``pulumi config set --secret``, the secret value never echoed);
  a ``secure:`` value in the file is what ``pulumi config set --secret`` writes.
- The real program: :func:`infra.program.build` reads secret-ness from the Pulumi runtime's
  config (``pulumi.runtime.is_config_secret``, set by the language host from
  ``PULUMI_CONFIG_SECRET_KEYS``); run here under the SDK's mock monitor, which records every
  resource registered: none may be.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from infra.cli import main
from infra.mockrun import PlanMocks, _RecordingMonitor, run_program
from infra.plain_secrets import secret_env_reason
from infra.program import build
from infra.spec import SpecError
from tests.conftest import base_config

TOKEN = "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"
SECURE = {"secure": "v1:c2VjcmV0IGNpcGhlcnRleHQ=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}


def _write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    qualified = {(k if ":" in k else f"sglang-cluster:{k}"): v for k, v in cfg.items()}
    path = tmp_path / "Pulumi.secret-test.yaml"
    path.write_text(yaml.safe_dump({"config": qualified}), encoding="utf-8")
    return path


REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    ("plain hf_token", {"hf_token": TOKEN}, "sglang-cluster:hf_token", TOKEN),
    (
        "plain router key",
        {"router_api_key": "sk-live-router-0123"},
        "sglang-cluster:router_api_key",
        "sk-live",
    ),
    ("HF_TOKEN in server_env", {"server_env": [f"HF_TOKEN={TOKEN}"]}, "sglang-cluster:server_env", TOKEN),
    (
        "API key by name in server_env",
        {"server_env": ["WANDB_API_KEY=0123456789abcdef"]},
        "sglang-cluster:server_env",
        "0123456789abcdef",
    ),
    (
        "password by name",
        {"server_env": ["REDIS_PASSWORD=hunter2hunter2"]},
        "sglang-cluster:server_env",
        "hunter2",
    ),
    (
        "token under an innocent name",
        {"server_env": [f"MY_SETTING={TOKEN}"]},
        "sglang-cluster:server_env",
        TOKEN,
    ),
    (
        "AWS secret access key",
        {"server_env": ["AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"]},
        "sglang-cluster:server_env",
        "wJalrX",
    ),
    (
        "api key flag in extra args",
        {"extra_server_args": ["--api-key", "sk-server-0123456789abcdefghij"]},
        "sglang-cluster:extra_server_args",
        "sk-server",
    ),
    (
        "token value in extra args",
        {"extra_server_args": ["--tokenizer-path", TOKEN]},
        "sglang-cluster:extra_server_args",
        TOKEN,
    ),
    (
        "a plain key marked secret",
        {"server_env": SECURE},
        "sglang-cluster:server_env",
        "c2VjcmV0",
    ),
    (
        "public router in a given VPC without a router subnet",
        {"vpc_id": "vpc-0a1b2c3d", "subnet_id": "subnet-0a1b2c3d", "availability_zone": None},
        "sglang-cluster:router_subnet_id",
        "",
    ),
]


@pytest.mark.parametrize(("what", "overrides", "key", "value"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, overrides: dict, key: str, value: str
) -> None:
    rc = main(["plan", str(_write(tmp_path, base_config(**overrides)))])
    out, err = capsys.readouterr()
    assert rc == 2, f"{what}: exit {rc}"
    assert out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert key in err, err
    if key != "sglang-cluster:router_subnet_id":
        assert "pulumi config set --secret" in err, err
    if value:
        assert value not in err, "the error echoes the secret"


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("secure hf_token and router key", {"hf_token": SECURE, "router_api_key": SECURE}),
    (
        "NCCL, tokenizer and numeric token settings",
        {
            "server_env": [
                "NCCL_IB_DISABLE=0",
                "NCCL_IB_TIMEOUT=22",
                "TOKENIZERS_PARALLELISM=false",
                "HF_HUB_DISABLE_IMPLICIT_TOKEN=1",
                "SGLANG_MAX_TOKENS=4096",
                "KEYBOARD_LAYOUT=us",
            ]
        },
    ),
    (
        "given VPC with a public router subnet",
        {
            "vpc_id": "vpc-0a1b2c3d",
            "subnet_id": "subnet-0a1b2c3d",
            "router_subnet_id": "subnet-0e0f0a0b",
            "availability_zone": None,
        },
    ),
    (
        "given VPC with a private router",
        {
            "vpc_id": "vpc-0a1b2c3d",
            "subnet_id": "subnet-0a1b2c3d",
            "router_public_ip": False,
            "availability_zone": None,
        },
    ),
]


@pytest.mark.parametrize(("what", "overrides"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, overrides: dict
) -> None:
    rc = main(["plan", "--format", "json", str(_write(tmp_path, base_config(**overrides)))])
    out, err = capsys.readouterr()
    assert rc == 0, f"{what}: {err}"
    if "hf_token" in overrides:
        assert "/sglang/secret-test/hf-token" in out and "/sglang/secret-test/router-api-key" in out


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("HF_TOKEN", TOKEN, True),
        ("HUGGING_FACE_HUB_TOKEN", "abc123def456", True),
        ("OPENAI_API_KEY", "x" * 30, True),
        ("NCCL_IB_HCA", "^mlx5_bond", False),
        ("NCCL_IB_GID_INDEX", "3", False),
        ("TOKENIZERS_PARALLELISM", "false", False),
        ("HF_HUB_ENABLE_HF_TRANSFER", "1", False),
        ("MONKEY", "banana", False),
    ],
)
def test_env_rule(name: str, value: str, secret: bool) -> None:
    assert (secret_env_reason(name, value) is not None) is secret


def test_real_program_path_refuses_before_any_resource() -> None:
    """``build`` under the runtime the engine would set up: ``hf_token`` present in config but
    not in the secret key set (the language host passes ``PULUMI_CONFIG_SECRET_KEYS``)."""
    config = {
        (k if ":" in k else f"sglang-cluster:{k}"): (v if isinstance(v, str) else json.dumps(v))
        for k, v in base_config(hf_token=TOKEN).items()
    }
    mocks = PlanMocks({}, {}, "us-east-1")
    monitor = _RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="sglang-cluster", stack="prod", preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config), [])
    with pytest.raises(SpecError) as e:
        build("prod", config)
    assert e.value.key == "sglang-cluster:hf_token" and "pulumi config set --secret" in e.value.message
    assert monitor.recorded == {}
    # The same config with the key marked secret builds.
    run = run_program("prod", config, ["sglang-cluster:hf_token"])
    assert run.of_type("aws:ssm/parameter:Parameter")
