# --- static body of the SGLang serving job (slurm/sglang-job.sh) -------------------------------
# infra/planning/slurm_job.py puts the #SBATCH lines and the SGLANG_JOB_* data of one stack in
# front of this text; nothing here is templated. It runs as the batch script on the first node of
# the allocation and, through srun, as one task per node and server ("rank task", sglang_rank).
#
# Environment a submitter may set (sbatch passes its environment to the job):
#   SGLANG_CONTAINER_RUNTIME  docker | pyxis (default: the stack's)
#   SGLANG_ROUTER_URL         http://ROUTER:PORT: each server's rank-0 URL is POSTed to its
#                             /workers once the server answers (empty: no router registration)
#   SGLANG_ROUTER_API_KEY_FILE file holding the router's API key (sent as a Bearer header)
#   SGLANG_WORKERS_HOOK       executable run once the job serves, with the rank-0 URLs as args
#                             (e.g. to restart a router with --worker-urls)
#   SGLANG_JOB_LOG_DIR        where step logs and the workers file go (default: submit dir)
#   SGLANG_READY_TRIES / SGLANG_READY_INTERVAL   readiness loop bound (tries x seconds)
#   SGLANG_START_TIMEOUT      seconds ranks >= 1 may take to start their container
#   SGLANG_NCCL_WAIT_SECS / SGLANG_NCCL_POLL_SECS  transport check bound and period
set -euo pipefail

# A failure a requeue would repeat (layout, transport, readiness): never requeued.
export EXIT_FINAL=78

log() {
  printf '%s sglang-job[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SLURMD_NODENAME:-?}" "$*" >&2
}

# shellcheck disable=SC2329 # exported with export -f, called by the rank tasks
sglang_ifname() {
  # sglang_ifname PEER: the interface that reaches PEER (another node of the job), else the
  # default route's. NCCL's bootstrap and SGLang's gloo groups take one interface name.
  local dev=""
  if [ -n "${1:-}" ]; then
    dev=$(ip -o route get "$1" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }') || true
  fi
  [ -n "${dev}" ] || dev=$(ip -o route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }') || true
  printf '%s\n' "${dev}"
}

# shellcheck disable=SC2329 # exported with export -f, called by the rank tasks
sglang_watch_transport() {
  # sglang_watch_transport LOG MARKER KILLCMD...: require_efa on this node. Classifies LOG with
  # sglang-nccl-transport (the EC2 nodes' classifier) until this node's ranks chose a network;
  # anything but efa writes MARKER and runs KILLCMD (the rank then exits EXIT_FINAL).
  local file="$1" marker="$2" word why start=${SECONDS} warned=0
  shift 2
  while :; do
    word=$(sglang-nccl-transport --ranks "${SGLANG_JOB_LOCAL_RANKS}" "${file}" 2>/dev/null) || true
    case "${word}" in
      efa | socket | ib | libfabric-other) break ;;
      unknown) ;;
      *)
        log "WARNING: sglang-nccl-transport did not run (${word:-no output}): NCCL's transport is NOT checked"
        return 0
        ;;
    esac
    if [ $((SECONDS - start)) -ge "${SGLANG_NCCL_WAIT_SECS:-1800}" ] && grep -q 'NCCL INFO Using network' "${file}"; then
      word=$(sglang-nccl-transport "${file}" 2>/dev/null) || true
      break
    elif [ $((SECONDS - start)) -ge "${SGLANG_NCCL_WAIT_SECS:-1800}" ] && [ "${warned}" = 0 ]; then
      log "WARNING: no NCCL network line after ${SGLANG_NCCL_WAIT_SECS:-1800} s (NCCL not initialized yet); still watching"
      warned=1
    fi
    sleep "${SGLANG_NCCL_POLL_SECS:-10}"
  done
  why=$(sglang-nccl-transport --why "${file}" 2>&1 >/dev/null) || true
  if [ "${word}" = efa ]; then
    log "NCCL transport: efa (${why})"
    return 0
  fi
  printf 'NCCL transport is %s, not EFA (%s)\n' "${word}" "${why}" >"${marker}"
  log "ERROR: NCCL transport is ${word}, not EFA, and require_efa is on: stopping this job without requeue (${why}). Look at the 'NCCL INFO Using network' and 'NET/OFI' lines in ${file}"
  "$@" >/dev/null 2>&1 || true
}

