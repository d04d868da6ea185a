#!/usr/bin/env bash
# Install the real tools the conformance tests run, under .tools/ (idempotent, no root needed
# except for what apt itself wants):
#   .tools/cloud-init/     Debian's cloud-init package, unpacked (its schema validator)
#   .tools/civenv/         the Python packages that validator imports
#   .tools/router-venv/    sglang-router (the real router parser and binary)
#   .tools/smg-venv/       smg (the default gateway: its real parser and binary)
#   .tools/sglang-venv/    sglang (the real launch_server parser) on the CPU build of torch
#   .tools/parliament-venv/ parliament (IAM policy linter with AWS's action/resource data)
#   .tools/sglang-resolve-venv/  sglang with what its full ServerArgs resolution imports
#                                (transformers, ...) on the CPU build of torch
#   .tools/pcluster-venv/  aws-parallelcluster 3.16.1 (its cluster-config schema, SLURM backend)
#   .tools/cfn-lint-venv/  cfn-lint (the SLURM backend's CloudFormation template)
#   slurmctld, slurmd, slurm-client  Debian's Slurm (apt, system-wide) for the job rehearsal
# TOOLS_DIR overrides where they go (default .tools/ of this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools="${TOOLS_DIR:-${root}/.tools}"
mkdir -p "${tools}"
py="${PYTHON:-python3}"
pipq=(--quiet --disable-pip-version-check)

# --- cloud-init (not on PyPI): Debian bookworm's package, unpacked ---------------------------
if [ ! -f "${tools}/cloud-init/.done" ]; then
  work=$(mktemp -d)
  mkdir -p "${work}/lists/partial" "${work}/cache/archives/partial"
  apt_opts=(-o "Dir::State::Lists=${work}/lists" -o "Dir::Cache=${work}/cache" -o Debug::NoLocking=1)
  apt-get "${apt_opts[@]}" -qq update
  (cd "${work}" && apt-get "${apt_opts[@]}" -qq download cloud-init)
  rm -rf "${tools}/cloud-init"
  dpkg-deb -x "${work}"/cloud-init_*_all.deb "${tools}/cloud-init"
  rm -rf "${work}"
  touch "${tools}/cloud-init/.done"
fi
if [ ! -f "${tools}/civenv/.done" ]; then
  "${py}" -m venv "${tools}/civenv"
  "${tools}/civenv/bin/pip" install "${pipq[@]}" -r tools/requirements-cloud-init.txt
  touch "${tools}/civenv/.done"
fi

# --- sglang-router ----------------------------------------------------------------------------
if [ ! -f "${tools}/router-venv/.done" ]; then
  "${py}" -m venv "${tools}/router-venv"
  "${tools}/router-venv/bin/pip" install "${pipq[@]}" -r tools/requirements-router.txt
  touch "${tools}/router-venv/.done"
fi

# --- smg (the default gateway; its own venv: it ships its own launcher named smg too) -------
if [ ! -f "${tools}/smg-venv/.done" ]; then
  rm -rf "${tools}/smg-venv"
  "${py}" -m venv "${tools}/smg-venv"
  "${tools}/smg-venv/bin/pip" install "${pipq[@]}" -r tools/requirements-smg.txt
  touch "${tools}/smg-venv/.done"
fi

# --- sglang (parser only; CPU torch, no GPU libraries) -----------------------------------------
if [ ! -f "${tools}/sglang-venv/.done" ]; then
  "${py}" -m venv "${tools}/sglang-venv"
  # torch first and alone: 2.13.0 is the CPU wheel this machine kind carries; pinning it keeps
  # pip from pulling the CUDA build and its GPU packages.
  "${tools}/sglang-venv/bin/pip" install "${pipq[@]}" torch==2.13.0
  "${tools}/sglang-venv/bin/pip" install "${pipq[@]}" -r tools/requirements-sglang-parser.txt
  "${tools}/sglang-venv/bin/pip" install "${pipq[@]}" --no-deps sglang==0.5.23
  touch "${tools}/sglang-venv/.done"
fi
# --- logrotate: the boot rehearsal dry-runs /etc/logrotate.d/sglang and verifies the
# logrotate.timer drop-in against the real unit (Debian package; apt wants root) ---------
if [ ! -x /usr/sbin/logrotate ] || [ ! -f /lib/systemd/system/logrotate.timer ]; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get -qq update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y logrotate
fi
# --- parliament (IAM policy linter: action names, resource ARN formats) ----------------------
if [ ! -f "${tools}/parliament-venv/.done" ]; then
  "${py}" -m venv "${tools}/parliament-venv"
  "${tools}/parliament-venv/bin/pip" install "${pipq[@]}" -r tools/requirements-parliament.txt
  touch "${tools}/parliament-venv/.done"
fi

# --- sglang full resolution (resolve_once on an emulated GPU) ------------------------------------
if [ ! -f "${tools}/sglang-resolve-venv/.done" ]; then
  rm -rf "${tools}/sglang-resolve-venv"
  "${py}" -m venv "${tools}/sglang-resolve-venv"
  # torch first and alone (the CPU wheel), then every other package pinned and --no-deps, so pip
  # never resolves sglang's own requirements (torch 2.14.1 CUDA, flashinfer, sglang-kernel).
  "${tools}/sglang-resolve-venv/bin/pip" install "${pipq[@]}" torch==2.13.0
  "${tools}/sglang-resolve-venv/bin/pip" install "${pipq[@]}" --no-deps -r tools/requirements-sglang-resolve.txt
  "${tools}/sglang-resolve-venv/bin/pip" install "${pipq[@]}" --no-deps sglang==0.5.23
  touch "${tools}/sglang-resolve-venv/.done"
fi
# --- aws-parallelcluster (cluster-config schema) and cfn-lint: the SLURM backend -------------
# Separate venvs: aws-parallelcluster pins packaging~=25.0, which conflicts with pulumi's.
if [ ! -f "${tools}/pcluster-venv/.done" ]; then
  rm -rf "${tools}/pcluster-venv"
  "${py}" -m venv "${tools}/pcluster-venv"
  "${tools}/pcluster-venv/bin/pip" install "${pipq[@]}" -r tools/requirements-pcluster.txt
  touch "${tools}/pcluster-venv/.done"
fi
if [ ! -f "${tools}/cfn-lint-venv/.done" ]; then
  rm -rf "${tools}/cfn-lint-venv"
  "${py}" -m venv "${tools}/cfn-lint-venv"
  "${tools}/cfn-lint-venv/bin/pip" install "${pipq[@]}" -r tools/requirements-cfn-lint.txt
  touch "${tools}/cfn-lint-venv/.done"
fi
# --- Slurm (the job rehearsal, tests/conformance/test_slurm_job.py): Debian's slurmctld, slurmd
# and client commands, run by the test itself (auth/none, daemons in the foreground) -----------
install_slurm() {
  local t
  for t in slurmctld slurmd sbatch srun scontrol squeue sinfo scancel; do
    command -v "${t}" >/dev/null || break
  done
  command -v "${t}" >/dev/null && return 0
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get -qq update
  # Without a running init, the packages' postinst cannot start the daemons; the test starts its
  # own, so a refused start is fine (policy-rc.d, or no systemd).
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
    slurmctld slurmd slurm-client
}
install_slurm
echo "conformance tools ready in ${tools}"
