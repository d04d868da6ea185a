"""Boot rehearsal of ``sglang-bootstrap``: the node fetches its bundle from S3 the way S3 fails.

The bootstrap and the files cloud-init writes are taken from real rendered user data (the
shipped, comment-free bytes a node runs) and written under a scratch root (``SGLANG_ROOT``);
the archive is the real bundle the program uploads. The real bash, sha256sum and GNU tar run;
stand-ins first on PATH replace ``aws`` (S3 ``GetObject``: 503 SlowDown, 500 InternalError, a
network error, AccessDenied while a new role policy propagates, a corrupted body, NoSuchKey,
then the real bytes, with the messages and exit codes of AWS CLI v2: 254 for a service error,
255 otherwise), ``snap`` (the router's Ubuntu has no AWS CLI), ``systemctl`` and ``logger``.
Backoff is 0 s (``SGLANG_RETRY_BASE=0``): nothing here depends on time. After the bootstrap,
a script it unpacked (``sglang-secrets``) runs from its installed path with the lib it
unpacked, as ``sglang-node.service`` would run it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from infra.planning.bundle import bundle, bundle_of
from infra.planning.cluster import Runtime, plan_cluster, router_boot, server_node_boot
from infra.planning.userdata import BOOTSTRAP_PATH, split_mime
from infra.spec import parse_config
from tests.conformance.fake_node import _COMMON, FAKES
from tests.conftest import base_config

BUCKET = "sglang-bundles-bucket-6ff780a7fedd"
TAMPERED_SHA = hashlib.sha256(b"not the bundle\n").hexdigest()

AWS = r"""
if [ "$1 $2" != "s3api get-object" ]; then exec "${FAKE_STATE}/aws-node" "$@"; fi
bucket="" key="" region="" out="${!#}"; prev=""
for a in "$@"; do
  case "${prev}" in --bucket) bucket="${a}";; --key) key="${a}";; --region) region="${a}";; esac
  prev="${a}"
done
case " $* " in *" --cli-connect-timeout 10 --cli-read-timeout 60 "*) ;; *) echo "fake aws: no timeouts in $*" >&2; exit 2;; esac
printf '%s\n' "${region} ${bucket} ${key}" >> "${FAKE_STATE}/gets.log"
n=$(( $(cat "${FAKE_STATE}/s3.count" 2>/dev/null || echo 0) + 1 )); echo "${n}" > "${FAKE_STATE}/s3.count"
read -r -a seq <<< "${FAKE_S3:-ok}"
what="${seq[n - 1]:-${seq[${#seq[@]} - 1]}}"
case "${what}" in
  slowdown) printf '\n%s\n' "An error occurred (SlowDown) when calling the GetObject operation (reached max retries: 2): Please reduce your request rate." >&2; exit 254;;
  internal) printf '\n%s\n' "An error occurred (InternalError) when calling the GetObject operation (reached max retries: 2): We encountered an internal error. Please try again." >&2; exit 254;;
  network) printf '\n%s\n' "Could not connect to the endpoint URL: \"https://${bucket}.s3.${region}.amazonaws.com/${key}\"" >&2; exit 255;;
  nocreds) printf '\n%s\n' "Unable to locate credentials. You can configure credentials by running \"aws configure\"." >&2; exit 253;;
  denied) printf '\n%s\n' "An error occurred (AccessDenied) when calling the GetObject operation: Access Denied" >&2; exit 254;;
  nokey) printf '\n%s\n' "An error occurred (NoSuchKey) when calling the GetObject operation: The specified key does not exist." >&2; exit 254;;
  corrupt) head -c 1000 "${FAKE_BUNDLE}" > "${out}";;  # cut short: gzip's own check fails
  tampered) printf 'not the bundle\n' | gzip -c > "${out}";;  # a whole gzip of other bytes
  ok) cp "${FAKE_BUNDLE}" "${out}";;