# shellcheck disable=SC2329 # run by srun: bash -c 'sglang_rank ...'
sglang_rank() {
  # sglang_rank SLOT DIST_PORT NENV ENV... -- ARGV...: one rank of server slot SLOT here.
  # Computes group, node rank and head address from the job's node list (SLURMD_NODENAME's
  # position in it), appends --nnodes/--node-rank/--dist-init-addr to ARGV, starts the container
  # and waits for it. Exit: the server's exit status, EXIT_FINAL when NCCL was not on EFA.
  local slot="$1" dist_port="$2" nenv="$3"
  shift 3
  local -a env=("${@:1:nenv}")
  shift "${nenv}"
  [ "${1:-}" = -- ] && shift
  local -a argv=("$@") nodes addrs
  read -ra nodes <<<"${SGLANG_JOB_NODELIST}"
  read -ra addrs <<<"${SGLANG_JOB_ADDRS}"
  local idx=-1 i
  for i in "${!nodes[@]}"; do
    [ "${nodes[i]}" = "${SLURMD_NODENAME}" ] && idx=${i}
  done
  [ "${idx}" -ge 0 ] || { log "ERROR: ${SLURMD_NODENAME} is not in the job's node list ${SGLANG_JOB_NODELIST}"; return "${EXIT_FINAL}"; }
  local nps="${SGLANG_JOB_NODES_PER_SERVER}"
  local group=$((idx / nps)) rank=$((idx % nps))
  local head="${addrs[group * nps]}" peer=""
  [ "${#addrs[@]}" -gt 1 ] && peer="${addrs[(idx + 1) % ${#addrs[@]}]}"
  if [ "${nps}" -gt 1 ]; then
    argv+=(--nnodes "${nps}" --node-rank "${rank}" --dist-init-addr "${head}:${dist_port}")
  fi
  local ifname var
  ifname=$(sglang_ifname "${peer}")
  for var in GLOO_SOCKET_IFNAME NCCL_SOCKET_IFNAME; do
    printf '%s\n' "${env[@]}" | grep -q "^${var}=" && continue
    [ -n "${ifname}" ] && env+=("${var}=${ifname}")
  done

  local name="sglang-job${SLURM_JOB_ID}-s${slot}"
  local nodelog="${SGLANG_NODE_LOG_DIR:-/tmp}/${name}-${SLURMD_NODENAME}.log"
  local marker="${SGLANG_NODE_LOG_DIR:-/tmp}/${name}-${SLURMD_NODENAME}.transport-failed"
  rm -f "${marker}"
  log "server slot ${slot}: group ${group}, rank ${rank} of ${nps}, head ${head}: ${argv[*]}"
  local rc=0 watcher=""
  case "${SGLANG_CONTAINER_RUNTIME}" in
    docker)
      # Only this job's containers: named and labelled with the job id. A previous run of this
      # job (a requeue keeps the id) may have left one on this node.
      docker rm -f "${name}" >/dev/null 2>&1 || true
      # Expanded now: the trap also runs after sglang_rank has returned (its locals are gone).
      # shellcheck disable=SC2064
      trap "docker rm -f ${name} >/dev/null 2>&1 || true" EXIT
      trap 'exit 143' TERM INT
      local -a dargs=(
        --detach --name "${name}" --label "sglang.slurm-job=${SLURM_JOB_ID}"
        --gpus all --network host --ipc host
        --ulimit memlock=-1 --ulimit stack=67108864
        -v "${SGLANG_CACHE_DIR:-/var/lib/sglang/huggingface}:/root/.cache/huggingface"
      )
      local e dev
      for e in "${env[@]}"; do dargs+=(-e "${e}"); done
      for dev in /dev/infiniband/uverbs* /dev/gdrdrv; do
        [ -e "${dev}" ] && dargs+=(--device "${dev}")
      done
      [ "${SGLANG_JOB_FSX}" = 1 ] && dargs+=(-v /fsx:/fsx)
      [ -s "${SGLANG_SECRETS_ENV:-/run/sglang/secrets.env}" ] && dargs+=(--env-file "${SGLANG_SECRETS_ENV:-/run/sglang/secrets.env}")
      docker run "${dargs[@]}" --entrypoint "${argv[0]}" "${SGLANG_JOB_IMAGE}" "${argv[@]:1}" >/dev/null
      echo "sglang-job: started rank ${rank} slot ${slot} on ${SLURMD_NODENAME}"
      docker logs --follow "${name}" >"${nodelog}" 2>&1 &
      if [ "${SGLANG_JOB_REQUIRE_EFA}" = 1 ]; then
        sglang_watch_transport "${nodelog}" "${marker}" docker kill "${name}" &
        watcher=$!
      fi
      # In the background: bash runs the TERM trap (docker rm -f) only between commands.
      docker wait "${name}" >"${nodelog}.rc" &
      wait "$!" || rc=$?
      [ "${rc}" = 0 ] && rc=$(cat "${nodelog}.rc" 2>/dev/null || echo 1)
      ;;
    pyxis)
      # Inside the container already (srun --container-image): the step is the container, and
      # Slurm ends it with the step, so nothing outlives the job.
      local e
      for e in "${env[@]}"; do export "${e?}"; done
      echo "sglang-job: started rank ${rank} slot ${slot} on ${SLURMD_NODENAME}"
      "${argv[@]}" > >(tee -a "${nodelog}") 2>&1 &
      local pid=$!
      # shellcheck disable=SC2064 # expanded now, as above
      trap "kill ${pid} 2>/dev/null || true" EXIT
      trap 'exit 143' TERM INT
      if [ "${SGLANG_JOB_REQUIRE_EFA}" = 1 ]; then
        sglang_watch_transport "${nodelog}" "${marker}" kill "${pid}" &
        watcher=$!
      fi
      wait "${pid}" || rc=$?
      ;;
  esac
  [ -z "${watcher}" ] || kill "${watcher}" 2>/dev/null || true
  if [ -e "${marker}" ]; then
    log "server slot ${slot} rank ${rank}: $(cat "${marker}")"
    return "${EXIT_FINAL}"
  fi
  log "server slot ${slot} rank ${rank}: server exited with status ${rc}"
  return "${rc}"
}
export -f log sglang_ifname sglang_watch_transport sglang_rank

