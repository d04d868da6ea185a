#!/bin/bash
# ParallelCluster custom action of the GPU nodes (SGLang SLURM backend): OnNodeStart prepares
# the container runtime's directories (every boot: /run is a tmpfs), OnNodeConfigured installs
# what the runtime needs and pulls the serving image once, so the job does not wait for it.
# Static file: everything comes in as arguments (SlurmQueues[].CustomActions.*.Args, rendered
# by infra/planning/slurm.py), nothing is templated.
#
# Usage: sglang-compute-node.sh PHASE REGION RUNTIME IMAGE
#   PHASE   start | configured
#   RUNTIME pyxis | docker
#   IMAGE   the EFA-complete serving image (an ECR reference is logged in to with the node role)
# Idempotent. Every absolute path hangs off SGLANG_ROOT (empty on nodes).
set -euo pipefail

if [ "$#" -ne 4 ]; then
  echo "usage: $0 start|configured REGION pyxis|docker IMAGE" >&2
  exit 64
fi
phase=$1
region=$2
runtime=$3
image=$4
root=${SGLANG_ROOT:-}
examples="${root}/opt/parallelcluster/examples"

log() { echo "sglang-compute-node: $*" >&2; }

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

registry=""
if [[ "$image" =~ ^([0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com)/ ]]; then
  registry=${BASH_REMATCH[1]}
fi

case "$phase:$runtime" in
  start:pyxis)
    # Enroot and Pyxis directories of ParallelCluster's sample configuration (user guide,
    # "Running containerized jobs with Pyxis").
    install -d -m 1777 "${root}/var/enroot" "${root}/run/enroot" "${root}/run/pyxis"
    install -d -m 0755 "${root}/etc/enroot"
    if [ -f "${examples}/enroot/enroot.conf" ]; then
      cp "${examples}/enroot/enroot.conf" "${root}/etc/enroot/enroot.conf"
      chmod 0644 "${root}/etc/enroot/enroot.conf"
    fi
    log "enroot and pyxis directories ready"
    ;;
  start:docker) ;;
  configured:pyxis)
    if [ -n "$registry" ]; then
      # Enroot reads registry credentials from $ENROOT_CONFIG_PATH/.credentials (netrc form,
      # default ~/.config/enroot) of the user running the job: the cluster's default user. The
      # ECR password lasts 12 hours: the job refreshes it before a restart.
      # shellcheck disable=SC1091  # written by ParallelCluster on every node
      . "${root}/etc/parallelcluster/cfnconfig"
      user=${cfn_cluster_user:?cfn_cluster_user missing from /etc/parallelcluster/cfnconfig}
      dir="${root}/home/${user}/.config/enroot"
      password=$(retry aws ecr get-login-password --region "$region")
      install -d -m 0700 "$dir"
      chown "$user" "$dir"
      # /home is shared by every node (ParallelCluster exports it from the head node): each node
      # writes its own temporary file and renames it, so concurrent writers never interleave.
      tmp="${dir}/.credentials.$(hostname).$$"
      umask 077
      printf 'machine %s login AWS password %s\n' "$registry" "$password" >"$tmp"
      chown "$user" "$tmp"
      mv -f "$tmp" "${dir}/.credentials"
      log "enroot credentials for ${registry} written for ${user}"
    fi
    ;;
  configured:docker)
    if ! command -v docker >/dev/null 2>&1; then
      retry apt-get -qq update
      retry env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y docker.io
    fi
    # The job runs as the cluster's default user: it needs the docker group.
    # shellcheck disable=SC1091  # written by ParallelCluster on every node
    . "${root}/etc/parallelcluster/cfnconfig"
    usermod -aG docker "${cfn_cluster_user:?cfn_cluster_user missing from /etc/parallelcluster/cfnconfig}"
    if command -v nvidia-ctk >/dev/null 2>&1 && ! grep -qs nvidia "${root}/etc/docker/daemon.json"; then
      nvidia-ctk runtime configure --runtime=docker
      systemctl restart docker
    fi
    if [ -n "$registry" ]; then
      password=$(retry aws ecr get-login-password --region "$region")
      printf '%s' "$password" | docker login --username AWS --password-stdin "$registry"
    fi
    retry docker pull --quiet "$image"
    log "pulled ${image}"
    ;;
  *)
    echo "unknown phase/runtime: ${phase}/${runtime} (start|configured, pyxis|docker)" >&2
    exit 64
    ;;
esac
