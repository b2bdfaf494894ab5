#!/usr/bin/env bash
# Runs COMMAND as NPROC local processes of one JAX run (multi-process training on one machine).
#
#   scripts/multiprocess.sh NPROC COMMAND [ARG...]
#   scripts/multiprocess.sh 2 lead-jax train --multihost --config=configs/vae_humanml3d.py \
#       --workdir=runs/vae --config.data.dir=datasets/HumanML3D
#
# Each process gets JAX_COORDINATOR_ADDRESS=127.0.0.1:<a free port>, LEAD_JAX_NUM_PROCESSES=NPROC
# and LEAD_JAX_PROCESS_ID=<0..NPROC-1>, which `lead_jax.train.mesh.initialize_distributed` passes to
# `jax.distributed.initialize` (CPU collectives through gloo) when the config has multihost=True
# (`--multihost` or `--config.multihost=True`; without it the command refuses to start). Process 0
# coordinates and writes the logs, metrics and (with the others) checkpoints. On CPU each process
# has one device; on a machine with several accelerators give each process its own, e.g. with
# JAX_LOCAL_DEVICE_IDS or CUDA_VISIBLE_DEVICES set per process by a wrapper.
# When one process fails the others are stopped; the exit status is the first failure's.
# SIGINT/SIGTERM are passed on to every process (training saves a checkpoint on SIGTERM).
set -uo pipefail

if [[ $# -lt 2 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NPROC COMMAND [ARG...]" >&2
  exit 2
fi
nproc=$1
shift
free_port='import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
port=$(python3 -c "$free_port") || exit 1
export JAX_COORDINATOR_ADDRESS="127.0.0.1:${port}" LEAD_JAX_NUM_PROCESSES="${nproc}"

pids=()
signalled=0
stop() { kill -s "$1" "${pids[@]}" 2>/dev/null; }
trap 'signalled=1; stop TERM' TERM
trap 'signalled=1; stop INT' INT
for ((i = 0; i < nproc; i++)); do
  LEAD_JAX_PROCESS_ID=$i "$@" &
  pids+=($!)
done

status=0
killer=""
left=("${pids[@]}")
while [[ ${#left[@]} -gt 0 ]]; do
  finished=""
  wait -n -p finished "${left[@]}"
  rc=$?
  [[ -z "${finished:-}" ]] && continue  # interrupted by a signal: the trap passed it on
  left=("${left[@]/$finished}")
  left=(${left[@]})
  if [[ $rc -ne 0 && $status -eq 0 && $signalled -eq 0 ]]; then
    # A process failed: the others would wait for it in their next collective. Stop them (KILL
    # after a grace period, enough for a SIGTERM checkpoint).
    status=$rc
    stop TERM
    (sleep 30; kill -s KILL "${pids[@]}" 2>/dev/null) &
    killer=$!
  fi
done
[[ -n "$killer" ]] && kill "$killer" 2>/dev/null
[[ $signalled -eq 1 && $status -eq 0 ]] && status=143
exit "$status"
