"""User data for every node: one pure function from planned data to the exact bytes EC2 gets.

The user data is a MIME multipart document (``cloud-init``'s "mime multi part archive") with one
``text/cloud-config`` part. That part writes the node's data (``/etc/sglang/node.env``, one
``server-<slot>.argv`` per server, ``container.env``) and installs the static files of
``userdata/``: shellcheck-clean scripts that read those files and systemd units. Nothing is
templated into a script. YAML is serialized by PyYAML, MIME by the standard library, with a fixed
boundary so the same plan always gives the same bytes (no diff on every ``pulumi up``). The
document is gzipped for EC2 (:func:`pack`): the scripts stay readable in the plan, and the
16384-byte limit applies to the gzipped bytes EC2 receives.

``write_files`` runs in cloud-init's init stage and ``runcmd`` in the final stage; services are
systemd units started with ``--no-block`` from ``runcmd``, never a foreground command
(https://cloudinit.readthedocs.io/en/latest/reference/modules.html#write-files).
"""

from __future__ import annotations

import base64
import gzip
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from email.mime.multipart import MIMEMultipart
from functools import cache, lru_cache
from pathlib import Path

import yaml

from infra.planning.minify import shipped

USERDATA_DIR = Path(__file__).resolve().parents[2] / "userdata"
MAX_USER_DATA_BYTES = 16384
"""EC2 limit on raw user data, before base64
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html)."""

MIME_BOUNDARY = "==sglang-cluster-user-data=="

LIB_PATH = "/usr/local/lib/sglang/sglang-lib.sh"
NODE_SCRIPTS = ("sglang-logs-setup", "sglang-nvme", "sglang-fsx-mount", "sglang-secrets")
"""sglang-node.service's ExecStart= scripts, in order (every node, router included)."""
SERVER_SCRIPTS = (
    *NODE_SCRIPTS,
    "sglang-server-prepare",
    "sglang-server-run",
    "sglang-wait-ready",
    "sglang-model-fetch",
    "sglang-model-download",
    # require_efa (efa-transport): NCCL transport classifier and the watcher that enforces it.
    "sglang-nccl-transport",
    "sglang-transport-check",
)
SERVER_UNITS = (
    "sglang-node.service",
    "sglang-model.service",
    "sglang-server@.service",
    "sglang-ready@.service",
)
# Group restart of multi-node servers (issue 6 part 4): installed only where SGLANG_NNODES > 1.
# Prefill/decode servers (infra/planning/pd.py): EFA device map, KV-transfer classifier and
# watcher; installed only where SGLANG_KV_TRANSPORT is set.
PD_SCRIPTS = ("sglang-kv-transport",)
GROUP_SCRIPTS = ("sglang-group",)
GROUP_UNITS = ("sglang-group@.service",)
GROUP_DROP_IN = ("sglang-group.conf", "/etc/systemd/system/sglang-server@.service.d/sglang-group.conf")
"""Drop-in that adds the group hooks to every ``sglang-server@`` instance (source, installed path)."""
ROUTER_SCRIPTS = (*NODE_SCRIPTS, "sglang-router-install", "sglang-router-run", "sglang-router-sync")
ROUTER_UNITS = ("sglang-node.service", "sglang-router.service", "sglang-router-sync.service")
ROUTER_ENABLED = ("sglang-router.service", "sglang-router-sync.service")
CLOUDWATCH_CONFIG = "/etc/sglang/cloudwatch-agent.json"
LOGROTATE_FILES = (
    ("sglang.logrotate", "/etc/logrotate.d/sglang"),
    ("logrotate-hourly.conf", "/etc/systemd/system/logrotate.timer.d/sglang-hourly.conf"),
)
"""Static files of ``userdata/`` and where they go: size-based rotation of ``/var/log/sglang``,
checked hourly (every node, router included)."""
LOG_DIR_CMD = ["install", "-d", "-m", "0755", "/var/log/sglang"]
BUNDLE_ENV_PATH = "/etc/sglang/bundle.env"
"""Where the node's bundle is and what it hashes to (:mod:`infra.planning.bundle`)."""
BOOTSTRAP_SOURCE = "sglang-bootstrap"
BOOTSTRAP_PATH = "/usr/local/sbin/sglang-bootstrap"
"""The one script user data still carries: it fetches, verifies and unpacks the node's bundle
of static files (:mod:`infra.planning.bundle`), then runs the command it is given."""


class UserDataTooLargeError(ValueError):
    """Rendered user data over EC2's 16384-byte limit."""


@dataclass(frozen=True)
class ServerProcess:
    """One server rank on a node: its slot and the argv written to ``server-<slot>.argv``."""

    slot: int
    argv: list[str]
    is_head: bool


@cache
def static_file(name: str) -> str:
    """Text of a file under ``userdata/``."""
    return (USERDATA_DIR / name).read_text(encoding="utf-8")


@cache
def shipped_file(name: str) -> str:
    """What a node receives of ``userdata/<name>``: the file without comments
    (:func:`infra.planning.minify.shipped`), so the user data stays under EC2's limit."""
    return shipped(static_file(name))


