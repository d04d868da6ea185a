"""A scratch node for rehearsing the real boot scripts of ``userdata/`` with stand-in commands.

The scripts run unmodified under real bash, coreutils, grep, flock and gpg; only what needs AWS,
a GPU or root on a real instance is a stand-in: ``aws``, ``docker``, ``curl``, ``mount``,
``stat -f``, ``modprobe``, ``apt-get``, ``dpkg``, ``systemctl``, ``logger``, ``nvidia-smi``
and ``ip``. Each stand-in fails the first N calls the way the real service fails (the messages
are the ones the AWS CLI, Docker, curl, apt, dpkg and mount.lustre print), then succeeds; N comes
from ``FAKE_*`` environment variables. Every absolute path the scripts touch hangs off
``SGLANG_ROOT`` (``userdata/sglang-lib.sh``), set here to a scratch directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT

USERDATA = ROOT / "userdata"
MAC = "0a:1b:2c:3d:4e:5f"

_COMMON = r"""#!/usr/bin/env bash
# Stand-in: fail the first N calls of a kind (counted in $FAKE_STATE), then succeed.
set -u
printf '%s\n' "$(basename "$0") $*" >> "${FAKE_STATE}/calls.log"
tick() {  # a monotonic clock for systemd's Active*TimestampMonotonic (boot starts at 100)
  local t
  t=$(( $(cat "${FAKE_STATE}/clock" 2>/dev/null || echo 100) + 1 ))
  echo "${t}" > "${FAKE_STATE}/clock"; echo "${t}"
}
fail_first() {  # fail_first KIND N RC MESSAGE
  local n
  n=$(( $(cat "${FAKE_STATE}/$1.count" 2>/dev/null || echo 0) + 1 ))
  echo "${n}" > "${FAKE_STATE}/$1.count"
  if [ "${n}" -le "$2" ]; then printf '%s\n' "$4" >&2; exit "$3"; fi
}
"""

FAKES: dict[str, str] = {
    "aws": r"""
case "$1 $2" in
  "ssm get-parameter")
    name=""; prev=""
    for a in "$@"; do [ "${prev}" = --name ] && name="${a}"; prev="${a}"; done
    case " ${FAKE_SSM_MISSING:-} " in *" ${name} "*)
      echo "An error occurred (ParameterNotFound) when calling the GetParameter operation: " >&2; exit 254;;
    esac
    fail_first ssm "${FAKE_SSM_FAILS:-0}" 254 \
      "An error occurred (ThrottlingException) when calling the GetParameter operation (reached max retries: 2): Rate exceeded"
    printf 's3cr3t-value-%s\n' "$(basename "${name}")";;
  "ecr get-login-password")
    fail_first ecr "${FAKE_ECR_FAILS:-0}" 254 \
      "An error occurred (ThrottlingException) when calling the GetAuthorizationToken operation (reached max retries: 2): Rate exceeded"
    echo ecr-password;;
  *) echo "fake aws: unexpected $*" >&2; exit 2;;
esac
""",
    "docker": r"""
case "$1" in
  info) exit 0;;
  login) cat >/dev/null; exit 0;;
  rm) exit 0;;
  image) [ -e "${FAKE_STATE}/pulled" ] || { echo "Error: No such image: x" >&2; exit 1; };;
  pull)
    fail_first pull429 "${FAKE_PULL_429:-0}" 1 \
      "Error response from daemon: toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"
    [ -z "${FAKE_PULL_FATAL:-}" ] || { echo "${FAKE_PULL_FATAL}" >&2; exit 1; }
    fail_first pull5xx "${FAKE_PULL_5XX:-0}" 1 \
      "Error response from daemon: received unexpected HTTP status: 503 Service Unavailable"
    touch "${FAKE_STATE}/pulled";;
  run)
    printf '%s\n' "$@" > "${FAKE_STATE}/docker-run.args"
    case " $* " in *" /sglang-model-download "*)
      fail_first hf "${FAKE_HF_FAILS:-0}" 1 \
        "huggingface_hub.errors.HfHubHTTPError: 429 Client Error: Too Many Requests for url: https://huggingface.co/api/models/m"
      for last in "$@"; do :; done
      mkdir -p "${SGLANG_ROOT}${last}" && echo '{}' > "${SGLANG_ROOT}${last}/config.json";;
      *)  # a serving container; FAKE_RUN_CLEAN_EXITS: the first N end at once with status 0
        fail_first cleanexit "${FAKE_RUN_CLEAN_EXITS:-0}" 0 \
          "[2026-11-21 09:00:00] Scheduler or DataParallelController 812 terminated with -6"
        [ -z "${FAKE_RUN_SLEEP:-}" ] || exec sleep "${FAKE_RUN_SLEEP}";;
    esac;;
  *) echo "fake docker: unexpected $*" >&2; exit 2;;