esac
printf '{\n    "ContentLength": %s,\n    "ContentType": "application/gzip"\n}\n' "$(wc -c < "${out}")"
"""

SNAP = r"""
[ "$*" = "install aws-cli --classic" ] || { echo "fake snap: unexpected $*" >&2; exit 2; }
fail_first snap "${FAKE_SNAP_FAILS:-0}" 1 \
  "error: too early for operation, device not yet seeded or device model not acknowledged"
printf '#!/usr/bin/env bash\nexec %s/aws "$@"\n' "${FAKE_STATE}/bin" > "${FAKE_SNAP_BIN}/aws"
chmod 755 "${FAKE_SNAP_BIN}/aws"
echo "aws-cli (v2/stable) 2.31.0 from Amazon Web Services (aws) installed"
"""

SYSTEMCTL = "exit 0\n"  # the common prologue records the call


@dataclass
class BootNode:
    root: Path
    state: Path
    env: dict[str, str]
    user_data: str

    def bootstrap(self, *cmd: str, **fake: str) -> subprocess.CompletedProcess[str]:
        """runcmd's bootstrap line: the shipped script with the enable command after it."""
        return subprocess.run(
            ["bash", str(self.root / BOOTSTRAP_PATH.lstrip("/")), *cmd],
            capture_output=True,
            text=True,
            env={**self.env, **fake},
            timeout=120,
            check=False,
        )

    def gets(self) -> list[str]:
        log = self.state / "gets.log"
        return log.read_text().splitlines() if log.exists() else []

    def log(self) -> list[str]:
        """Every stand-in call in order (``prog arg...``)."""
        log = self.state / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def calls(self) -> list[str]:
        """The ``systemctl`` calls."""
        return [line for line in self.log() if line.startswith("systemctl ")]

    def reset(self) -> None:
        for f in self.state.glob("*.count"):
            f.unlink()
        for f in ("gets.log", "calls.log"):
            (self.state / f).unlink(missing_ok=True)


def _user_data(kind: str) -> str:
    plan = plan_cluster(
        parse_config(base_config()), "prod", secrets=frozenset({"hf_token", "router_api_key"})
    )
    if kind == "router":
        return router_boot(plan, {0: "10.0.1.10"}, BUCKET).user_data
    return server_node_boot(
        plan, plan.layout.nodes[1], "10.0.1.10", Runtime("img", bundle_bucket=BUCKET)
    ).user_data


def _node(tmp: Path, kind: str = "server", aws_on_path: bool = True) -> BootNode:
    """cloud-init's write_files under ``tmp/root`` (modes as given), the stand-ins, the bundle."""
    root, state, fake_bin, snap_bin = tmp / "root", tmp / "state", tmp / "fakebin", tmp / "snapbin"
    for d in (root / "var/log/sglang", root / "run", state / "bin", fake_bin, snap_bin):
        d.mkdir(parents=True, exist_ok=True)
    ud = _user_data(kind)
    for f in yaml.safe_load(split_mime(ud)["text/cloud-config"])["write_files"]:
        p = root / f["path"].lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f["content"])
        p.chmod(int(f["permissions"], 8))
    b, _ = bundle_of(ud)
    (state / "bundle.tar.gz").write_bytes(b.data)

    def put(directory: Path, name: str, body: str) -> None:
        (directory / name).write_text(_COMMON + body)
        (directory / name).chmod(0o755)

    put(state, "aws-node", FAKES["aws"])  # SSM and ECR, as the other rehearsals
    put(state / "bin", "aws", AWS)
    if aws_on_path:
        put(fake_bin, "aws", 'exec "${FAKE_STATE}/bin/aws" "$@"\n')
    put(fake_bin, "snap", SNAP)
    put(fake_bin, "systemctl", SYSTEMCTL)
    put(fake_bin, "logger", FAKES["logger"])
    env = {
        "PATH": f"{fake_bin}:{snap_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp),
        "SGLANG_ROOT": str(root),
        "SGLANG_RETRY_BASE": "0",
        "FAKE_STATE": str(state),
        "FAKE_BUNDLE": str(state / "bundle.tar.gz"),
        "FAKE_SNAP_BIN": str(snap_bin),
    }
    return BootNode(root, state, env, ud)


