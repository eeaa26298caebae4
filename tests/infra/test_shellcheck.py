"""Every shell script in the repository passes shellcheck with no finding at all.

A finding is fixed, or silenced in place with a ``# shellcheck disable=SCxxxx``
directive that says why. The scripts are those git tracks (``*.sh``); without
a git checkout (a Cloud Build source archive) every ``*.sh`` outside the
virtual environments and the local cloud's state.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = (".venv", ".venv-checks", ".local-cloud", ".git", "node_modules")


def shell_scripts() -> list[str]:
    if (REPO / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z", "--", "*.sh"], cwd=REPO, capture_output=True, check=True)
        return sorted(name for name in listed.stdout.decode().split("\0") if name and (REPO / name).is_file())
    return sorted(
        str(path.relative_to(REPO)) for path in REPO.rglob("*.sh")
        if not any(part in SKIPPED_DIRS for part in path.relative_to(REPO).parts)
    )


def test_the_vm_startup_script_is_among_the_scripts_checked() -> None:
    assert "render_vm/startup.sh" in shell_scripts()


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (Debian package `shellcheck`; infra/local/setup.sh installs it)")
def test_every_shell_script_passes_shellcheck() -> None:
    scripts = shell_scripts()
    result = subprocess.run(["shellcheck", "--format=gcc", *scripts], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), (
        f"shellcheck findings in {len(scripts)} scripts:\n{result.stdout}{result.stderr}"
    )
