"""Every gcloud command the scripts and the Cloud Build config use exists in this gcloud (``--help`` answers).

A misspelt group or a command that moved to ``beta`` would otherwise be found
only in a real project. gcloud is on the machine (the local cloud's emulators
come from it); each ``--help`` takes a second or two, so they run in parallel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SHELL_FILES = sorted([*REPO.glob("scripts/*.sh"), *REPO.glob("render_vm/*.sh")])
BUILD_FILES = sorted(REPO.glob("cloudbuild*.yaml"))
# `gcloud` itself, or a script's wrapper whose body runs `gcloud "$@"` (scripts/setup_vm_permissions.sh's gc).
FUNCTION = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*\(\)\s*\{(.*?)\}\s*$", re.M | re.S)  # to the first line ending in }
WORD = re.compile(r"[a-z][a-z0-9-]*$")


def command_words(tokens: list[str]) -> tuple[str, ...]:
    """The command path at the start of ``tokens``: lowercase words up to the first flag, quote or variable."""
    words = []
    for token in tokens:
        if not WORD.match(token):
            break
        words.append(token)
    return tuple(words)


def commands_in_shell(text: str) -> set[tuple[str, ...]]:
    callers = {"gcloud", *(name for name, body in FUNCTION.findall(text) if 'gcloud "$@"' in body)}
    found = set()
    for line in text.splitlines():
        code = line.split(" #", 1)[0]
        if code.lstrip().startswith("#"):
            continue
        for match in re.finditer(rf"(?:^|[\s;|&(`])(?:{'|'.join(map(re.escape, callers))})\s+(\S.*)", code):
            words = command_words(match.group(1).split())
            if words:
                found.add(words)
    return found


def commands_in_build(path: Path) -> set[tuple[str, ...]]:
    found = set()
    for step in yaml.safe_load(path.read_text()).get("steps", []):
        args = [str(a) for a in step.get("args", [])]
        if step.get("entrypoint") == "gcloud" or step.get("name", "").endswith("/gcloud"):
            found.add(command_words(args))
        for arg in args:  # scripts run by bash -c
            found |= commands_in_shell(arg)
        if "script" in step:
            found |= commands_in_shell(step["script"])
    return {c for c in found if c}


def all_commands() -> set[tuple[str, ...]]:
    found = set()
    for path in SHELL_FILES:
        found |= commands_in_shell(path.read_text())
    for path in BUILD_FILES:
        found |= commands_in_build(path)
    return found


def test_the_extractor_reads_the_setup_script():
    """Not vacuous: the setup script's calls (through its gc wrapper too) are found."""
    found = all_commands()
    for command in [("iam", "service-accounts", "describe"), ("projects", "add-iam-policy-binding"),
                    ("compute", "networks", "subnets", "add-iam-policy-binding"), ("services", "enable")]:
        assert command in found, command


@pytest.fixture(scope="module")
def gcloud_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("gcloud") is None:
        pytest.skip("gcloud is not on PATH (it comes with the local cloud's emulators: make setup)")
    return {**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "CLOUDSDK_CONFIG": str(tmp_path_factory.mktemp("gcloud")),
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1", "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1"}


def test_every_gcloud_command_used_exists(gcloud_env):
    commands = sorted(all_commands())
    assert commands

    def help_of(command: tuple[str, ...]) -> tuple[tuple[str, ...], int, str]:
        proc = subprocess.run(["gcloud", *command, "--help"], env=gcloud_env, capture_output=True, text=True, timeout=120)
        return command, proc.returncode, (proc.stderr.strip().splitlines() or [""])[-1]

    with ThreadPoolExecutor(max_workers=min(8, len(commands))) as pool:
        results = list(pool.map(help_of, commands))
    missing = [f"gcloud {' '.join(c)}: {err}" for c, rc, err in results if rc != 0]
    assert not missing, "\n".join(missing)
