#!/usr/bin/env bash
# Set up a Debian machine for Fast Render: what the local cloud, the renderer and
# the tests need. Run as root (apt-get); safe to run again, and a fast no-op
# (well under a second) when everything is already there.
#
#   bash infra/local/setup.sh
#
# 1. Java and the Pub/Sub and Firestore emulators (gcloud's `beta emulators pubsub`
#    and `emulators firestore`).
# 2. Fonts the renderer uses: DejaVu, Noto CJK, Noto Color Emoji.
#    Debian's Chromium, for the dashboard's tests (tests/operators/test_dashboard.py).
#    Debian's shellcheck, for the shell scripts' check (tests/infra).
# 3. .venv with requirements-test.txt (which includes requirements.txt, the
#    functions', and render_vm/requirements.txt, the worker's); reinstalled only
#    when one of them changes (their hash is kept in .setup-stamp).
# 4. .venv-checks with requirements-checks.txt (checkov, whose pins conflict with
#    .venv's packages); reinstalled only when that file changes.
#
# apt-get update runs at most once, and only when something must be installed.
# Something that cannot be installed here (the emulators come from Google's apt
# repository, which Debian's mirrors do not carry) is reported at the end, with
# what to do, and the script exits 1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO/.venv"
STAMP="$REPO/.setup-stamp"
CHECKS_VENV="$REPO/.venv-checks"
CHECKS_STAMP="$CHECKS_VENV/.setup-stamp"
REQUIREMENTS=(requirements.txt render_vm/requirements.txt requirements-test.txt)  # -r includes of the last
FONTS=(fontconfig fonts-dejavu-core fonts-noto-cjk fonts-noto-color-emoji)  # fontconfig: captions find fonts with fc-match/fc-list

missing=()      # lines for the final report
apt_updated=0

say() { echo "setup: $*"; }

# Install the Debian packages given, those that are not installed yet. A package
# with no install candidate (no reachable repository has it) is not an error
# here: it is returned in $unavailable for the caller to report.
apt_install() {
    local wanted=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || wanted+=("$pkg")
    done
    unavailable=()
    ((${#wanted[@]})) || return 0
    if ((EUID != 0)); then
        unavailable=("${wanted[@]}")
        missing+=("not root, so not installed: ${wanted[*]} (run this script as root)")
        return 0
    fi
    if ((!apt_updated)); then
        say "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
    local installable=()
    for pkg in "${wanted[@]}"; do
        if [[ "$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')" =~ ^(|\(none\))$ ]]; then
            unavailable+=("$pkg")
        else
            installable+=("$pkg")
        fi
    done
    if ((${#installable[@]})); then
        say "installing ${installable[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${installable[@]}" >/dev/null
    fi
}

# ---------------------------------------------------------------- Java, the emulators

command -v java >/dev/null || apt_install default-jre-headless
command -v java >/dev/null || missing+=("java: default-jre-headless could not be installed")

# Whether gcloud's emulator component has its launcher: emulator_installed <path under platform/>.
emulator_installed() {
    local gcloud
    gcloud="$(command -v gcloud)" || return 1
    # gcloud lives in <sdk root>/bin; the emulator components in <sdk root>/platform.
    [[ -x "$(dirname "$(readlink -f "$gcloud")")/../platform/$1" ]]
}

# install_emulator <what> <launcher under platform/> <Debian package> <gcloud components>
install_emulator() {
    emulator_installed "$2" && return 0
    apt_install google-cloud-cli "$3"
    emulator_installed "$2" && return 0
    missing+=("the $1 emulator (Debian packages google-cloud-cli and $3):
      they come from Google's apt repository, https://packages.cloud.google.com/apt, which is not
      configured or not reachable here (Debian's mirrors do not carry them). Add that repository
      (https://cloud.google.com/sdk/docs/install#deb) and run this again, or install the Google
      Cloud CLI and run: gcloud components install $4")
}

install_emulator Pub/Sub pubsub-emulator/bin/cloud-pubsub-emulator google-cloud-cli-pubsub-emulator "pubsub-emulator beta"
install_emulator Firestore cloud-firestore-emulator/cloud_firestore_emulator google-cloud-cli-firestore-emulator \
    cloud-firestore-emulator

# ---------------------------------------------------------------- fonts

apt_install "${FONTS[@]}"
for pkg in "${unavailable[@]}"; do
    missing+=("font package $pkg: not in any configured apt repository")
done

# ---------------------------------------------------------------- Chromium, for the dashboard's tests

# Debian's own build, driven by Playwright (requirements.txt) with executable_path=/usr/bin/chromium:
# Playwright never downloads a browser here.
[[ -x /usr/bin/chromium ]] || apt_install chromium
[[ -x /usr/bin/chromium ]] || missing+=("chromium (Debian package): the dashboard's tests drive it")

# ---------------------------------------------------------------- shellcheck, for the scripts' check

command -v shellcheck >/dev/null || apt_install shellcheck
command -v shellcheck >/dev/null || missing+=("shellcheck (Debian package): the shell scripts' check runs it")

# ---------------------------------------------------------------- Python environment

# make_venv <dir>: a venv at <dir> unless it has one.
make_venv() {
    [[ -x "$1/bin/python" ]] && return 0
    python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
    say "creating $1"
    python3 -m venv "$1"
}

make_venv "$VENV"
wanted_hash="$(cd "$REPO" && cat "${REQUIREMENTS[@]}" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$wanted_hash" ]]; then
    say "pip install -r requirements-test.txt"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/requirements-test.txt"
    echo "$wanted_hash" >"$STAMP"
fi

make_venv "$CHECKS_VENV"
wanted_hash="$(sha256sum "$REPO/requirements-checks.txt" | cut -d' ' -f1)"
if [[ "$(cat "$CHECKS_STAMP" 2>/dev/null)" != "$wanted_hash" ]]; then
    say "pip install -r requirements-checks.txt into $CHECKS_VENV"
    if "$CHECKS_VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/requirements-checks.txt"; then
        echo "$wanted_hash" >"$CHECKS_STAMP"
    else
        missing+=("checkov (requirements-checks.txt) could not be installed into $CHECKS_VENV")
    fi
fi
# The operators' CLI as a console script of the venv (the same as ./avmonitor).
[[ -L "$VENV/bin/avmonitor" ]] || ln -sf "$REPO/avmonitor" "$VENV/bin/avmonitor"

# ---------------------------------------------------------------- report

if ((${#missing[@]})); then
    echo "setup: NOT READY. Missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi
say "ready"
