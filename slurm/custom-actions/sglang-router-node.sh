#!/bin/bash
# ParallelCluster OnNodeConfigured action of the node that runs the SGLang router (the head node,
# or the static node of the router queue): the pinned sglang-router in its own virtual
# environment, run by one systemd unit that restarts it.
# Static file: everything comes in as arguments (rendered by infra/planning/slurm.py).
#
# Usage: sglang-router-node.sh ROUTER_VERSION python3 -m sglang_router.launch_router ARGS...
#   The job adds its rank-0 URLs when it is up (the slurm-job part: POST /workers).
# Idempotent: a running router is left alone. Paths hang off SGLANG_ROOT (empty on nodes).
set -euo pipefail

if [ "$#" -lt 4 ] || [ "$2" != python3 ]; then
  echo "usage: $0 ROUTER_VERSION python3 -m sglang_router.launch_router ARGS..." >&2
  exit 64
fi
version=$1
shift 2
state="${SGLANG_ROOT:-}/opt/sglang"

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

install -d -m 0755 "$state"
if [ ! -x "${state}/router-venv/bin/python3" ]; then
  python3 -m venv "${state}/router-venv"
fi
if ! "${state}/router-venv/bin/python3" -m pip show --quiet sglang-router 2>/dev/null; then
  retry "${state}/router-venv/bin/python3" -m pip install --quiet "sglang-router==${version}"
fi
if systemctl is-active --quiet sglang-router; then
  log "router already running"
else
  # "$@" is now -m sglang_router.launch_router ARGS...: run with the venv's interpreter.
  systemd-run --unit sglang-router --property Restart=always --property RestartSec=5 \
    "${state}/router-venv/bin/python3" "$@"
  log "router started"
fi
