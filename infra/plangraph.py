"""The deploy graph and provider inputs of the offline plan, as the Pulumi engine receives them.

Pure helpers for :mod:`infra.mockrun` and ``plan_document`` in :mod:`infra.cli`:

- :func:`preview_inputs` turns the ``object`` of a ``RegisterResourceRequest`` (the protobuf
  ``Struct`` the SDK sends the engine) into JSON values the way ``pulumi preview --diff`` prints
  them: property names as the provider knows them (camelCase), every value the SDK marked
  secret replaced by ``"[secret]"`` at the exact place it was marked, unknowns as
  ``"[unknown]"``. The SDK marks a secret as ``{SIG_KEY: SECRET_SIG, "value": ...}``
  (``pulumi/runtime/rpc.py``: ``_special_sig_key``, ``_special_secret_sig``); the SDK's own
  ``deserialize_properties`` pushes a nested secret up to the whole enclosing list or map, so
  this reads the ``Struct`` itself to keep the rest of that map visible.
- :func:`name_of_urn`: the logical name in a URN (``request.dependencies`` carries URNs).
- :func:`plain_secret_paths`: where a known secret value shows in plain in a document, so the
  plan can refuse to print it.
- :func:`deploy_waves`: resources grouped by how many creation steps they wait for.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2

SIG_KEY = "4dabf18193072939515e22adb298388d"
"""Key that marks a special value in serialized properties (SDK ``rpc._special_sig_key``)."""
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
"""Signature of a secret value (SDK ``rpc._special_secret_sig``)."""
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
"""Signature of a resource reference (SDK ``rpc._special_resource_sig``)."""
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
OUTPUT_VALUE_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""A value not known before the deploy (SDK ``rpc.UNKNOWN``)."""

SECRET_TEXT = "[secret]"
UNKNOWN_TEXT = "[unknown]"
MIN_SCANNED_SECRET = 8
"""Shorter secret values are still masked where the SDK marks them, but not searched for in
plain text: a 3-character value would match innocent text everywhere."""


def name_of_urn(urn: str) -> str:
    """The logical name of a resource URN (``urn:pulumi:stack::project::type$type::name``)."""
    return urn.rsplit("::", 1)[-1]


def _number(n: float) -> int | float:
    return int(n) if n.is_integer() else n


def _value(v: struct_pb2.Value, secrets: list[str]) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return _struct(v.struct_value, secrets)
    if kind == "list_value":
        return [_value(x, secrets) for x in v.list_value.values]
    if kind == "string_value":
        return UNKNOWN_TEXT if v.string_value == UNKNOWN else v.string_value
    if kind == "number_value":
        return _number(v.number_value)
    if kind == "bool_value":
        return v.bool_value
    return None


def _collect_strings(v: struct_pb2.Value, out: list[str]) -> None:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        out.append(v.string_value)
    elif kind == "struct_value":
        for x in v.struct_value.fields.values():
            _collect_strings(x, out)
    elif kind == "list_value":
        for x in v.list_value.values:
            _collect_strings(x, out)


def _struct(s: struct_pb2.Struct, secrets: list[str]) -> Any:
    fields = s.fields
    if SIG_KEY in fields:
        sig = fields[SIG_KEY].string_value
        if sig == SECRET_SIG:
            if "value" in fields:
                _collect_strings(fields["value"], secrets)
            return SECRET_TEXT
        if sig == OUTPUT_VALUE_SIG:  # only sent to monitors that support output values
            secret = "secret" in fields and fields["secret"].bool_value
            if secret:
                if "value" in fields:
                    _collect_strings(fields["value"], secrets)
                return SECRET_TEXT
            return _value(fields["value"], secrets) if "value" in fields else UNKNOWN_TEXT
        if sig == RESOURCE_SIG:
            return {"resource": name_of_urn(fields["urn"].string_value)}
        if sig in (ASSET_SIG, ARCHIVE_SIG):
            what = "asset" if sig == ASSET_SIG else "archive"
            where = next((fields[k].string_value for k in ("path", "uri") if k in fields), "")
            return f"[{what} {where}]" if where else f"[{what}]"
    # Keys starting with "__" are the engine's own bookkeeping, not provider inputs.
    return {k: _value(fields[k], secrets) for k in sorted(fields) if not k.startswith("__")}


