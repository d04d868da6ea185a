"""Static node files as one content-addressed bundle per node kind, fetched at boot from S3.

EC2 caps user data at 16384 bytes (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html),
and the scripts and units of ``userdata/`` that are the same on every node of a kind took ~14 KB
of it. They now travel as one ``tar.gz`` per kind (:data:`KINDS`: ``server`` for every GPU node,
``router``), uploaded by Pulumi to the stack's private bucket under a key that contains the
archive's SHA-256 (:func:`object_key`). User data keeps what differs per node (the env/argv files
of ``/etc/sglang``, the group drop-in of multi-node servers) plus ``/etc/sglang/bundle.env``
(bucket, key, SHA-256, region) and the bootstrap ``sglang-bootstrap``, which downloads the
archive, verifies its SHA-256, unpacks it and only then enables the units.

Because the hash is in the user data, a changed script changes every node's user data of that
kind and replaces the instances exactly as an inline script change did
(``user_data_replace_on_change``).

The SHA-256 is of the uncompressed tar, which :func:`ustar` writes byte by byte (POSIX ustar
headers: members sorted, owner root, uid/gid 0, fixed mode, mtime 0; the bootstrap extracts
with ``--touch``), so neither the deployer's Python (``tarfile`` has changed its header fields
between versions) nor its zlib (gzip output differs between zlib builds) can change the key
and with it every node. The bootstrap gunzips, hashes the tar and unpacks exactly the bytes it
hashed. Pure code (no Pulumi).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import yaml

from infra.planning.userdata import (
    BUNDLE_ENV_PATH,
    GROUP_SCRIPTS,
    GROUP_UNITS,
    LIB_PATH,
    LOGROTATE_FILES,
    PD_SCRIPTS,
    ROUTER_SCRIPTS,
    ROUTER_UNITS,
    SERVER_SCRIPTS,
    SERVER_UNITS,
    shipped_file,
    split_mime,
)

Kind = Literal["server", "router"]
KINDS: tuple[Kind, ...] = ("server", "router")
KEY_PREFIX = "node-bundles"
MAX_BUCKET_NAME = "x" * 63
"""The longest S3 bucket name (63 characters,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html), for the size check."""


@dataclass(frozen=True)
class BundleFile:
    """One member: absolute path on the node, octal mode, content."""

    path: str
    mode: int
    content: bytes


@dataclass(frozen=True)
class Bundle:
    """The static files of one node kind and their archive.

    Attributes:
        kind: ``server`` or ``router``.
        files: the members, sorted by path.
        data: the ``tar.gz`` bytes uploaded to S3.
        sha256: hex SHA-256 of the uncompressed tar (in the object key and in user data).
    """

    kind: Kind
    files: tuple[BundleFile, ...]
    data: bytes
    sha256: str

    @property
    def key(self) -> str:
        """S3 object key: :func:`object_key`."""
        return object_key(self.kind, self.sha256)

    def manifest(self) -> list[dict[str, Any]]:
        """``[{"path", "mode", "bytes"}]`` of every member (what the plan JSON shows)."""
        return [{"path": f.path, "mode": f"{f.mode:04o}", "bytes": len(f.content)} for f in self.files]


def object_key(kind: str, sha256: str) -> str:
    """``node-bundles/<kind>-<sha256>.tar.gz``: a new content, a new key (never overwritten)."""
    return f"{KEY_PREFIX}/{kind}-{sha256}.tar.gz"


def _members(kind: Kind) -> list[tuple[str, str, int]]:
    """``(source name under userdata/, path on the node, mode)`` of a kind's static files."""
    out = [("sglang-lib.sh", LIB_PATH, 0o644)]
    if kind == "server":
        # Every GPU node gets the group and PD scripts; they run only where node.env asks
        # (the group drop-in in user data, SGLANG_KV_TRANSPORT), so one bundle serves all.
        scripts, units = (*SERVER_SCRIPTS, *GROUP_SCRIPTS, *PD_SCRIPTS), (*SERVER_UNITS, *GROUP_UNITS)
    else:
        scripts, units = ROUTER_SCRIPTS, ROUTER_UNITS
    out += [(n, f"/usr/local/bin/{n}", 0o755) for n in scripts]
    out += [(n, f"/etc/systemd/system/{n}", 0o644) for n in units]
    out += [(n, path, 0o644) for n, path in LOGROTATE_FILES]
    return out


