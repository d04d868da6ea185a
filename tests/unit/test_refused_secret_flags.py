"""``extra_server_args`` may not carry a secret: launch_server flags whose value is a key or a
password would sit in plain stack config, the nodes' user data and the plan JSON. The refusal
names the key and never repeats the value."""

from __future__ import annotations

import pytest

from infra.planning import flags
from infra.spec import SpecError, parse_config
from tests.conftest import base_config

SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize("flag", ["--api-key", "--admin-api-key", "--ssl-keyfile-password"])
@pytest.mark.parametrize("inline", [False, True], ids=["separate", "inline"])
def test_secret_flags_are_refused_without_echoing_the_value(flag: str, inline: bool) -> None:
    assert flag in flags.server_flags(), f"{flag} is not a flag of sglang {flags.SGLANG_VERSION}"
    args = [f"{flag}={SECRET}"] if inline else [flag, SECRET]
    with pytest.raises(SpecError) as e:
        parse_config(base_config(extra_server_args=["--context-length", "32768", *args]))
    assert e.value.key == "sglang-cluster:extra_server_args"
    assert flag in e.value.message and "pulumi config set --secret" in e.value.message
    assert SECRET not in str(e.value)


def test_other_key_like_flags_pass() -> None:
    assert parse_config(base_config(extra_server_args=["--ssl-keyfile", "/etc/ssl/key.pem"]))
