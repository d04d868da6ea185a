#!/usr/bin/env bash
# Shared helpers for the sglang-* node scripts. Sourced, never run.
# Reads nothing by itself; every value comes from /etc/sglang/node.env (written by cloud-init).

# Paths hang off SGLANG_ROOT: empty on nodes, a scratch directory in the boot rehearsal
# (each can also be set alone).
SGLANG_ROOT="${SGLANG_ROOT:-}"
# shellcheck disable=SC2034 # read by the scripts that source this file
SGLANG_ETC="${SGLANG_ETC:-${SGLANG_ROOT}/etc/sglang}"
# shellcheck disable=SC2034
SGLANG_RUN="${SGLANG_RUN:-${SGLANG_ROOT}/run/sglang}"
SGLANG_LOG_DIR="${SGLANG_LOG_DIR:-${SGLANG_ROOT}/var/log/sglang}"
# shellcheck disable=SC2034
SGLANG_BIN="${SGLANG_BIN:-${SGLANG_ROOT}/usr/local/bin}"

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

retry() {
  # retry ATTEMPTS WHAT CMD...: run CMD (stdout passes through) up to ATTEMPTS times; between
  # tries sleep SGLANG_RETRY_BASE*2^(n-1) s (5), capped at RETRY_CAP or SGLANG_RETRY_CAP (300),
  # half of it random (jitter: nodes share one NAT address). RETRY_FATAL: stderr regex that stops
  # at once; RETRY_HINT: what to check. Gives up with one "ERROR: WHAT: gave up" line, returns 1.
  local attempts="$1" what="$2" n=1 rc delay pause err last start=${SECONDS}
  local cap="${RETRY_CAP:-${SGLANG_RETRY_CAP:-300}}"
  shift 2
  err=$(mktemp)
  while :; do
    rc=0
    "$@" 2>"${err}" || rc=$?
    [ "${rc}" != 0 ] || { rm -f "${err}" && return 0; }
    last=$(grep -v '^[[:space:]]*$' "${err}" | tail -n 1 | cut -c 1-300)
    last="${last:-exit status ${rc}}"
    if [ "${n}" -ge "${attempts}" ] || { [ -n "${RETRY_FATAL:-}" ] && grep -Eq -- "${RETRY_FATAL}" "${err}"; }; then
      rm -f "${err}"
      log "ERROR: ${what}: gave up after ${n} attempt(s) in $((SECONDS - start)) s; last error: ${last}${RETRY_HINT:+; ${RETRY_HINT}}"
      return 1
    fi
    delay=$((${SGLANG_RETRY_BASE:-5} << (n - 1)))
    [ "${delay}" -le "${cap}" ] || delay="${cap}"
    pause=$((delay / 2 + RANDOM % (delay - delay / 2 + 1)))
    log "${what}: attempt ${n}/${attempts} failed (${last}); next in ${pause} s"
    sleep "${pause}"
    n=$((n + 1))
  done
}

write_if_changed() {
  # write_if_changed FILE MODE: stdin replaces FILE atomically (rename), only if it differs.
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat > "${tmp}"
  chmod "$2" "${tmp}"
  if cmp -s "${tmp}" "$1"; then
    rm -f "${tmp}"
  else
    mv -f "${tmp}" "$1"
  fi
}

require_active() {
  # require_active UNIT...: 0 when all are active; else one line, a start request, and 1.
  local unit state
  for unit in "$@"; do
    state=$(systemctl is-active "${unit}" 2>/dev/null) || true
    if [ "${state}" != active ]; then
      log "${unit} is ${state:-unknown}, not active: waiting for it (see ${SGLANG_LOG_DIR}/boot.log)"
      systemctl start --no-block "$@" 2>/dev/null || true
      return 1
    fi
  done
}

imds() {
  # IMDSv2 only (the launch template requires tokens): PUT a token, then GET the path.
  local token
  token=$(curl -fsS -X PUT --max-time 5 "http://169.254.169.254/latest/api/token" \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300") || return 1
  curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: ${token}" \
    "http://169.254.169.254/latest/meta-data/$1"
}

primary_ifname() {
  # The primary (device 0, ENA) interface: IMDS `mac` is "the eth0 device" (EC2 instance
  # metadata categories), else the default route's. p5's efa-only interfaces have no IP.
  local mac name
  if mac=$(imds mac 2>/dev/null) && [ -n "${mac}" ]; then
    name=$(ip -o link show | awk -v mac="${mac}" '$0 ~ ("link/ether " mac) { sub(/:$/, "", $2); sub(/@.*/, "", $2); print $2; exit }')
  fi
  [ -n "${name:-}" ] || name=$(ip -o route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
  [ -n "${name:-}" ] && printf '%s\n' "${name}"
}

cache_dir() {
  # Model cache on the instance-store NVMe the DLAMI mounts (p4d/p5), else on the root volume.
  if mountpoint -q /opt/dlami/nvme 2>/dev/null; then
    printf '%s\n' /opt/dlami/nvme/huggingface
  else
    printf '%s\n' "${SGLANG_ROOT}/var/lib/sglang/huggingface"
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