def build(kind: Kind, read: Callable[[str], str] = shipped_file) -> Bundle:
    """The bundle of ``kind`` from the shipped (comment-free) files of ``userdata/``.

    Args:
        kind: ``server`` or ``router``.
        read: source name -> shipped text (tests pass a changed script through it).

    Raises:
        ValueError: for an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown node kind {kind!r}; one of {KINDS}")
    files = sorted(
        (BundleFile(path, mode, read(src).encode("utf-8")) for src, path, mode in _members(kind)),
        key=lambda f: f.path,
    )
    tar = ustar(files)
    data = gzip.compress(tar, compresslevel=9, mtime=0)
    return Bundle(kind, tuple(files), data, hashlib.sha256(tar).hexdigest())


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def ustar(files: tuple[BundleFile, ...] | list[BundleFile]) -> bytes:
    """A POSIX ustar archive of regular files, every byte fixed here (owner root, mtime 0).

    Header layout: POSIX.1-2017 ``pax`` "ustar Interchange Format"
    (https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html#tag_20_92_13_06).

    Raises:
        ValueError: for a member name over ustar's 100 bytes (none of ``userdata/`` is).
    """
    out = bytearray()
    for f in files:
        name = f.path.lstrip("/").encode("utf-8")
        if len(name) > 100:
            raise ValueError(f"{f.path}: over ustar's 100-byte name field")
        header = b"".join(
            [
                name.ljust(100, b"\0"),
                _octal(f.mode, 8),
                _octal(0, 8),  # uid
                _octal(0, 8),  # gid
                _octal(len(f.content), 12),
                _octal(0, 12),  # mtime
                b" " * 8,  # checksum, counted as spaces
                b"0",  # regular file
                b"\0" * 100,  # linkname
                b"ustar\x0000",
                b"root".ljust(32, b"\0"),
                b"root".ljust(32, b"\0"),
                _octal(0, 8),  # devmajor
                _octal(0, 8),  # devminor
                b"\0" * 155,  # prefix
            ]
        ).ljust(512, b"\0")
        checksum = b"%06o\0 " % sum(header)
        out += header[:148] + checksum + header[156:]
        out += f.content + b"\0" * (-len(f.content) % 512)
    out += b"\0" * 1024  # two zero blocks end the archive
    return bytes(out)


@cache
def bundle(kind: Kind) -> Bundle:
    """:func:`build` of the repository's files, once per process."""
    return build(kind)


def bundle_env(b: Bundle, bucket: str, region: str) -> dict[str, str]:
    """``/etc/sglang/bundle.env``: where the bootstrap finds the archive and what it must hash to.

    Args:
        b: the node's bundle. bucket: the stack's bundle bucket name. region: its region (the
            CLI then uses the regional endpoint, which the VPC's S3 gateway endpoint serves).
    """
    return {
        "SGLANG_BUNDLE_BUCKET": bucket,
        "SGLANG_BUNDLE_KEY": b.key,
        "SGLANG_BUNDLE_SHA256": b.sha256,
        "SGLANG_BUNDLE_REGION": region,
    }


S3_OBJECT_TAG_LIMIT = 10
"""Tags one S3 object may carry (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html)."""
PROVIDER_TAG_KEYS = ("managed-by", "project", "stack")
"""Keys the stack's provider adds to every resource as default tags (``infra/program.py``),
the bundle objects included."""


def check_object_tags(user_tags: Mapping[str, str]) -> None:
    """Refuse more tags than an S3 object takes: the provider's default tags (``tags`` plus
    :data:`PROVIDER_TAG_KEYS`) land on the bundle objects too, and S3 rejects the upload.

    Raises:
        SpecError: naming ``tags``, with the count allowed.
    """
    from infra.spec import SpecError, qualified

    keys = set(user_tags) | set(PROVIDER_TAG_KEYS)
    if len(keys) > S3_OBJECT_TAG_LIMIT:
        room = S3_OBJECT_TAG_LIMIT - len(PROVIDER_TAG_KEYS)
        raise SpecError(
            qualified("tags"),
            f"{len(keys)} tags with the stack's own {', '.join(PROVIDER_TAG_KEYS)}; an S3 object (the "
            f"node bundles) takes at most {S3_OBJECT_TAG_LIMIT}: give at most {room} tags",
        )


def _env_values(text: str) -> dict[str, str]:
    import shlex

    out = {}
    for line in text.splitlines():
        k, _, v = line.partition("=")
        out[k] = " ".join(shlex.split(v))
    return out


def bundle_of(user_data: str) -> tuple[Bundle, dict[str, str]]:
    """The bundle a node's user data names (by SHA-256) and its ``bundle.env`` values.

    Raises:
        KeyError: when the user data names no bundle or one this repository does not build.
    """
    doc = yaml.safe_load(split_mime(user_data)["text/cloud-config"])
    (env_text,) = [f["content"] for f in doc["write_files"] if f["path"] == BUNDLE_ENV_PATH]
    env = _env_values(env_text)
    sha = env["SGLANG_BUNDLE_SHA256"]
    for kind in KINDS:
        if bundle(kind).sha256 == sha and env["SGLANG_BUNDLE_KEY"] == bundle(kind).key:
            return bundle(kind), env
    raise KeyError(f"no bundle with sha256 {sha}")


def installed_files(user_data: str) -> dict[str, dict[str, Any]]:
    """Every file a node has after boot: its bundle's members and then the user data's
    ``write_files`` (cloud-init writes those first; the bundle never holds the same path).

    Returns:
        ``{path: {"path", "content" (text), "permissions" ("0755"), "source": "bundle"|"user_data"}}``.
    """
    b, _ = bundle_of(user_data)
    out: dict[str, dict[str, Any]] = {
        f.path: {
            "path": f.path,
            "content": f.content.decode("utf-8"),
            "permissions": f"{f.mode:04o}",
            "source": "bundle",
        }
        for f in b.files
    }
    doc = yaml.safe_load(split_mime(user_data)["text/cloud-config"])
    for f in doc["write_files"]:
        out[f["path"]] = {**f, "source": "user_data"}
    return out


def bundle_document(user_data: str) -> dict[str, Any]:
    """The plan JSON's ``bundle`` of a node: S3 URI, SHA-256, kind and file list."""
    b, env = bundle_of(user_data)
    return {
        "kind": b.kind,
        "uri": f"s3://{env['SGLANG_BUNDLE_BUCKET']}/{env['SGLANG_BUNDLE_KEY']}",
        "sha256": b.sha256,
        "bytes": len(b.data),
        "files": b.manifest(),
    }


def check_disjoint(user_data_paths: Mapping[str, object], b: Bundle) -> None:
    """Refuse a path that both the user data and the bundle write (one owner per file).

    Raises:
        ValueError: naming the path.
    """
    both = sorted(set(user_data_paths) & {f.path for f in b.files})
    if both:
        raise ValueError(f"{both[0]} is in both the user data and the {b.kind} bundle")