esac
""",
    "curl": r"""
url="" out=""; prev=""
for a in "$@"; do
  case "${a}" in http*) url="${a}";; esac
  [ "${prev}" = -o ] && out="${a}"; prev="${a}"
done
case "${url}" in
  *169.254.169.254/latest/api/token) echo token;;
  *169.254.169.254/latest/meta-data/mac) [ -n "${FAKE_NO_IMDS:-}" ] && exit 22; echo "${FAKE_MAC}";;
  *169.254.169.254/latest/meta-data/local-ipv4) echo 10.0.1.10;;
  *)
    fail_first download "${FAKE_CURL_FAILS:-0}" 22 "curl: (22) The requested URL returned error: 503"
    case "${url}" in *.asc) cp "${FAKE_KEY_FILE}" "${out}";; *) echo deb > "${out}";; esac;;
esac
""",
    "mount": r"""
if [ "$#" = 1 ]; then echo "mount: $1: can't find in /etc/fstab." >&2; exit 1; fi
case "${!#}" in */opt/dlami/nvme)  # the instance-store file system (sglang-nvme)
  fail_first nvmemount "${FAKE_NVME_MOUNT_FAILS:-0}" 32 "mount: ${!#}: wrong fs type, bad option, bad superblock"
  tick > "${FAKE_STATE}/nvme-mounted"; exit 0;;
esac
fail_first mount "${FAKE_MOUNT_FAILS:-0}" 5 \
  "mount.lustre: mount fs-0123@tcp:/abcdef at /fsx failed: Input/output error Is the MGS running?"
touch "${FAKE_STATE}/mounted"
""",
    "stat": r"""
if [ "$1 $2 $3" = "-f -c %T" ]; then
  if [ -e "${FAKE_STATE}/mounted" ]; then echo lustre; else echo ext2/ext3; fi
  exit 0
fi
exec /usr/bin/stat "$@"
""",
    "modprobe": r"""
[ -e "${FAKE_STATE}/lustre-installed" ] && exit 0
echo "modprobe: FATAL: Module lustre not found in directory /lib/modules/$(uname -r)" >&2; exit 1
""",
    "apt-get": r"""
case " $* " in
  *" update "*)
    fail_first aptlock "${FAKE_APT_LOCK_FAILS:-0}" 100 \
      "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1234 (apt-get)";;
  *" install "*)
    if [ -n "${FAKE_APT_NOPKG:-}" ]; then
      echo "E: Unable to locate package ${!#}" >&2; exit 100; fi
    touch "${FAKE_STATE}/lustre-installed";;
esac
""",
    "dpkg": r"""
fail_first dpkg "${FAKE_DPKG_FAILS:-0}" 2 \
  "dpkg: error: dpkg frontend lock was locked by another process with pid 812"
ctl="${SGLANG_ROOT}/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
mkdir -p "$(dirname "${ctl}")" && printf '#!/bin/sh\nexit 0\n' > "${ctl}" && chmod 755 "${ctl}"
""",
    "systemctl": r"""
case "$1" in
  is-active)
    if [ "$2" = nvidia-fabricmanager.service ]; then
      fail_first fm "${FAKE_FM_ACTIVATING:-0}" 3 activating 2>&1
      echo "${FAKE_FM_STATE:-active}"; [ "${FAKE_FM_STATE:-active}" = active ]; exit; fi
    case " ${FAKE_ACTIVE-sglang-node.service sglang-model.service} " in
      *" $2 "*) echo active;; *) echo failed; exit 3;; esac;;
  show)
    # ActiveEnterTimestampMonotonic: docker.service started at boot (50, before any mount)
    # unless restarted since; opt-dlami-nvme.mount when the instance store was mounted (0 =
    # not mounted, or mounted before this boot's docker: a test's bare touch).
    if [ "$2 $3" = "-P ActiveEnterTimestampMonotonic" ]; then
      case "$4" in
        docker.service) cat "${FAKE_STATE}/docker-started" 2>/dev/null || echo 50;;
        opt-dlami-nvme.mount) t=$(cat "${FAKE_STATE}/nvme-mounted" 2>/dev/null); echo "${t:-0}";;
        *) echo 0;;
      esac
      exit 0
    fi
    echo "${FAKE_FM_LOADSTATE:-not-found}";;
  start) exit 0;;
  restart)
    fail_first restart "${FAKE_RESTART_FAILS:-0}" 1 \
      "Job for $2 failed because the control process exited with error code."
    [ "$2" != docker.service ] || tick > "${FAKE_STATE}/docker-started"
    exit 0;;
  *) echo "fake systemctl: unexpected $*" >&2; exit 2;;