node_addr() {
  # The address Slurm reaches NODE at (NodeAddr; ParallelCluster sets the private IPv4), else
  # NODE's IPv4 from the resolver (the seed's getent ahostsv4).
  local addr
  addr=$(scontrol show node -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n 's/^NodeAddr=//p') || true
  if [ -z "${addr}" ] || [ "${addr}" = "$1" ]; then
    addr=$(getent ahostsv4 "$1" | awk 'NR == 1 { print $1 }') || true
  fi
  [ -n "${addr}" ] || addr="$1"
  printf '%s\n' "${addr}"
}

pyxis_image() {
  # Docker reference -> enroot's: a registry host is followed by '#' (pyxis --container-image).
  case "$1" in
    */*) [[ "${1%%/*}" == *[.:]* ]] && { printf '%s#%s\n' "${1%%/*}" "${1#*/}"; return; } ;;
  esac
  printf '%s\n' "$1"
}

prepare_image() {
  # Every node pulls the image once before any rank starts (docker runtime; bounded retries).
  # shellcheck disable=SC2016 # expanded by the bash that srun starts on each node
  local script='
    set -euo pipefail
    img="$1"
    case "${img}" in
      *.dkr.ecr.*.amazonaws.com/*)
        reg="${img%%/*}"
        aws ecr get-login-password --region "$(printf %s "${reg}" | cut -d. -f4)" |
          docker login --username AWS --password-stdin "${reg}" >/dev/null ;;
    esac
    for try in 1 2 3 4 5; do
      docker image inspect "${img}" >/dev/null 2>&1 && exit 0
      docker pull --quiet "${img}" >/dev/null && exit 0
      echo "pull ${img}: attempt ${try} failed" >&2
      sleep $((try * 30))
    done
    exit 1'
  srun --overlap --nodes="${#NODES[@]}" --ntasks-per-node=1 bash -c "${script}" prepare "${SGLANG_JOB_IMAGE}"
}

STEP_PIDS=()
STEP_LOGS=()

launch_step() {
  # launch_step SLOT NODE...: one rank task of server slot SLOT on each NODE, in the background.
  local slot="$1"
  shift
  local -n slot_argv="SGLANG_JOB_ARGV_${slot}"
  local list
  list=$(
    IFS=,
    printf '%s' "$*"
  )
  local out
  out="${LOG_DIR}/step-s${slot}-$(printf '%s' "${list}" | tr ',[]' '_..').log"
  local -a container=()
  if [ "${SGLANG_CONTAINER_RUNTIME}" = pyxis ]; then
    local mounts="${SGLANG_CACHE_DIR:-/var/lib/sglang/huggingface}:/root/.cache/huggingface"
    [ "${SGLANG_JOB_FSX}" = 1 ] && mounts+=",/fsx:/fsx"
    mounts+=",$(command -v sglang-nccl-transport || echo /usr/local/bin/sglang-nccl-transport):/usr/local/bin/sglang-nccl-transport"
    container=(--container-image="$(pyxis_image "${SGLANG_JOB_IMAGE}")" --container-mounts="${mounts}"
      --no-container-mount-home --container-writable)
  fi
  srun --overlap --kill-on-bad-exit=1 --nodes="$#" --ntasks="$#" --ntasks-per-node=1 \
    --nodelist="${list}" "${container[@]}" \
    bash -c 'sglang_rank "$@"' sglang-rank "${slot}" "${SGLANG_JOB_DIST_PORTS[slot]}" "${#SGLANG_JOB_ENV[@]}" \
    "${SGLANG_JOB_ENV[@]}" -- "${slot_argv[@]}" >>"${out}" 2>&1 &
  STEP_PIDS+=("$!")
  STEP_LOGS+=("${out}")
  log "slot ${slot}: started a rank task on ${list} (log ${out})"
}

steps_alive() {
  local pid
  for pid in "${STEP_PIDS[@]}"; do
    kill -0 "${pid}" 2>/dev/null || return 1
  done
}

step_ended() {
  # A rank task ended while the job was starting: finish with its exit status.
  local i
  log "ERROR: a rank task ended while the servers were starting (logs: ${STEP_LOGS[*]})"
  grep -h 'sglang-job.*ERROR' "${STEP_LOGS[@]}" >&2 || true
  for i in "${!STEP_PIDS[@]}"; do
    kill -0 "${STEP_PIDS[i]}" 2>/dev/null && continue
    wait "${STEP_PIDS[i]}" || finish "$?"
  done
  finish 1
}

CLEANED=0
cleanup() {
  # Stop this job's rank tasks (srun forwards the signal; each task removes its own container),
  # then, with docker, remove any container still labelled with this job id on every node.
  [ "${CLEANED}" = 0 ] || return 0
  CLEANED=1
  local pid
  for pid in "${STEP_PIDS[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
  for pid in "${STEP_PIDS[@]}"; do wait "${pid}" 2>/dev/null || true; done
  deregister_workers
  if [ "${SGLANG_CONTAINER_RUNTIME}" = docker ] && [ "${#NODES[@]}" -gt 0 ]; then
    # shellcheck disable=SC2016 # expanded on each node
    timeout 120 srun --overlap --nodes="${#NODES[@]}" --ntasks-per-node=1 bash -c \
      'ids=$(docker ps -aq --filter "label=sglang.slurm-job=${SLURM_JOB_ID}"); [ -z "${ids}" ] || docker rm -f ${ids} >/dev/null' \
      >/dev/null 2>&1 || log "no sweep step (Slurm is ending the job): each rank task removed its own container"
  fi
  log "cleanup done: this job's rank tasks and containers are stopped"
}

deregister_workers() {
  # The router forgets this run's workers (DELETE /workers/ID), one bounded try each.
  local id
  [ -n "${SGLANG_ROUTER_URL:-}" ] && [ -s "${LOG_DIR:-/nonexistent}/router-worker-ids" ] || return 0
  while read -r id; do
    [ -n "${id}" ] || continue
    local -a auth=()
    if [ -r "${SGLANG_ROUTER_API_KEY_FILE:-/nonexistent}" ]; then
      (umask 077 && printf 'Authorization: Bearer %s\n' "$(cat "${SGLANG_ROUTER_API_KEY_FILE}")" >"${LOG_DIR}/.router-auth")
      auth=(-H "@${LOG_DIR}/.router-auth")
    fi
    if curl -fsS -o /dev/null --max-time 10 "${auth[@]}" -X DELETE "${SGLANG_ROUTER_URL%/}/workers/${id}"; then
      log "router ${SGLANG_ROUTER_URL}: removed worker ${id}"
    else
      log "WARNING: router ${SGLANG_ROUTER_URL}: DELETE /workers/${id} failed"
    fi
    rm -f "${LOG_DIR}/.router-auth"
  done <"${LOG_DIR}/router-worker-ids"
  rm -f "${LOG_DIR}/router-worker-ids"
}

register_workers() {
  # The router learns the rank-0 URLs: POST /workers {"url": ...} (sglang-router 0.3.2 and smg),
  # bounded retries; the API key travels in a header file, never on a command line.
  local url code try id
  printf '%s\n' "$@" >"${LOG_DIR}/workers"
  if [ -n "${SGLANG_ROUTER_URL:-}" ]; then
    local -a auth=()
    if [ -r "${SGLANG_ROUTER_API_KEY_FILE:-/nonexistent}" ]; then
      auth=(-H "@${LOG_DIR}/.router-auth")
      (umask 077 && printf 'Authorization: Bearer %s\n' "$(cat "${SGLANG_ROUTER_API_KEY_FILE}")" >"${LOG_DIR}/.router-auth")
    fi
    for url in "$@"; do
      for try in 1 2 3 4 5; do
        code=$(curl -sS -o "${LOG_DIR}/.router-reply" -w '%{http_code}' --max-time 10 "${auth[@]}" \
          -H 'Content-Type: application/json' -X POST "${SGLANG_ROUTER_URL%/}/workers" \
          --data "{\"url\": \"${url}\"}" 2>/dev/null) || code=000
        case "${code}" in 2??) break ;; esac
        log "router ${SGLANG_ROUTER_URL}: POST /workers ${url}: HTTP ${code} (attempt ${try}/5)"
        sleep $((try * 5))
      done
      case "${code}" in
        2??)
          # The reply names the worker's id (sglang-router 0.3.2 / smg: {"worker_id": UUID, ...}):
          # cleanup removes it with DELETE /workers/ID, so a requeue on other nodes leaves no
          # stale URL behind.
          id=$(sed -n 's/.*"worker_id" *: *"\([0-9a-fA-F-]*\)".*/\1/p' "${LOG_DIR}/.router-reply")
          [ -z "${id}" ] || printf '%s\n' "${id}" >>"${LOG_DIR}/router-worker-ids"
          log "router ${SGLANG_ROUTER_URL}: registered ${url}"
          ;;
        *) log "WARNING: router ${SGLANG_ROUTER_URL} did not take ${url}; add it by hand: curl -X POST ${SGLANG_ROUTER_URL%/}/workers -d '{\"url\": \"${url}\"}'" ;;
      esac
    done
    rm -f "${LOG_DIR}/.router-auth" "${LOG_DIR}/.router-reply"
  fi
  if [ -n "${SGLANG_WORKERS_HOOK:-}" ]; then
    "${SGLANG_WORKERS_HOOK}" "$@" || log "WARNING: ${SGLANG_WORKERS_HOOK} exited with status $?"
  fi
}