def env_file(values: Mapping[str, str]) -> str:
    """``KEY=value`` lines, values shell-quoted (read by bash ``.`` and systemd EnvironmentFile).

    Raises:
        ValueError: for a value with a quote or newline (systemd and bash would disagree).
    """
    lines = []
    for key, value in values.items():
        if any(c in value for c in "'\"\n\r\\"):
            raise ValueError(f"{key}: value {value!r} may not contain quotes, backslashes or newlines")
        lines.append(f"{key}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def docker_env_file(values: Mapping[str, str]) -> str:
    """``KEY=VALUE`` lines for ``docker run --env-file`` (no quoting: Docker takes them raw)."""
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"{key}: value may not contain a newline")
    return "".join(f"{k}={v}\n" for k, v in values.items())


def argv_file(argv: list[str]) -> str:
    """One argument per line (read back with bash ``mapfile -t``)."""
    for a in argv:
        if "\n" in a or "\r" in a:
            raise ValueError(f"argument {a!r} may not contain a newline")
    return "\n".join(argv) + "\n"


def _write(path: str, content: str, permissions: str = "0644") -> dict[str, str]:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def _static(names: tuple[str, ...], directory: str, permissions: str) -> list[dict[str, str]]:
    return [_write(f"{directory}/{n}", shipped_file(n), permissions) for n in names]


def _logrotate() -> list[dict[str, str]]:
    return [_write(path, shipped_file(name)) for name, path in LOGROTATE_FILES]


def _bootstrap(bundle: Mapping[str, str]) -> list[dict[str, str]]:
    """``bundle.env`` and the bootstrap that reads it (the only script left in user data)."""
    return [
        _write(BUNDLE_ENV_PATH, env_file(bundle)),
        _write(BOOTSTRAP_PATH, shipped_file(BOOTSTRAP_SOURCE), "0755"),
    ]


