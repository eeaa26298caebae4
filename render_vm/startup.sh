#!/bin/bash
# Fast Render fallback VM: startup script (instance metadata "startup-script").
#
# Runs the render worker once, then deletes this VM, whatever the outcome: a
# fallback VM exists for one job and must never idle on a GPU bill. Its
# settings are instance metadata (fast-render-*), written by the launcher
# (functions/vm_spec.py). Besides this self-delete, the VM has a maximum run
# duration (action DELETE) and the watchdog reaps orphans.
#
# What runs is chosen by the metadata, the same way everywhere:
#   fast-render-worker-image    set: the worker's container (a Deep Learning VM
#                               image: Docker and the NVIDIA container toolkit
#                               are there; `install-nvidia-driver=True` installs
#                               the driver at first boot). Wait for the driver,
#                               log Docker in to the image's registry with this
#                               VM's own token, pull, run it on the GPU.
#                               With fast-render-gpu-count 0 (a CPU-only machine
#                               on the Deep Learning VM CPU image): no driver to
#                               wait for and no --gpus; the rest is the same.
#   fast-render-worker-command  otherwise: a command line run with bash -c (the
#                               local cloud's `python -m render_vm worker`).
# Either way the worker reads its job from this VM's metadata.
#
# Optional metadata (defaults in brackets): fast-render-gpu-count [1]: the VM's
# GPUs, 0 for none (unset: a launcher from before CPU-only VMs, which only made
# GPU VMs); fast-render-driver-timeout-s [600]:
# how long to wait for `nvidia-smi` and the Docker daemon; fast-render-pull-attempts
# [5] and fast-render-retry-backoff-s [10]: the pull's retries (backoff x attempt).
# VM_BOOT_TIMEOUT_S (900 s by default) must stay above the driver wait plus the pull.
set -euo pipefail

METADATA_HOST=${GCE_METADATA_HOST:-metadata.google.internal}
COMPUTE_API=https://compute.googleapis.com
name="" zone="" project="" work=""

say() { echo "fast-render: $*"; }

metadata() {  # a metadata value; fails (non-zero) when it is not there
  curl -fsS --retry 3 --retry-delay 1 -H "Metadata-Flavor: Google" \
    "http://${METADATA_HOST}/computeMetadata/v1/$1"
}

attribute() {  # an instance attribute, empty when unset (404)
  metadata "instance/attributes/$1" 2>/dev/null || true
}

access_token() {  # this VM's service account token (no key file: the metadata server mints it)
  metadata instance/service-accounts/default/token \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

# shellcheck disable=SC2317  # reached only from on_exit (shellcheck 0.9 sees trap handlers as unreachable)
delete_self() {
  if [[ -z ${name} || -z ${zone} || -z ${project} ]]; then
    say "cannot delete this VM: its name, zone or project is unknown (max run duration and the watchdog remain)"
    return 1
  fi
  local token attempt
  token=$(access_token 2>/dev/null || true)
  for attempt in 1 2 3 4 5; do
    if curl -fsS -X DELETE -H "Authorization: Bearer ${token}" \
      "${COMPUTE_API}/compute/v1/projects/${project}/zones/${zone}/instances/${name}" >/dev/null; then
      return 0
    fi
    sleep $((attempt * 5))
  done
  say "the self-delete failed 5 times (max run duration and the watchdog remain)"
  return 1
}

# shellcheck disable=SC2317  # reached only from the traps (same false positive)
remove_work() {  # the registry login and the scratch space go with the run (best effort)
  if [[ -n ${work} ]]; then rm -rf "${work}" || true; fi
}

# shellcheck disable=SC2317  # the EXIT trap's handler (same false positive)
on_exit() {
  # Runs on every exit of the script, a failed step's included (set -e lands here too).
  local status=$?
  trap - EXIT
  set +e  # every delete attempt runs; a signal meanwhile (the delete itself stops this VM) just ends it
  remove_work
  say "exiting with status ${status}; deleting this VM"
  delete_self
  exit "${status}"
}

# shellcheck disable=SC2317  # the signal traps' handler (same false positive)
on_signal() {
  # A signal means the guest is being shut down: the VM is being deleted (the
  # completion's clean-up, the watchdog), preempted or stopped, by someone who
  # decides its fate. End at once, without a self-delete that would only delay it.
  trap - EXIT
  remove_work
  say "stopped by SIG$1 (the VM is shutting down); no self-delete"
  exit $((128 + $2))
}
trap on_exit EXIT
trap 'on_signal HUP 1' HUP
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds
  local timeout_s=$1 what=$2 waited=0 step=5
  shift 2
  if ((timeout_s < 10)); then step=1; fi
  until "$@" >/dev/null 2>&1; do
    if ((waited >= timeout_s)); then
      say "${what} not ready after ${timeout_s} s; giving up"
      return 1
    fi
    sleep "${step}"
    waited=$((waited + step))
  done
  say "${what} ready after about ${waited} s"
}

registry_login() {  # registry_login HOST: Docker logs in with this VM's own token
  local host=$1 token
  token=$(access_token)
  # An access token as the password of user oauth2accesstoken (Artifact Registry's
  # "access token" authentication); --password-stdin keeps it out of the process list.
  printf '%s' "${token}" | docker login -u oauth2accesstoken --password-stdin "https://${host}" >/dev/null
}

