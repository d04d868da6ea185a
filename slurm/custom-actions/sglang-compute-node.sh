#!/bin/bash
# ParallelCluster custom action of the GPU nodes (SGLang SLURM backend): OnNodeStart prepares
# the container runtime's directories (every boot: /run is a tmpfs), OnNodeConfigured installs
# what the runtime needs and pulls the serving image once, so the job does not.
# Static file: everything comes in as arguments (SlurmQueues[].CustomActions.*.Args, rendered
# by infra/planning/slurm.py), nothing is templated.
#
# Usage: sglang-compute-node.sh PHASE REGION RUNTIME IMAGE
#   PHASE   start | configured
#   RUNTIME pyxis | docker
#   IMAGE   the EFA-complete serving image (an ECR reference is logged in to with the node role)
# Idempotent.
set -euo pipefail

if [ "$#" -ne 4 ]; then
  echo "usage: $0 start|configured REGION pyxis|docker IMAGE" >&2
  exit 64
fi
phase=$1
region=$2
runtime=$3
image=$4
examples=${PCLUSTER_EXAMPLES:-/opt/parallelcluster/examples}

log() { echo "sglang-compute-node: $*"; }

retry() {
  local n=1 delay=5
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

registry=""
if [[ "$image" =~ ^([0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com)/ ]]; then
  registry=${BASH_REMATCH[1]}
fi

case "$phase:$runtime" in
  start:pyxis)
    # Enroot and Pyxis directories of ParallelCluster's sample configuration (user guide,
    # "Running containerized jobs with Pyxis").
    install -d -m 1777 /var/enroot /run/enroot /run/pyxis
    install -d -m 0755 /etc/enroot
    if [ -f "${examples}/enroot/enroot.conf" ]; then
      cp "${examples}/enroot/enroot.conf" /etc/enroot/enroot.conf
      chmod 0644 /etc/enroot/enroot.conf
    fi
    ;;
  start:docker) ;;
  configured:pyxis)
    if [ -n "$registry" ]; then
      # Enroot reads registry credentials from $ENROOT_CONFIG_PATH/.credentials (netrc form);
      # the ECR password lasts 12 hours, the job refreshes it before each start.
      install -d -m 0700 /root/.config/enroot
      password=$(retry aws ecr get-login-password --region "$region")
      umask 077
      printf 'machine %s login AWS password %s\n' "$registry" "$password" >/root/.config/enroot/.credentials
    fi
    ;;
  configured:docker)
    if ! command -v docker >/dev/null 2>&1; then
      retry apt-get -qq update
      DEBIAN_FRONTEND=noninteractive retry apt-get -qq install -y docker.io
    fi
    if command -v nvidia-ctk >/dev/null 2>&1 && ! grep -qs nvidia /etc/docker/daemon.json; then
      nvidia-ctk runtime configure --runtime=docker
      systemctl restart docker
    fi
    if [ -n "$registry" ]; then
      aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
    fi
    retry docker pull --quiet "$image"
    log "pulled ${image}"
    ;;
  *)
    echo "unknown phase/runtime: ${phase}/${runtime} (start|configured, pyxis|docker)" >&2
    exit 64
    ;;
esac
