#!/bin/bash
# Fast Render fallback VM: startup script (instance metadata "startup-script").
#
# Runs the render worker once, then deletes this VM, whatever the outcome: a
# fallback VM exists for one job and must never idle on a GPU bill. Its
# settings are instance metadata (fast-render-*), written by the launcher.
# Besides this self-delete, the VM has a maximum run duration (action DELETE)
# and the watchdog reaps orphans.
set -u

metadata() {
  curl -fsS -H "Metadata-Flavor: Google" \
    "http://${GCE_METADATA_HOST:-metadata.google.internal}/computeMetadata/v1/$1"
}

name=$(metadata instance/name)
zone=$(metadata instance/zone); zone=${zone##*/}
project=$(metadata project/project-id)
api=$(metadata instance/attributes/fast-render-compute-api || echo https://compute.googleapis.com)
command=$(metadata instance/attributes/fast-render-worker-command)

echo "fast-render: VM ${name} in ${zone} running: ${command}"
# The command is the launcher's configuration (VM_WORKER_COMMAND), e.g. a
# `docker run` of the worker image; it reads its job from this VM's metadata.
bash -c "${command}"
status=$?
echo "fast-render: worker exited with ${status}; deleting this VM"

token=$(metadata instance/service-accounts/default/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null || true)
for attempt in 1 2 3 4 5; do
  curl -fsS -X DELETE -H "Authorization: Bearer ${token}" \
    "${api}/compute/v1/projects/${project}/zones/${zone}/instances/${name}" >/dev/null && break
  sleep $((attempt * 5))
done
exit "${status}"