esac
""",
    # Instance-store NVMe (sglang-nvme): FAKE_NVME_DISKS local disks besides the EBS root disk.
    # Disk contents live in $FAKE_STATE (md-super: the array's superblocks; fs-dev: the device
    # holding the labelled file system); kernel state (md-active, nvme-mounted) ends at reboot.
    # FAKE_NVME_CLAIMED: the disks carry another owner's signature (the DLAMI's LVM set-up).
    "lsblk": r"""
[ "$*" = "-dnpP -o NAME,FSTYPE,MODEL" ] || { echo "fake lsblk: unexpected $*" >&2; exit 2; }
echo 'NAME="/dev/nvme0n1" FSTYPE="" MODEL="Amazon Elastic Block Store              "'
for ((i = 1; i <= ${FAKE_NVME_DISKS:-0}; i++)); do
  fs=""
  [ -e "${FAKE_STATE}/md-super" ] && fs=linux_raid_member
  [ "$(cat "${FAKE_STATE}/fs-dev" 2>/dev/null)" = "/dev/nvme${i}n1" ] && fs=ext4
  [ -n "${FAKE_NVME_CLAIMED:-}" ] && fs=LVM2_member
  # FAKE_NVME_CLAIMED_DISKS=N: the DLAMI's set-up is half-way: only the first N disks are its.
  [ "${i}" -le "${FAKE_NVME_CLAIMED_DISKS:-0}" ] && fs=LVM2_member
  echo "NAME=\"/dev/nvme${i}n1\" FSTYPE=\"${fs}\" MODEL=\"Amazon EC2 NVMe Instance Storage        \""
done
""",
    "mdadm": r"""
md="${SGLANG_ROOT}/dev/md/sglang-nvme"
case "$1" in
  --assemble)
    [ -e "${FAKE_STATE}/md-super" ] || { echo "mdadm: No arrays found in config file or automatically" >&2; exit 1; }
    mkdir -p "$(dirname "${md}")" && touch "${md}" "${FAKE_STATE}/md-active";;
  --create)
    [ ! -e "$2" ] || { echo "mdadm: device $2 exists but is not an md array." >&2; exit 1; }
    mkdir -p "$(dirname "$2")" && touch "$2" "${FAKE_STATE}/md-super" "${FAKE_STATE}/md-active";;
  *) echo "fake mdadm: unexpected $*" >&2; exit 2;;
esac
""",
    "mkfs.ext4": r"""
for dev in "$@"; do :; done
printf '%s\n' "${dev}" > "${FAKE_STATE}/fs-dev"
""",
    "blkid": r"""
