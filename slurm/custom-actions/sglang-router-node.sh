#!/bin/bash
# ParallelCluster OnNodeConfigured action of the node that runs the SGLang router (the head node,
# or the static node of the router queue): the pinned sglang-router in its own virtual
# environment, run by a systemd unit that restarts it and survives reboots.
# Static file: everything comes in as arguments (rendered by infra/planning/slurm.py).
#
# Usage: sglang-router-node.sh ROUTER_VERSION python3 -m sglang_router.launch_router ARGS...
#   The argv is kept one argument per line in /opt/sglang/router.argv (no shell or systemd
#   quoting involved); the job adds its rank-0 URLs when it is up (slurm-job part: POST /workers).
# Idempotent: the same argv leaves a running router alone; a new argv restarts it.
# Every absolute path hangs off SGLANG_ROOT (empty on nodes).
set -euo pipefail

if [ "$#" -lt 4 ] || [ "$2" != python3 ] || [ "$3" != -m ]; then
  echo "usage: $0 ROUTER_VERSION python3 -m sglang_router.launch_router ARGS..." >&2
  exit 64
fi
version=$1
shift 2
root=${SGLANG_ROOT:-}
state="${root}/opt/sglang"
unit="${root}/etc/systemd/system/sglang-router.service"

log() { echo "sglang-router-node: $*" >&2; }

retry() {
  local n=1 delay=${SGLANG_RETRY_DELAY:-5}
  until "$@"; do
    if [ "$n" -ge 5 ]; then
      log "giving up after $n attempts: $*"
      return 1
    fi
    log "attempt $n failed, retrying in ${delay}s: $*"
    sleep "$delay"
    n=$((n + 1))
    delay=$((delay * 2))
  done
}

install -d -m 0755 "$state" "$(dirname "$unit")"
# ParallelCluster's ubuntu2204 AMI has python3 and python3-pip but not python3-venv, which holds
# ensurepip on Ubuntu: `python3 -m venv` then leaves bin/python3 without pip and exits 1. A venv
# without bin/pip (that failure, or a run cut short) is rebuilt.
if [ ! -x "${state}/router-venv/bin/python3" ] || [ ! -e "${state}/router-venv/bin/pip" ]; then
  rm -rf "${state}/router-venv"
  if ! python3 -m venv "${state}/router-venv"; then
    log "python3 -m venv failed: installing python3-venv"
    rm -rf "${state}/router-venv"
    retry apt-get -qq update
    retry env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y python3-venv
    python3 -m venv "${state}/router-venv"
  fi
fi
if ! "${state}/router-venv/bin/python3" -m pip show --quiet "sglang-router==${version}" >/dev/null 2>&1; then
  retry "${state}/router-venv/bin/python3" -m pip install --quiet "sglang-router==${version}"
fi

# "$@" is now -m sglang_router.launch_router ARGS...: one argument per line.
printf '%s\n' "$@" >"${state}/router.argv.new"
changed=1
if cmp -s "${state}/router.argv.new" "${state}/router.argv"; then
  changed=0
  rm -f "${state}/router.argv.new"
else
  mv -f "${state}/router.argv.new" "${state}/router.argv"
fi

cat >"${unit}.new" <<'UNIT'
[Unit]
Description=SGLang router (SLURM backend)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/bin/bash -c 'mapfile -t argv < /opt/sglang/router.argv && exec /opt/sglang/router-venv/bin/python3 "$${argv[@]}"'
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
if cmp -s "${unit}.new" "$unit"; then
  rm -f "${unit}.new"
else
  mv -f "${unit}.new" "$unit"
  systemctl daemon-reload
  changed=1
fi

if [ "$changed" = 1 ] || ! systemctl is-active --quiet sglang-router; then
  systemctl enable sglang-router
  systemctl restart sglang-router
  log "router (re)started"
else
  log "router already running with this argv"
fi
