"""Every gcloud command the scripts, the Cloud Build configs and the deploy guide use exists in this gcloud (``--help`` answers).

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
DOC_FILES = [REPO / "docs" / "deploy.md", REPO / "README.md"]  # their ```bash blocks are commands people paste
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
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


def flags_of(tokens: list[str]) -> set[str]:
    """The --flags among ``tokens``, up to the end of this command (a pipe, ;, &&, a redirection)."""
    flags = set()
    for token in tokens:
        if token.startswith(("|", "&", ";", ">", "2>", ")")):
            break
        if match := re.match(r"--([a-z][a-z0-9-]*)", token.strip("'\"")):
            flags.add(match.group(1))
        if token.endswith((";", ")")):
            break
    return flags


Commands = dict[tuple[str, ...], set[str]]  # each command path with the flags it is given


def add(found: Commands, words: tuple[str, ...], flags: set[str]) -> None:
    if words:
        found.setdefault(words, set()).update(flags)


def commands_in_shell(text: str) -> Commands:
    callers = {"gcloud", *(name for name, body in FUNCTION.findall(text) if 'gcloud "$@"' in body)}
    found: Commands = {}
    for line in text.replace("\\\n", " ").splitlines():
        code = line.split(" #", 1)[0]
        if code.lstrip().startswith("#"):
            continue
        for match in re.finditer(rf"(?:^|[\s;|&(`])(?:{'|'.join(map(re.escape, callers))})\s+(\S.*)", code):
            tokens = match.group(1).split()
            words = command_words(tokens)
            add(found, words, flags_of(tokens[len(words):]))
    return found


def commands_in_build(path: Path) -> Commands:
    found: Commands = {}
    for step in yaml.safe_load(path.read_text()).get("steps", []):
        args = [str(a) for a in step.get("args", [])]
        if step.get("entrypoint") == "gcloud" or step.get("name", "").endswith("/gcloud"):
            words = command_words(args)
            add(found, words, flags_of(args[len(words):]))
        for text in [*args, step.get("script", "")]:  # scripts run by bash -c, or as script:
            for words, flags in commands_in_shell(text).items():
                add(found, words, flags)
    return found


def all_commands() -> Commands:
    found: Commands = {}
    docs = [block for p in DOC_FILES for block in BASH_BLOCK.findall(p.read_text())]
    for text in [*(p.read_text() for p in SHELL_FILES), *docs]:
        for words, flags in commands_in_shell(text).items():
            add(found, words, flags)
    for path in BUILD_FILES:
        for words, flags in commands_in_build(path).items():
            add(found, words, flags)
    return found


def test_the_extractor_reads_the_setup_script():
    """Not vacuous: the setup script's calls (through its gc wrapper too) are found."""
    found = all_commands()
    for command in [("iam", "service-accounts", "describe"), ("projects", "add-iam-policy-binding"),
                    ("compute", "networks", "subnets", "add-iam-policy-binding"), ("services", "enable")]:
        assert command in found, command
    for command in [("run", "services", "proxy", "status"), ("beta", "services", "identity", "create")]:  # docs/deploy.md's
        assert command in found, command


@pytest.fixture(scope="module")
def gcloud_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("gcloud") is None:
        pytest.skip("gcloud is not on PATH (it comes with the local cloud's emulators: make setup)")
    return {**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "CLOUDSDK_CONFIG": str(tmp_path_factory.mktemp("gcloud")),
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1", "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1"}


def test_every_gcloud_command_used_exists_with_its_flags(gcloud_env):
    commands = all_commands()
    assert commands

    def help_of(command: tuple[str, ...]) -> tuple[tuple[str, ...], int, str, str]:
        proc = subprocess.run(["gcloud", *command, "--help"], env=gcloud_env, capture_output=True, text=True, timeout=120,
                              check=False)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
        return command, proc.returncode, (errors or proc.stderr.strip().splitlines() or [""])[0], proc.stdout

    with ThreadPoolExecutor(max_workers=min(8, len(commands))) as pool:
        results = list(pool.map(help_of, sorted(commands)))
    missing = [f"gcloud {' '.join(c)}: {err}" for c, rc, err, _ in results if rc != 0]
    assert not missing, "\n".join(missing)
    unknown = []
    for command, _, _, text in results:
        for flag in sorted(commands[command]):
            name = flag[3:] if flag.startswith("no-") else flag
            if not re.search(rf"--(\[no-\])?{re.escape(name)}\b", text):
                unknown.append(f"gcloud {' '.join(command)} --{flag}")
    assert not unknown, "flags its help does not list:\n" + "\n".join(unknown)