[ "$1" = -L ] && [ -e "${FAKE_STATE}/fs-dev" ] || exit 2
dev=$(cat "${FAKE_STATE}/fs-dev")
case "${dev}" in */md/*) [ -e "${FAKE_STATE}/md-active" ] || exit 2;; esac
echo "${dev}"
""",
    # FAKE_NVME_MOUNTED_AFTER=N: someone else (the DLAMI) mounts the instance store after N checks.
    "mountpoint": r"""
if [ -n "${FAKE_NVME_MOUNTED_AFTER:-}" ]; then
  [ -e "${FAKE_STATE}/nvme-mounted" ] \
    || { ( fail_first dlamimount "${FAKE_NVME_MOUNTED_AFTER}" 1 "" ) 2>/dev/null && tick > "${FAKE_STATE}/nvme-mounted"; }
fi
[ "$2" = "${SGLANG_ROOT}/opt/dlami/nvme" ] && [ -e "${FAKE_STATE}/nvme-mounted" ]
""",
    "systemd-run": "exit 0\n",  # recorded in calls.log: the CloudWatch agent's later retry
    "logger": 'printf \'%s\\n\' "$*" >> "${FAKE_STATE}/logger.log"\n',
    "nvidia-smi": "echo 'GPU 0: NVIDIA H100 80GB HBM3'\n",
    "ip": r"""
case "$*" in
  "-o link show")
    echo "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00"
    echo "2: ens32: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc mq state UP mode DEFAULT group default qlen 1000\    link/ether ${FAKE_MAC} brd ff:ff:ff:ff:ff:ff"
    for i in 33 34 35; do
      echo "${i}: ens${i}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc mq state UP mode DEFAULT group default qlen 1000\    link/ether 0a:00:00:00:00:${i} brd ff:ff:ff:ff:ff:ff"
    done
    echo "40: docker0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN mode DEFAULT group default\    link/ether 02:42:ac:11:00:01 brd ff:ff:ff:ff:ff:ff";;
  "-o route show default") echo "default via 10.0.0.1 dev ens32 proto dhcp src 10.0.1.10 metric 100";;
  *) echo "fake ip: unexpected $*" >&2; exit 2;;
esac
""",
}

NODE_SCRIPTS = ("sglang-logs-setup", "sglang-nvme", "sglang-fsx-mount", "sglang-secrets")


@dataclass
class Node:
    """A scratch node: ``root`` stands for ``/``, ``state`` holds the stand-ins' counters."""

    root: Path
    state: Path
    bin: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, script: str, *args: str, **fake: str) -> subprocess.CompletedProcess[str]:
        """Run ``userdata/<script>`` as its unit would, with ``FAKE_*`` settings; never raises."""
        env = {**self.env, **{k: str(v) for k, v in fake.items()}}
        return subprocess.run(
            ["bash", str(self.root / "usr/local/bin" / script), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    def calls(self, prog: str) -> list[str]:
        """Every recorded call of a stand-in, as ``prog arg...`` lines."""
        log = self.state / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line for line in lines if line.split(" ", 1)[0] == prog]

    def reset_counters(self) -> None:
        for f in self.state.glob("*.count"):
            f.unlink()

    def reboot(self) -> None:
        """What a reboot does to the node: /run (tmpfs) is empty and nothing is mounted."""
        shutil.rmtree(self.root / "run")
        (self.root / "run").mkdir()
        (self.state / "mounted").unlink(missing_ok=True)
        # The md array stops and the NVMe file system is unmounted (the disks keep both).
        for kernel_state in ("nvme-mounted", "md-active", "docker-started"):
            (self.state / kernel_state).unlink(missing_ok=True)
        (self.root / "dev/md/sglang-nvme").unlink(missing_ok=True)
        self.reset_counters()

    def stop_start(self) -> None:
        """A stop and start: a reboot, and the instance store comes back blank
        (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-store-lifetime.html)."""
        self.reboot()
        for disk_state in ("md-super", "fs-dev"):
            (self.state / disk_state).unlink(missing_ok=True)

    def snapshot(self) -> dict[str, tuple[int, bytes, int]]:
        """``{relative path: (mode, content, mtime_ns)}`` of every file under the root."""
        out = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                out[str(p.relative_to(self.root))] = (st.st_mode, p.read_bytes(), st.st_mtime_ns)
        return out


def env_file(values: dict[str, str]) -> str:
    return "".join(f"{k}='{v}'\n" for k, v in values.items())


def make_node(tmp: Path, node_env: dict[str, str], container_env: str = "NCCL_DEBUG=INFO\n") -> Node:
    """A scratch root with the shipped scripts where cloud-init puts them and the stand-ins
    first on PATH; retries back off 0 s (``SGLANG_RETRY_BASE=0``)."""
    root, state, fake_bin = tmp / "root", tmp / "state", tmp / "fakebin"
    for d in (state, fake_bin, root / "run", root / "var/log/sglang", root / "usr/local/lib/sglang"):
        d.mkdir(parents=True, exist_ok=True)
    (root / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(USERDATA / "sglang-lib.sh", root / "usr/local/lib/sglang/sglang-lib.sh")
    for f in USERDATA.iterdir():
        if f.is_file() and f.read_text().startswith("#!"):
            shutil.copy(f, root / "usr/local/bin" / f.name)
            os.chmod(root / "usr/local/bin" / f.name, 0o755)
    etc = root / "etc" / "sglang"
    etc.mkdir(parents=True)
    (etc / "node.env").write_text(env_file(node_env))
    (etc / "container.env").write_text(container_env)
    (etc / "server-0.argv").write_text("python3\n-m\nsglang.launch_server\n--port\n30000\n")
    (etc / "cloudwatch-agent.json").write_text("{}\n")
    (root / "etc" / "fstab").write_text("LABEL=cloudimg-rootfs\t/\text4\tdiscard,errors=remount-ro\t0 1\n")
    for name, body in FAKES.items():
        p = fake_bin / name
        p.write_text(_COMMON + body)
        p.chmod(0o755)
    # A real armored block for the real gpg --dearmor (the FSx key's format, not its bytes).
    key = tmp / "fsx-key.asc"
    (tmp / "gnupg").mkdir(exist_ok=True, mode=0o700)
    subprocess.run(
        ["gpg", "--batch", "--enarmor", "--output", str(key)],
        input=b"stand-in for the FSx repository key\n",
        check=True,
        capture_output=True,
        env={**os.environ, "GNUPGHOME": str(tmp / "gnupg")},
    )
    env = {
        "PATH": f"{fake_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp),
        "GNUPGHOME": str(tmp / "gnupg"),
        "SGLANG_ROOT": str(root),
        "SGLANG_RETRY_BASE": "0",
        "FAKE_STATE": str(state),
        "FAKE_MAC": MAC,
        "FAKE_KEY_FILE": str(key),
    }
    return Node(root, state, fake_bin, env)


def error_lines(stderr: str) -> list[str]:
    """The ``ERROR:`` lines a script printed (what an operator greps boot.log for)."""
    return [line for line in stderr.splitlines() if line.startswith("ERROR:")]