class _BlockDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as ``|`` literal blocks (readable files)."""


def _str(dumper: yaml.representer.SafeRepresenter, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)

_FastBlockDumper: type[yaml.CSafeDumper] | None = None
if yaml.__with_libyaml__:

    class _CBlockDumper(yaml.CSafeDumper):
        """The same dumper on libyaml's C emitter (PyYAML's wheels bundle libyaml)."""

    _CBlockDumper.add_representer(str, _str)
    _FastBlockDumper = _CBlockDumper


def cloud_config(doc: Mapping[str, object], fast: bool = True) -> str:
    """Serialize a cloud-config dict with its ``#cloud-config`` header (PyYAML, safe types).

    Args:
        doc: the cloud-config document.
        fast: use libyaml's C emitter when PyYAML has it (about 20 x faster on the node scripts'
            long literal blocks); ``tests/unit/test_userdata.py`` proves both emitters give the
            same bytes for every stack, so a deployer without libyaml renders the same user data
            (a different byte would replace the node).
    """
    dumper = _FastBlockDumper if fast and _FastBlockDumper is not None else _BlockDumper
    body = yaml.dump(dict(doc), Dumper=dumper, sort_keys=False, default_flow_style=False, width=1 << 20)
    return "#cloud-config\n" + body


def mime(parts: list[tuple[str, str]]) -> str:
    """Assemble ``(subtype, text)`` parts into a deterministic MIME multipart document.

    Parts are 8bit UTF-8 (no base64: the user data stays readable and small).
    """
    outer = MIMEMultipart(boundary=MIME_BOUNDARY)
    for subtype, text in parts:
        part = Message()
        part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
        part["MIME-Version"] = "1.0"
        part["Content-Transfer-Encoding"] = "8bit"
        part.set_payload(text)
        outer.attach(part)
    return outer.as_string()


def split_mime(user_data: str) -> dict[str, str]:
    """Inverse of :func:`mime` for tests and tools: ``{content type: text}``."""
    import email

    msg = email.message_from_string(user_data)
    out: dict[str, str] = {}
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        out[part.get_content_type()] = payload.decode("utf-8")
    return out


def pack(user_data: str) -> bytes:
    """Gzip the user data as EC2 receives it; cloud-init gunzips it before reading the MIME
    (https://cloudinit.readthedocs.io/en/latest/explanation/format.html). ``mtime=0`` keeps
    the bytes identical from run to run."""
    return _pack(user_data)


@lru_cache(maxsize=8)
def _pack(user_data: str) -> bytes:
    # The size check and the resource input gzip the same text one after the other: level 9
    # is most of a large plan's time (benchmarks/plan_scale.py), so the last few are kept.
    return gzip.compress(user_data.encode("utf-8"), compresslevel=9, mtime=0)


def pack_b64(user_data: str) -> str:
    """:func:`pack`, base64-encoded for ``aws.ec2.Instance(user_data_base64=...)``."""
    return base64.b64encode(pack(user_data)).decode("ascii")


def unpack_b64(user_data_base64: str) -> str:
    """Inverse of :func:`pack_b64`."""
    return gzip.decompress(base64.b64decode(user_data_base64)).decode("utf-8")


def _check_size(name: str, text: str) -> str:
    size = len(pack(text))
    if size > MAX_USER_DATA_BYTES:
        raise UserDataTooLargeError(
            f"user data of {name} is {size} bytes gzipped, over EC2's {MAX_USER_DATA_BYTES}-byte limit"
        )
    return text


def server_user_data(
    node_name: str,
    node_env: Mapping[str, str],
    processes: list[ServerProcess],
    container_env: Mapping[str, str],
    cloudwatch: Mapping[str, object],
    bundle: Mapping[str, str],
) -> str:
    """User data of one GPU node.

    The static scripts and units come from the node's bundle (:mod:`infra.planning.bundle`):
    ``sglang-bootstrap`` fetches and verifies it in ``runcmd`` and only then enables the units.
    A node of a multi-node server (``SGLANG_NNODES`` > 1 in ``node_env``) also gets the server
    unit's group drop-in (``sglang-group`` and ``sglang-group@.service`` are in every server
    bundle and run only through that drop-in).

    Args:
        node_name: stable node name (``server-g0-r0``), for the size error.
        node_env: ``/etc/sglang/node.env`` values (no secrets: the file is world-readable).
        processes: the server ranks on this node; each argv without ``--dist-init-addr``.
        container_env: environment of the serving containers (NCCL/EFA and the user's).
        cloudwatch: the CloudWatch agent configuration (JSON object).
        bundle: ``/etc/sglang/bundle.env`` values (:func:`infra.planning.bundle.bundle_env`).

    Returns:
        The MIME document; gzipped (:func:`pack`) it is at most 16384 bytes.

    Raises:
        UserDataTooLargeError: when the gzipped document is over the limit.
    """
    files = [_write("/etc/sglang/node.env", env_file(node_env))]
    files += [_write(f"/etc/sglang/server-{p.slot}.argv", argv_file(p.argv)) for p in processes]
    files.append(_write("/etc/sglang/container.env", docker_env_file(container_env)))
    files.append(_write(CLOUDWATCH_CONFIG, json.dumps(cloudwatch, indent=1) + "\n"))
    files += _bootstrap(bundle)

    if int(node_env.get("SGLANG_NNODES", "1")) > 1:
        # The drop-in Wants= sglang-group@SLOT, so nothing else needs enabling.
        files.append(_write(GROUP_DROP_IN[1], shipped_file(GROUP_DROP_IN[0])))
    # sglang-node and sglang-model come in through Requires=; ready@ is wanted by its server.
    units = [f"sglang-server@{p.slot}.service" for p in processes]
    units += [f"sglang-ready@{p.slot}.service" for p in processes if p.is_head]
    doc = {
        "write_files": files,
        "runcmd": [
            # systemd opens StandardOutput=append: files before ExecStart and creates no
            # directories, so the log directory must exist before any unit starts.
            LOG_DIR_CMD,
            # daemon-reload and the enable run only once the bundle is verified and unpacked.
            [BOOTSTRAP_PATH, "systemctl", "enable", "--now", "--no-block", *units],
        ],
    }
    return _check_size(node_name, mime([("cloud-config", cloud_config(doc))]))


def router_user_data(
    node_env: Mapping[str, str],
    argv: list[str],
    cloudwatch: Mapping[str, object],
    bundle: Mapping[str, str],
    *,
    extra_files: Mapping[str, str] | None = None,
    sync: bool = True,
) -> str:
    """User data of the router node (Ubuntu): Python venv packages, argv, the bootstrap and
    ``bundle.env`` of the router bundle (:mod:`infra.planning.bundle`), which holds the
    scripts and units of both gateways.

    Args:
        bundle: ``/etc/sglang/bundle.env`` values (:func:`infra.planning.bundle.bundle_env`).
        extra_files: ``{path: text}`` written as they are (smg's worker manifest).
        sync: enable ``sglang-router-sync`` (sglang-router only; smg discovers its workers
            from the manifest itself). The unit is in the router bundle either way and starts
            only when enabled (``WantedBy=multi-user.target``, wanted by nothing else).

    Returns:
        The MIME document; gzipped (:func:`pack`) it is at most 16384 bytes.

    Raises:
        UserDataTooLargeError: when the document is over the limit.
    """
    files = [
        _write("/etc/sglang/node.env", env_file(node_env)),
        _write("/etc/sglang/router.argv", argv_file(argv)),
        _write(CLOUDWATCH_CONFIG, json.dumps(cloudwatch, indent=1) + "\n"),
    ]
    files += [_write(path, text) for path, text in sorted((extra_files or {}).items())]
    files += _bootstrap(bundle)
    enabled = (
        ROUTER_ENABLED if sync else tuple(u for u in ROUTER_ENABLED if u != "sglang-router-sync.service")
    )
    doc = {
        "package_update": True,
        "packages": ["python3-venv", "python3-pip", "curl"],
        "write_files": files,
        "runcmd": [
            LOG_DIR_CMD,
            [BOOTSTRAP_PATH, "systemctl", "enable", "--now", "--no-block", *enabled],
        ],
    }
    return _check_size("router", mime([("cloud-config", cloud_config(doc))]))