pull_image() {  # pull_image IMAGE: log in and pull, with retries
  local image=$1 attempts backoff attempt host=${1%%/*}
  attempts=$(attribute fast-render-pull-attempts); attempts=${attempts:-5}
  backoff=$(attribute fast-render-retry-backoff-s); backoff=${backoff:-10}
  for ((attempt = 1; attempt <= attempts; attempt++)); do
    # Log in again on every attempt: the token may have expired, the last login failed.
    if { [[ ${host} != *.* ]] || registry_login "${host}"; } && docker pull --quiet "${image}"; then
      return 0
    fi
    say "pull of ${image} failed (attempt ${attempt} of ${attempts})"
    if ((attempt < attempts)); then sleep $((attempt * backoff)); fi
  done
  return 1
}

run_container() {  # run_container IMAGE JOB GPUS: the worker (on the GPU if GPUS > 0), hardened; returns its exit status
  local image=$1 job=$2 gpus=$3 scratch="${work}/scratch" status=0
  # Scratch space on the boot disk (the root file system is read-only; a video can
  # exceed RAM, so not a tmpfs); sticky and world-writable, for the image's own user.
  mkdir -p "${scratch}"
  chmod 1777 "${scratch}"
  local args=(--rm)
  # --gpus needs the NVIDIA runtime and a driver: a CPU-only VM has neither, and Docker would refuse to start.
  if ((gpus > 0)); then args+=(--gpus all); fi
  args+=(
    --cap-drop ALL --security-opt no-new-privileges --read-only --pids-limit 4096
    --tmpfs "/tmp:rw,nosuid,nodev,size=1g"
    --mount "type=bind,source=${scratch},target=/scratch"
    --env TMPDIR=/scratch --env HOME=/scratch
    # The worker reads its job (fast-render-*) from this VM's metadata server.
    --env "GCE_METADATA_HOST=${GCE_METADATA_HOST:-169.254.169.254}"
    --env "GCE_METADATA_IP=${GCE_METADATA_IP:-169.254.169.254}"
    --label "fast-render-job=${job}"
  )
  # Its lines go to Cloud Logging and, attached, to this script's output (the serial console).
  # Docker's gcplogs driver writes log gcplogs-docker-driver on this gce_instance, each line as
  # jsonPayload.message, the job as jsonPayload.container.metadata.fast-render-job (the labels
  # option); it pings Cloud Logging first, so a failure there is exit 125 before the container
  # starts. Sources: https://docs.docker.com/engine/logging/drivers/gcplogs/ and moby's
  # daemon/logger/gcplogs/gcplogging.go.
  local logging=(--log-driver=gcplogs --log-opt labels=fast-render-job)
  docker run "${args[@]}" "${logging[@]}" "${image}" python -m render_vm worker || status=$?
  if ((status == 125)); then
    # 125: Docker could not start the container. If the logging driver is why, a render
    # without Cloud Logging beats no render; the serial console still has the lines.
    say "docker could not start the worker with the gcplogs driver; retrying with json-file"
    status=0
    docker run "${args[@]}" --log-driver=json-file "${image}" python -m render_vm worker || status=$?
  fi
  return "${status}"
}

name=$(metadata instance/name)
zone=$(metadata instance/zone); zone=${zone##*/}
project=$(metadata project/project-id)
api=$(attribute fast-render-compute-api); COMPUTE_API=${api:-${COMPUTE_API}}
image=$(attribute fast-render-worker-image)
command=$(attribute fast-render-worker-command)
job=$(attribute fast-render-job-id)
gpus=$(attribute fast-render-gpu-count); gpus=${gpus:-1}

status=0
if [[ ! ${gpus} =~ ^(0|[1-9][0-9]*)$ ]]; then
  say "fast-render-gpu-count is '${gpus}', not a number of GPUs"
  status=2
elif [[ -n ${image} ]]; then
  say "VM ${name} in ${zone}: job ${job}, worker image ${image}, ${gpus} GPU(s)"
  timeout_s=$(attribute fast-render-driver-timeout-s); timeout_s=${timeout_s:-600}
  # This run's files, removed on any exit: Docker's registry login (not root's
  # ~/.docker, so the token outlives nothing) and the worker's scratch space.
  work=$(mktemp -d /var/tmp/fast-render.XXXXXX)
  export DOCKER_CONFIG="${work}/docker"
  # A Deep Learning VM installs the driver at first boot when its metadata has
  # install-nvidia-driver=True (the launcher sets it); /opt/deeplearning/install-driver.sh reinstalls it.
  if ((gpus > 0)); then
    wait_for "${timeout_s}" "the NVIDIA driver (nvidia-smi)" nvidia-smi
  fi
  wait_for "${timeout_s}" "the Docker daemon" docker info
  pull_image "${image}"
  run_container "${image}" "${job}" "${gpus}" || status=$?
elif [[ -n ${command} ]]; then
  say "VM ${name} in ${zone}: job ${job}, running: ${command}"
  bash -c "${command}" || status=$?
else
  say "neither fast-render-worker-image nor fast-render-worker-command is set in this VM's metadata"
  status=2
fi
say "worker exited with ${status}"
exit "${status}"
