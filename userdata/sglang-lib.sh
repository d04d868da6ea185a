#!/usr/bin/env bash
# Shared helpers for the sglang-* node scripts. Sourced, never run.
# Reads nothing by itself; every value comes from /etc/sglang/node.env (written by cloud-init).

SGLANG_ETC=/etc/sglang

log() {
  # One line on stderr, tagged so `journalctl -t sglang` finds it.
  printf '%s\n' "$*" >&2
  logger -t sglang -- "$*" 2>/dev/null || true
}

die() {
  log "ERROR: $*"
  exit 1
}

load_node_env() {
  [ -r "${SGLANG_ETC}/node.env" ] || die "${SGLANG_ETC}/node.env is missing: cloud-init did not run"
  # shellcheck source=/dev/null
  . "${SGLANG_ETC}/node.env"
}

imds() {
  # IMDSv2 only (the launch template requires tokens): PUT a token, then GET the path.
  local token
  token=$(curl -fsS -X PUT --max-time 5 "http://169.254.169.254/latest/api/token" \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300") || return 1
  curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: ${token}" \
    "http://169.254.169.254/latest/meta-data/$1"
}

cache_dir() {
  # Model cache on the instance-store NVMe the DLAMI mounts (p4d/p5), else on the root volume.
  if mountpoint -q /opt/dlami/nvme 2>/dev/null; then
    printf '%s\n' /opt/dlami/nvme/huggingface
  else
    printf '%s\n' /var/lib/sglang/huggingface
  fi
}

read_argv() {
  # read_argv FILE: fills the global array ARGV with one argument per line of FILE.
  [ -r "$1" ] || die "$1 is missing"
  mapfile -t ARGV < "$1"
}

argv_value() {
  # argv_value FLAG: prints the value that follows FLAG in ARGV.
  local i
  for ((i = 0; i < ${#ARGV[@]} - 1; i++)); do
    if [ "${ARGV[i]}" = "$1" ]; then
      printf '%s\n' "${ARGV[i + 1]}"
      return 0
    fi
  done
  return 1
}
