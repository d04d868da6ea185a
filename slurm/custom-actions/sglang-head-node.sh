#!/bin/bash
# ParallelCluster OnNodeConfigured action of the head node (SGLang SLURM backend).
# Static file: everything comes in as arguments (HeadNode.CustomActions.OnNodeConfigured.Args,
# rendered from the stack spec by infra/planning/slurm.py), nothing is templated.
#
# Usage: sglang-head-node.sh REGION RUNTIME JOB_SCRIPT_S3_URI JOB_NAME
#   RUNTIME           pyxis | docker: pyxis enables the Pyxis SPANK plugin cluster-wide
#   JOB_SCRIPT_S3_URI the serving job script the stack uploaded (s3://bucket/job/...)
#   JOB_NAME          Slurm job name; the job is submitted once, as the cluster's default user,
#                     and not again while a job of that name is pending or running
# Idempotent: a second run changes nothing and submits no second job.
# Every absolute path hangs off SGLANG_ROOT (empty on nodes; a scratch directory in the
# rehearsal, tests/conformance/test_slurm_actions.py).
set -euo pipefail

if [ "$#" -ne 4 ]; then
  echo "usage: $0 REGION RUNTIME JOB_SCRIPT_S3_URI JOB_NAME" >&2
  exit 64
fi
region=$1
runtime=$2
job_uri=$3
job_name=$4
root=${SGLANG_ROOT:-}
slurm_bin="${root}/opt/slurm/bin"
slurm_etc="${root}/opt/slurm/etc"
examples="${root}/opt/parallelcluster/examples"
state="${root}/opt/sglang"

log() { echo "sglang-head-node: $*" >&2; }

retry() {
  # retry CMD...: up to 5 attempts, 5/10/20/40 s apart (S3 throttling, IAM propagation).
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

# The cluster's default user (ubuntu on ubuntu2204) runs the job: Pyxis/Enroot containers are
# unprivileged, and a root job could reach everything on every node.
# shellcheck disable=SC1091  # written by ParallelCluster on every node
. "${root}/etc/parallelcluster/cfnconfig"
user=${cfn_cluster_user:?cfn_cluster_user missing from /etc/parallelcluster/cfnconfig}

# 1. Pyxis (ParallelCluster >= 3.11.1 ships it disabled; its sample SPANK config is under
#    /opt/parallelcluster/examples: user guide, "Running containerized jobs with Pyxis").
if [ "$runtime" = pyxis ] && [ ! -f "${slurm_etc}/plugstack.conf.d/pyxis.conf" ]; then
  install -d -m 1777 "${root}/var/enroot" "${root}/run/enroot" "${root}/run/pyxis"
  install -d -m 0755 "${slurm_etc}/plugstack.conf.d"
  cp "${examples}/spank/plugstack.conf" "${slurm_etc}/plugstack.conf"
  cp "${examples}/pyxis/pyxis.conf" "${slurm_etc}/plugstack.conf.d/pyxis.conf.new"
  mv -f "${slurm_etc}/plugstack.conf.d/pyxis.conf.new" "${slurm_etc}/plugstack.conf.d/pyxis.conf"
  "${slurm_bin}/scontrol" reconfigure
  log "Pyxis enabled"
fi

# 2. The model store's weights directory, writable by the job's user (the head node mounts /fsx
#    like every node; the job downloads weights there once when the stack has no S3 source).
if [ -d "${root}/fsx" ]; then
  install -d -m 0755 "${root}/fsx/models"
  chown "$user" "${root}/fsx/models"
fi

# 3. The job script: downloaded beside the old one, then moved into place (never half-written).
install -d -m 0755 "$state"
retry aws s3 cp --only-show-errors --region "$region" "$job_uri" "${state}/sglang-serve.sbatch.new"
chmod 0755 "${state}/sglang-serve.sbatch.new"
mv -f "${state}/sglang-serve.sbatch.new" "${state}/sglang-serve.sbatch"

# 4. Submit the serving job once: not while a job of that name is pending or running.
queued=$("${slurm_bin}/squeue" --noheader --name "$job_name" --format %i)
if [ -n "$queued" ]; then
  log "job ${job_name} already queued (${queued//$'\n'/ }); not submitting again"
else
  job_id=$(runuser -u "$user" -- "${slurm_bin}/sbatch" --parsable --job-name "$job_name" \
    --chdir "${root}/home/${user}" "${state}/sglang-serve.sbatch")
  log "submitted job ${job_name} as ${user}: ${job_id}"
fi