def preview_inputs(obj: struct_pb2.Struct) -> tuple[dict[str, Any], list[str]]:
    """A resource's inputs as ``pulumi preview --diff`` shows them, and the secret strings.

    Args:
        obj: ``RegisterResourceRequest.object``, the serialized inputs.

    Returns:
        ``(inputs, secret_values)``: JSON-ready inputs with every secret-marked value replaced by
        ``"[secret]"`` and integral numbers as ints; every string found under a secret marker
        (to search the rest of the plan for, :func:`plain_secret_paths`).
    """
    secrets: list[str] = []
    out = _struct(obj, secrets)
    return (out if isinstance(out, dict) else {"value": out}), secrets


def user_data_summary(b64: str) -> str:
    """Short form of a ``userDataBase64`` input (gzipped user data, base64).

    Returns:
        ``"[gzip+base64 user data, N bytes, sha256 H; text in nodes[].user_data]"`` where N is
        the size EC2 counts against its 16 KB limit (after base64 decoding) and H the first 16
        hex digits of the SHA-256 of the exact string the provider gets: it changes whenever
        the instance would be replaced (``user_data_replace_on_change``).
    """
    size = len(base64.b64decode(b64))
    digest = hashlib.sha256(b64.encode()).hexdigest()[:16]
    return f"[gzip+base64 user data, {size} bytes, sha256 {digest}; text in nodes[].user_data]"


def plain_secret_paths(doc: Any, secrets: Iterable[str], path: str = "") -> list[str]:
    """JSON paths (``resources[3].inputs.tags.Name``) where a secret value shows in plain.

    Args:
        doc: a JSON-ready document (dicts, lists, scalars).
        secrets: secret values; those shorter than ``MIN_SCANNED_SECRET`` are skipped.

    Returns:
        Every path whose string (or map key) contains a secret value; empty when none does.
    """
    wanted = sorted({s for s in secrets if len(s) >= MIN_SCANNED_SECRET})
    if not wanted:
        return []
    found: list[str] = []

    def walk(v: Any, at: str) -> None:
        if isinstance(v, Mapping):
            for k, x in v.items():
                sub = f"{at}.{k}" if at else str(k)
                if any(s in str(k) for s in wanted):
                    found.append(sub)
                walk(x, sub)
        elif isinstance(v, list | tuple):
            for i, x in enumerate(v):
                walk(x, f"{at}[{i}]")
        elif isinstance(v, str) and any(s in v for s in wanted):
            found.append(at)

    walk(doc, path)
    return found


def deploy_waves(depends_on: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Resources grouped by depth in the deploy graph: wave 0 waits for nothing, wave k for
    at least one resource of wave k-1 (the engine starts each as soon as its own dependencies
    are done, so this is the longest chain of steps in front of each resource).

    Args:
        depends_on: logical name to the names it waits for.

    Returns:
        Sorted names per wave.

    Raises:
        ValueError: naming the resources on a dependency cycle (the engine refuses one too).
    """
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def level(name: str) -> int:
        if name in depth:
            return depth[name]
        if name in visiting:
            raise ValueError(f"dependency cycle through {name}")
        visiting.add(name)
        deps = [d for d in depends_on.get(name, ()) if d != name]
        depth[name] = 1 + max((level(d) for d in deps), default=-1)
        visiting.discard(name)
        return depth[name]

    for name in depends_on:
        level(name)
    waves: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for name, d in depth.items():
        waves[d].append(name)
    return [sorted(w) for w in waves]
