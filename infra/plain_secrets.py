"""Refuse secrets given where they would be stored or shipped in plain text.

A stack file is committed to git, and everything in ``server_env``/``extra_server_args`` is
written into EC2 user data (readable by anyone allowed ``ec2:DescribeInstanceAttribute``, and
by every process on the node through IMDS). Secrets belong in ``hf_token``/``router_api_key``
set with ``pulumi config set --secret``: encrypted in the stack file and state, stored as SSM
SecureStrings under the stack's KMS key, read by the nodes at boot.

Two entry points, both called before any resource exists, by the real program
(:func:`infra.program.build`) and by the offline plan (:func:`infra.mockrun.run_program`):

- :func:`refuse_plain_secret_keys` needs only the raw config and the set of keys the engine
  marks secret (``pulumi.runtime.is_config_secret``; the offline plan reads ``secure:`` values
  of the stack file);
- :func:`refuse_secrets_in_spec` checks the parsed spec's ``server_env`` and
  ``extra_server_args``.

Error messages name the key and the offending entry's *name*, never its value.
Pure code: no Pulumi import.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from infra.spec import PROJECT, SECRET_KEYS, SpecError, StackSpec, qualified

SECRET_NAME_WORDS: frozenset[str] = frozenset(
    {
        "TOKEN",
        "KEY",
        "KEYS",
        "APIKEY",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "SECRET",
        "CREDENTIAL",
        "CREDENTIALS",
    }
)
"""Words (between underscores) of an environment variable name that mark a secret:
``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``, ``OPENAI_API_KEY``, ``AWS_SECRET_ACCESS_KEY``,
``WANDB_API_KEY``. Whole words only, so ``TOKENIZERS_PARALLELISM``, ``SGLANG_..._TOKENS`` and
every ``NCCL_IB_*``/``NCCL_*`` variable pass."""

SECRET_SERVER_FLAGS: frozenset[str] = frozenset({"--api-key", "--admin-api-key", "--ssl-keyfile-password"})
"""Flags of ``sglang.launch_server`` 0.5.23 whose value is a secret (checked against
``infra/planning/data/sglang_flags.json``)."""

_TOKEN_VALUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a Hugging Face token", re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{20,}")),
    ("an OpenAI-style API key", re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}")),
    ("an AWS access key id", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])")),
    ("a GitHub token", re.compile(r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{30,}")),
)
"""Value shapes that are credentials whatever the variable is called."""

_HARMLESS_VALUE = re.compile(r"^(|-?\d+(\.\d+)?|true|false|yes|no|on|off)$", re.IGNORECASE)
"""Values that cannot be a secret (``HF_HUB_DISABLE_IMPLICIT_TOKEN=1``, ``..._KEY=false``)."""

_HOW = "pulumi config set --secret"


def _secure_hint(key: str, stack: str = "<stack>") -> str:
    return f"`{_HOW} {key} <value> --stack {stack}`"


def refuse_plain_secret_keys(
    config: Mapping[str, Any], secret_keys: Collection[str], stack: str = "<stack>"
) -> None:
    """Refuse secret keys set in plain text, and plain keys set as secrets.

    Args:
        config: qualified config keys (``sglang-cluster:hf_token``) to values.
        secret_keys: the qualified keys the engine marks secret.
        stack: the stack name, for the command the message suggests.

    Raises:
        SpecError: ``hf_token``/``router_api_key`` present but not secret (it sits in plain
            text in the stack file), or a spec key marked secret (its value would reach user
            data or tags in plain text, so the program cannot keep it secret).
    """
    secret = set(secret_keys)
    for key in SECRET_KEYS:
        q = qualified(key)
        value = config.get(q)
        if value not in (None, "") and q not in secret:
            raise SpecError(
                q,
                "is set in plain text in the stack file; remove it and set it with "
                f"{_secure_hint(key, stack)} (encrypted in the stack file and state, stored as an SSM "
                "SecureString)",
            )
    for q in sorted(secret):
        ns, _, key = q.partition(":")
        if ns == PROJECT and key not in SECRET_KEYS:
            raise SpecError(
                q,
                "is set as a secret, but this key's value is written to user data or tags in "
                "plain text; secrets go only in hf_token and router_api_key "
                f"({_HOW} hf_token ...)",
            )


def secret_env_reason(name: str, value: str) -> str | None:
    """Why ``NAME=VALUE`` carries a secret, or ``None`` when it does not.

    A name made of a secret word (:data:`SECRET_NAME_WORDS`) with a value that is not a plain
    number or boolean, or a value shaped like a known credential, whatever its name.
    """
    for what, pattern in _TOKEN_VALUES:
        if pattern.search(value):
            return f"its value looks like {what}"
    words = set(name.upper().split("_"))
    hit = sorted(words & SECRET_NAME_WORDS)
    if hit and not _HARMLESS_VALUE.match(value.strip()):
        return f"its name says {hit[0]} (a token, key or password)"
    return None


def refuse_secrets_in_spec(spec: StackSpec, stack: str = "<stack>") -> None:
    """Refuse tokens, keys and passwords in ``server_env`` and ``extra_server_args``.

    Raises:
        SpecError: naming ``sglang-cluster:server_env`` (and the variable name) or
            ``sglang-cluster:extra_server_args`` (and the flag); the message says where the
            secret belongs instead.
    """
    for entry in spec.server_env:
        name, _, value = entry.partition("=")
        why = secret_env_reason(name, value)
        if why:
            raise SpecError(
                qualified("server_env"),
                f"{name} carries a secret ({why}); server_env is written to user data in plain "
                f"text. Use hf_token for the Hugging Face token ({_secure_hint('hf_token', stack)}); "
                "other credentials have no place in the stack file",
            )
    args = spec.extra_server_args
    for i, arg in enumerate(args):
        flag = arg.split("=", 1)[0]
        if flag in SECRET_SERVER_FLAGS:
            raise SpecError(
                qualified("extra_server_args"),
                f"{flag} takes a secret and extra_server_args is written to user data in plain "
                "text; the router holds the API key: set router_api_key with "
                f"{_secure_hint('router_api_key', stack)}",
            )
        for what, pattern in _TOKEN_VALUES:
            if pattern.search(arg):
                before = f" (after {args[i - 1]})" if i and args[i - 1].startswith("--") else ""
                raise SpecError(
                    qualified("extra_server_args"),
                    f"argument {i}{before} looks like {what}; extra_server_args is written to "
                    f"user data in plain text. Set secrets with {_HOW}",
                )