ENABLE = ("systemctl", "enable", "--now", "--no-block", "sglang-server@0.service")


def _tree(root: Path) -> dict[str, tuple[int, bytes, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not str(p.relative_to(root)).startswith(("var/log", "var/lib"))
    }


def test_s3_failures_then_success_unpack_the_verified_bundle_and_continue(tmp_path: Path) -> None:
    node = _node(tmp_path)
    b = bundle("server")
    proc = node.bootstrap(*ENABLE, FAKE_S3="slowdown internal network nocreds denied corrupt tampered ok")
    assert proc.returncode == 0, proc.stderr
    assert node.gets() == [f"us-east-1 {BUCKET} {b.key}"] * 8
    for why in (
        "SlowDown",
        "InternalError",
        "Could not connect",
        "Unable to locate credentials",
        "AccessDenied",
    ):
        assert any(why in line and "attempt" in line for line in proc.stderr.splitlines()), why
    mismatches = [line for line in proc.stderr.splitlines() if "ERROR:" in line and "sha256 mismatch" in line]
    assert len(mismatches) == 2  # loud, then retried
    assert "(not a complete gzip stream)" in mismatches[0] and f"got {TAMPERED_SHA}," in mismatches[1]
    # every member at its path with its mode and bytes; the marker records the hash
    for f in b.files:
        p = node.root / f.path.lstrip("/")
        assert p.read_bytes() == f.content and stat.S_IMODE(p.stat().st_mode) == f.mode, f.path
    assert (node.root / "var/lib/sglang/bundle.sha256").read_text() == b.sha256 + "\n"
    assert node.calls() == ["systemctl daemon-reload", "systemctl " + " ".join(ENABLE[1:])]
    log = node.log()
    last_get = max(i for i, line in enumerate(log) if line.startswith("aws s3api get-object"))
    assert log.index("systemctl daemon-reload") > last_get  # nothing enabled before verification
    assert "sglang-bootstrap:" in (node.root / "var/log/sglang/boot.log").read_text()
    assert not list((node.root / "var/lib/sglang").glob("bundle.*/"))  # download dir removed


def test_the_boot_continues_with_the_unpacked_scripts(tmp_path: Path) -> None:
    """sglang-secrets (sglang-node.service) runs from the bundle with the unpacked lib and the
    node.env user data wrote, and reads the HF token from SSM (stand-in) as it does today."""
    node = _node(tmp_path)
    assert node.bootstrap(FAKE_S3="ok").returncode == 0
    proc = subprocess.run(
        ["bash", str(node.root / "usr/local/bin/sglang-secrets")],
        capture_output=True,
        text=True,
        env={**node.env, "FAKE_SSM_FAILS": "1"},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HF_TOKEN=s3cr3t-value-hf-token" in (node.root / "run/sglang/secrets.env").read_text()


def test_reboot_with_the_bundle_present_skips_the_download(tmp_path: Path) -> None:
    node = _node(tmp_path)
    assert node.bootstrap(*ENABLE, FAKE_S3="ok").returncode == 0
    before = _tree(node.root)
    node.reset()
    proc = node.bootstrap(*ENABLE, FAKE_S3="nokey")  # S3 is never asked
    assert proc.returncode == 0, proc.stderr
    assert node.gets() == [] and "already unpacked" in proc.stderr
    assert _tree(node.root) == before  # nothing rewritten
    assert node.calls() == ["systemctl daemon-reload", "systemctl " + " ".join(ENABLE[1:])]


def test_a_new_hash_in_user_data_downloads_again(tmp_path: Path) -> None:
    node = _node(tmp_path)
    (node.root / "var/lib/sglang").mkdir(parents=True)
    (node.root / "var/lib/sglang/bundle.sha256").write_text("0" * 64 + "\n")  # an older bundle
    assert node.bootstrap(FAKE_S3="ok").returncode == 0
    assert len(node.gets()) == 1


def test_always_corrupted_fails_loudly_and_runs_nothing(tmp_path: Path) -> None:
    node = _node(tmp_path)
    proc = node.bootstrap(*ENABLE, FAKE_S3="corrupt tampered", SGLANG_BUNDLE_ATTEMPTS="4")
    assert proc.returncode == 1
    assert len(node.gets()) == 4
    last = proc.stderr.strip().splitlines()[-1]
    assert "ERROR:" in last and "gave up after 4 attempt(s)" in last and "sha256 mismatch" in last
    assert not (node.root / "usr/local/bin").exists()  # nothing unverified unpacked
    assert not (node.root / "var/lib/sglang/bundle.sha256").exists()
    assert node.calls() == []  # no daemon-reload, no unit enabled


def test_a_missing_object_stops_at_once(tmp_path: Path) -> None:
    node = _node(tmp_path)
    proc = node.bootstrap(*ENABLE, FAKE_S3="nokey ok")
    assert proc.returncode == 1 and len(node.gets()) == 1
    assert "ERROR:" in proc.stderr and "NoSuchKey" in proc.stderr
    assert node.calls() == []


def test_throttling_is_bounded(tmp_path: Path) -> None:
    node = _node(tmp_path)
    proc = node.bootstrap(*ENABLE, FAKE_S3="slowdown", SGLANG_BUNDLE_ATTEMPTS="5")
    assert proc.returncode == 1 and len(node.gets()) == 5
    assert "gave up after 5 attempt(s)" in proc.stderr and "SlowDown" in proc.stderr.splitlines()[-1]
    assert node.calls() == []


def test_a_tampered_hash_in_bundle_env_is_refused(tmp_path: Path) -> None:
    node = _node(tmp_path)
    env = node.root / "etc/sglang/bundle.env"
    env.write_text(env.read_text().replace("SGLANG_BUNDLE_SHA256=", "SGLANG_BUNDLE_SHA256=zz"))
    proc = node.bootstrap(*ENABLE)
    assert proc.returncode == 1 and "not a SHA-256" in proc.stderr and node.gets() == []


def test_router_without_the_aws_cli_installs_it_from_snap(tmp_path: Path) -> None:
    node = _node(tmp_path, "router", aws_on_path=False)
    b = bundle("router")
    proc = node.bootstrap(
        "systemctl", "enable", "--now", "--no-block", "sglang-router.service", FAKE_SNAP_FAILS="2"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("snap install aws-cli: attempt") == 2
    assert node.gets() == [f"us-east-1 {BUCKET} {b.key}"]
    assert os.access(node.root / "usr/local/bin/sglang-router-run", os.X_OK)


@pytest.mark.parametrize("kind", ["server", "router"])
def test_the_rehearsed_bootstrap_is_the_one_user_data_ships(kind: str) -> None:
    """The bytes run above are runcmd's first argument on a real node."""
    ud = _user_data(kind)
    doc = yaml.safe_load(split_mime(ud)["text/cloud-config"])
    assert doc["runcmd"][-1][0] == BOOTSTRAP_PATH
    assert [f["permissions"] for f in doc["write_files"] if f["path"] == BOOTSTRAP_PATH] == ["0755"]


@pytest.mark.parametrize("kind", ["server", "router"])
def test_shipped_bootstrap_passes_shellcheck(kind: str, tmp_path: Path) -> None:
    """shellcheck on the exact bytes user data ships (comments, and so the ``source=``
    directive, stripped: SC1090 is the one finding that may appear)."""
    from tests.conformance.test_shellcheck import _shellcheck

    ud = _user_data(kind)
    (text,) = [
        f["content"]
        for f in yaml.safe_load(split_mime(ud)["text/cloud-config"])["write_files"]
        if f["path"] == BOOTSTRAP_PATH
    ]
    script = tmp_path / "sglang-bootstrap"
    script.write_text(text)
    proc = subprocess.run(
        [_shellcheck(), "--severity=style", "--exclude=SC1090", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
