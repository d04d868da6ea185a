"""Every stack file passes the Pulumi CLI's own stack-config validation against ``Pulumi.yaml``.

``pulumi up`` validates the stack config against the project's ``config:`` schema before the
program runs (``ValidateStackConfigAndApplyProjectConfig``, pulumi/pulumi v3.259.0
``pkg/workspace/config.go``, read 2026-11-21):

1. a declared key missing from the stack file takes the project ``default`` as a *plain*
   value (``createConfigValue`` -> ``config.NewValue``); a key without default or value that
   the stack does not set is "missing" (error);
2. then every explicitly typed key is validated: ``secret: true`` with a value that is not
   ``secure:`` fails ("Stack 'S' with configuration key 'K' must be encrypted as it's secret"),
   and the value must match the declared type.

So since 3.202.0 a ``secret: true`` key with a ``default`` fails every stack that does not set
it (pulumi/pulumi#21865, open 2026-11). The Pulumi CLI is not installable here (no internet
beyond PyPI), so these tests replay those rules, transcribed from the Go source above, on the
real ``Pulumi.yaml`` and every real stack file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.schema import project_document
from infra.spec import PROJECT, SECRET_KEYS

ROOT = Path(__file__).resolve().parents[2]
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))


def _secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _type_ok(decl: dict[str, Any], value: Any) -> bool:
    """``ValidateConfigValue`` of Pulumi (``sdk/go/common/workspace/project.go``): a plain
    scalar reaches it as its text; an array keeps its items' YAML types."""
    kind = decl["type"]
    if kind == "string":
        return isinstance(value, str | int | float | bool)  # scalars arrive as their text
    if kind == "integer":
        try:
            int(str(value))
        except ValueError:
            return False
        return True
    if kind == "boolean":
        return str(value).lower() in ("true", "false")
    if kind == "array":  # items keep their YAML types: `- 256` is a number, not a string
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def pulumi_validate(stack: str, project: dict[str, Any], stack_config: dict[str, Any]) -> list[str]:
    """Errors ``pulumi up --stack STACK`` reports while validating the stack config.

    Args:
        stack: stack name, for the messages.
        project: the parsed ``Pulumi.yaml``.
        stack_config: the stack file's ``config:`` map (qualified keys; a secret is
            ``{"secure": "..."}``).

    Returns:
        the messages, in Pulumi's words; empty when ``pulumi up`` would go on.
    """
    merged: dict[str, Any] = dict(stack_config)
    missing: list[str] = []
    for key, decl in sorted(project["config"].items()):
        q = key if ":" in key else f"{project['name']}:{key}"
        if q not in merged:
            if "default" in decl or "value" in decl:
                merged[q] = decl.get("default", decl.get("value"))  # a plain value
            else:
                missing.append(key)
    if missing:
        return [f"Stack '{stack}' is missing configuration value(s) {missing}"]
    errors: list[str] = []
    for key, decl in sorted(project["config"].items()):
        q = key if ":" in key else f"{project['name']}:{key}"
        value = merged[q]
        if decl.get("secret") and not _secure(value):
            errors.append(f"Stack '{stack}' with configuration key '{key}' must be encrypted as it's secret")
            continue
        if not _secure(value) and not _type_ok(decl, value):
            errors.append(f"Stack '{stack}' with configuration key '{key}' must be of type '{decl['type']}'")
    return errors


def _stack_config(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")).get("config") or {})


def test_the_committed_pulumi_yaml_is_the_generated_one() -> None:
    """The replay below reads the generated document; the file on disk must be the same."""
    on_disk = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(project_document()))


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_stack_file_passes_pulumi_config_validation_without_secrets(path: Path) -> None:
    """The README's real path sets ``hf_token`` only for gated models and ``router_api_key``
    only optionally: a stack that sets neither must still reach the program."""
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    assert pulumi_validate(stack, project_document(), _stack_config(path)) == []


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("keys", [["hf_token"], ["router_api_key"], sorted(SECRET_KEYS)])
def test_every_stack_file_passes_with_secrets_set_secure(path: Path, keys: list[str]) -> None:
    """``pulumi config set --secret KEY ...`` writes ``{secure: v1:...}``: still valid."""
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    config = _stack_config(path)
    config.update({f"{PROJECT}:{k}": {"secure": "v1:c2FsdA==:Y2lwaGVy"} for k in keys})
    assert pulumi_validate(stack, project_document(), config) == []


def test_replay_catches_a_secret_key_with_a_plain_default() -> None:
    """The replayed rule itself: pulumi/pulumi#21865's minimal project fails it."""
    project = {"name": "tmp", "config": {"top-secret": {"type": "string", "secret": True, "default": ""}}}
    assert pulumi_validate("tmp", project, {}) == [
        "Stack 'tmp' with configuration key 'top-secret' must be encrypted as it's secret"
    ]