finish() {
  # finish RC [norequeue]: stop everything; requeue a crash (not a final failure, not Slurm's
  # own TERM: on node failure Slurm requeues the job itself, --requeue) while restarts remain.
  local rc="$1"
  cleanup
  if [ "${rc}" != 0 ] && [ "${rc}" != "${EXIT_FINAL}" ] && [ -z "${2:-}" ] &&
    [ "${SLURM_RESTART_COUNT:-0}" -lt "${SGLANG_JOB_MAX_REQUEUES}" ]; then
    log "a rank ended with status ${rc}: requeueing the job (restart $((${SLURM_RESTART_COUNT:-0} + 1)) of ${SGLANG_JOB_MAX_REQUEUES}); all ranks restart together"
    scontrol requeue "${SLURM_JOB_ID}" || log "ERROR: scontrol requeue ${SLURM_JOB_ID} failed"
  elif [ -n "${2:-}" ]; then
    log "stopped by a signal (status ${rc}): scancel ends the job; after a node failure Slurm requeues it itself (--requeue)"
  elif [ "${rc}" != 0 ]; then
    log "ERROR: the job ends with status ${rc} and is not requeued"
  fi
  exit "${rc}"
}

main() {
  : "${SLURM_JOB_ID:?run this with sbatch}"
  SGLANG_CONTAINER_RUNTIME="${SGLANG_CONTAINER_RUNTIME:-${SGLANG_JOB_RUNTIME}}"
  case "${SGLANG_CONTAINER_RUNTIME}" in
    docker | pyxis) ;;
    *) log "ERROR: SGLANG_CONTAINER_RUNTIME is ${SGLANG_CONTAINER_RUNTIME}; allowed: docker, pyxis" && exit "${EXIT_FINAL}" ;;
  esac
  export SGLANG_CONTAINER_RUNTIME
  LOG_DIR="${SGLANG_JOB_LOG_DIR:-${PWD}}/sglang-${SLURM_JOB_ID}"
  mkdir -p "${LOG_DIR}"

  NODES=()
  mapfile -t NODES < <(scontrol show hostnames "${SLURM_JOB_NODELIST}")
  if [ "${#NODES[@]}" != "${SGLANG_JOB_NNODES}" ]; then
    log "ERROR: the allocation has ${#NODES[@]} node(s) (${SLURM_JOB_NODELIST}); this layout needs ${SGLANG_JOB_NNODES}"
    exit "${EXIT_FINAL}"
  fi
  local -a addrs=()
  local n
  for n in "${NODES[@]}"; do addrs+=("$(node_addr "${n}")"); done
  export SGLANG_JOB_NODELIST="${NODES[*]}" SGLANG_JOB_ADDRS="${addrs[*]}"
  log "job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}) on ${NODES[*]} (${addrs[*]}), runtime ${SGLANG_CONTAINER_RUNTIME}"
  trap 'finish 143 norequeue' TERM
  trap 'finish 130 norequeue' INT

  [ "${SGLANG_CONTAINER_RUNTIME}" != docker ] || prepare_image || finish 1

  # Ranks >= 1 first: they wait in the rendezvous for rank 0, which starts last.
  local nps="${SGLANG_JOB_NODES_PER_SERVER}" i
  local -a followers=() heads=()
  for i in "${!NODES[@]}"; do
    if [ $((i % nps)) = 0 ]; then heads+=("${NODES[i]}"); else followers+=("${NODES[i]}"); fi
  done
  if [ "${#followers[@]}" -gt 0 ]; then
    launch_step 0 "${followers[@]}"
    local deadline=$((SECONDS + ${SGLANG_START_TIMEOUT:-1800}))
    until [ "$(grep -c '^sglang-job: started rank' "${STEP_LOGS[0]}" 2>/dev/null)" -ge "${#followers[@]}" ]; do
      steps_alive || step_ended
      [ "${SECONDS}" -lt "${deadline}" ] || { log "ERROR: ranks >= 1 did not start within ${SGLANG_START_TIMEOUT:-1800} s"; finish "${EXIT_FINAL}"; }
      sleep 2
    done
    log "ranks >= 1 started on ${followers[*]}"
  fi
  local slot
  for ((slot = 0; slot < SGLANG_JOB_SLOTS; slot++)); do
    launch_step "${slot}" "${heads[@]}"
  done

  # Bounded readiness loop on rank 0 of every server: /health, then /v1/models.
  local -a urls=() pending=()
  local g
  for ((g = 0; g < ${#heads[@]}; g++)); do
    for ((slot = 0; slot < SGLANG_JOB_SLOTS; slot++)); do
      urls+=("http://${addrs[g * nps]}:${SGLANG_JOB_PORTS[slot]}")
    done
  done
  pending=("${urls[@]}")
  local tries="${SGLANG_READY_TRIES:-360}" interval="${SGLANG_READY_INTERVAL:-10}" try url
  local -a still
  for ((try = 1; try <= tries; try++)); do
    still=()
    for url in "${pending[@]}"; do
      if curl -fsS --max-time 5 "${url}/health" >/dev/null 2>&1 &&
        curl -fsS --max-time 5 "${url}/v1/models" >/dev/null 2>&1; then
        log "ready: ${url} answers /health and /v1/models (check ${try}/${tries})"
      else
        still+=("${url}")
      fi
    done
    pending=("${still[@]}")
    [ "${#pending[@]}" -gt 0 ] || break
    steps_alive || step_ended
    log "waiting for ${pending[*]} (check ${try}/${tries})"
    sleep "${interval}"
  done
  if [ "${#pending[@]}" -gt 0 ]; then
    log "ERROR: ${pending[*]} not ready after ${tries} x ${interval} s"
    finish "${EXIT_FINAL}"
  fi
  if [ "${SGLANG_JOB_REQUIRE_EFA}" = 1 ]; then
    # require_efa: every node's rank task must have classified its NCCL log as efa before the
    # router hears of the server (a non-efa verdict ends that task with EXIT_FINAL).
    local deadline=$((SECONDS + ${SGLANG_NCCL_WAIT_SECS:-1800}))
    # "NOT checked": the classifier could not run on that node; as on EC2, say so and go on.
    until [ "$(cat "${STEP_LOGS[@]}" | grep -cE 'NCCL transport: efa|transport is NOT checked')" -ge "${#NODES[@]}" ]; do
      steps_alive || step_ended
      [ "${SECONDS}" -lt "${deadline}" ] || { log "ERROR: no NCCL transport verdict from every node within ${SGLANG_NCCL_WAIT_SECS:-1800} s (logs: ${STEP_LOGS[*]})"; finish "${EXIT_FINAL}"; }
      sleep 1
    done
    grep -hE 'NCCL transport: efa|transport is NOT checked' "${STEP_LOGS[@]}" >&2
  fi
  log "serving: ${urls[*]}"
  register_workers "${urls[@]}"

  # Serve until a rank ends (or Slurm ends the job: the TERM trap cleans up).
  local rc=0
  wait -n "${STEP_PIDS[@]}" || rc=$?
  log "a rank task ended with status ${rc}"
  [ "${rc}" != 0 ] || rc=1
  finish "${rc}"
}

main "$@"
