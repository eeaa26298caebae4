"""cloudbuild.yaml (and cloudbuild-teardown.yaml, cloudbuild-worker.yaml): builds Cloud Build accepts, in the order that matters.

No build can run here, so what Cloud Build would refuse or get wrong is checked
on the file: its schema (tests/infra/cloudbuild.schema.json), substitutions
that are all defined (none that only triggered builds set), unique step ids
and real waitFor targets, the step order (nothing deployed before the tests
pass, the smoke test after the image is pushed, the verdict last), the build's
own service account, and each step's shell script as the shell will see it
after substitution (bash -n / sh -n, and shellcheck).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "cloudbuild.yaml"
CONFIGS = sorted(REPO.glob("cloudbuild*.yaml"))  # the pipeline, its teardown, the worker image alone
SCHEMA = json.loads((Path(__file__).parent / "cloudbuild.schema.json").read_text())
# Set in every build (https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values).
BUILT_IN = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION"}
# Set only for builds a trigger starts: empty in `gcloud builds submit`.
TRIGGER_ONLY = {"SHORT_SHA", "COMMIT_SHA", "REVISION_ID", "BRANCH_NAME", "TAG_NAME", "REPO_NAME", "REPO_FULL_NAME",
                "REF_NAME", "TRIGGER_NAME", "TRIGGER_BUILD_CONFIG_PATH", "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT"}
# $$ is a literal $; otherwise $NAME or ${NAME...} (dynamic substitutions allow ${NAME:-x} and the like).
REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


def references(text: str) -> set[str]:
    return {a or b for a, b in REFERENCE.findall(text.replace("$$", ""))}


def substituted(text: str, values: dict[str, str]) -> str:
    """``text`` as a step receives it: substitutions replaced, $$ turned into $."""
    parts = text.split("$$")
    return "$".join(REFERENCE.sub(lambda m: values[m.group(1) or m.group(2)], part) for part in parts)


def values_of(config: dict) -> dict[str, str]:
    """Every substitution's value in a build of project fr-demo-project (defaults may refer to others)."""
    values = {"PROJECT_ID": "fr-demo-project", "BUILD_ID": "0f1e2d3c-aaaa-bbbb-cccc-123456789abc",
              "PROJECT_NUMBER": "123456789012", "LOCATION": "us-central1", **config.get("substitutions", {})}
    for _ in range(5):
        values = {name: substituted(value, values) for name, value in values.items()}
    return values


def steps_by_id(config: dict) -> dict[str, dict]:
    return {step["id"]: step for step in config["steps"]}


def dependencies(config: dict) -> dict[str, set[str]]:
    """Each step's transitive prerequisites, as Cloud Build orders them: no waitFor means every
    earlier step, ["-"] means none, else the steps named."""
    direct: dict[str, set[str]] = {}
    order = [step["id"] for step in config["steps"]]
    for i, step in enumerate(config["steps"]):
        wait = step.get("waitFor")
        direct[step["id"]] = set(order[:i]) if wait is None else {w for w in wait if w != "-"}
    closed: dict[str, set[str]] = {}
    for step_id in order:
        closed[step_id] = set(direct[step_id]).union(*(closed[d] for d in direct[step_id]))
    return closed


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_it_matches_the_build_config_schema(path):
    jsonschema.validate(load(path), SCHEMA)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_substitution_used_is_defined_and_set_in_every_build(path):
    config = load(path)
    defined = set(config.get("substitutions", {}))
    used = set().union(*(references(s) for s in strings(config)))
    assert not used & TRIGGER_ONLY, f"set only in triggered builds: {sorted(used & TRIGGER_ONLY)}"
    assert used <= defined | BUILT_IN, f"not defined: {sorted(used - defined - BUILT_IN)}"
    assert all(name.startswith("_") for name in defined)
    for name in ("SHORT_SHA", "COMMIT_SHA", "BRANCH_NAME"):  # not even as $$NAME or in a script (comments may say why)
        assert not [s for s in strings(config) if name in s], name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_nested_substitutions_have_dynamic_substitutions(path):
    config = load(path)
    nested = [k for k, v in config.get("substitutions", {}).items() if references(v)]
    if nested:
        assert config.get("options", {}).get("dynamicSubstitutions") is True, nested


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_steps_have_unique_ids_and_wait_only_for_earlier_steps(path):
    config = load(path)
    ids = [step.get("id") for step in config["steps"]]
    assert all(ids) and len(set(ids)) == len(ids), ids
    for i, step in enumerate(config["steps"]):
        for wait in step.get("waitFor", []):
            assert wait == "-" or wait in ids[:i], f"{step['id']} waits for {wait}, not an earlier step"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_it_runs_as_the_build_account_of_iam_yaml_with_cloud_logging(path):
    config = load(path)
    account = yaml.safe_load((REPO / "infra" / "iam.yaml").read_text())["service_accounts"]["build"]["account_id"]
    assert config["serviceAccount"] == f"projects/${{PROJECT_ID}}/serviceAccounts/{account}@${{PROJECT_ID}}.iam.gserviceaccount.com"
    assert config["options"]["logging"] == "CLOUD_LOGGING_ONLY"


def test_nothing_is_deployed_before_lint_and_tests_pass_and_the_smoke_test_comes_after_the_image():
    config = load(BUILD)
    after = dependencies(config)
    assert {"lint", "test", "tf-init"} <= after["tf-plan"]
    assert after["tf-apply"] >= {"tf-plan", "lint", "test"}
    assert {"build-worker", "tf-apply"} <= after["push-worker"]
    assert "push-worker" in after["smoke"]
    assert "smoke" in after["teardown"] and "teardown" in after["verdict"]
    assert config["steps"][-1]["id"] == "verdict"


def test_the_steps_do_what_they_say():
    config = load(BUILD)
    step = steps_by_id(config)
    assert "make test" in step["test"]["args"][-1]
    assert "scripts/lint.sh" in step["lint"]["args"][-1]
    assert step["tf-init"]["args"][:2] == ["-chdir=infra/terraform", "init"]
    assert "-backend-config=bucket=${_TF_STATE_BUCKET}" in step["tf-init"]["args"]
    assert "plan -input=false -out=tfplan" in step["tf-plan"]["args"][-1]
    assert step["tf-apply"]["args"] == ["-chdir=infra/terraform", "apply", "-input=false", "tfplan"]
    assert step["build-worker"]["args"][:3] == ["build", "-f", "render_vm/Dockerfile"]
    assert "scripts/tf_destroy.sh" in step["teardown"]["args"][-1]


def test_the_pushed_image_is_the_built_one_and_the_one_listed():
    config = load(BUILD)
    step = steps_by_id(config)
    built = step["build-worker"]["args"][step["build-worker"]["args"].index("-t") + 1]
    assert step["push-worker"]["args"] == ["push", built]
    assert config["images"] == [built] == ["${_IMAGE}"]
    image = values_of(config)["_IMAGE"]
    assert re.fullmatch(r"us-central1-docker\.pkg\.dev/fr-demo-project/render/worker:build-[0-9a-f-]{36}", image), image
    assert "worker_image=${_IMAGE}" in step["tf-plan"]["args"][-1], "the functions get the image the build pushes"


def test_the_worker_only_build_pushes_the_image_terraform_expects_by_default():
    config = load(REPO / "cloudbuild-worker.yaml")
    step = steps_by_id(config)
    assert step["build-worker"]["args"] == load(BUILD)["steps"][[s["id"] for s in load(BUILD)["steps"]].index("build-worker")]["args"]
    assert step["push-worker"]["args"] == ["push", "${_IMAGE}"] and config["images"] == ["${_IMAGE}"]
    assert values_of(config)["_IMAGE"] == "us-central1-docker.pkg.dev/fr-demo-project/render/worker:latest"
    functions_tf = (REPO / "infra" / "terraform" / "functions.tf")
    if functions_tf.exists():
        assert '"${var.region}-docker.pkg.dev/${var.project}/render/worker:latest"' in functions_tf.read_text()


def test_the_smoke_step_really_waits_for_the_render_and_only_its_failure_is_deferred(tmp_path):
    config = load(BUILD)
    step = steps_by_id(config)
    script = step["smoke"]["args"][-1]
    assert "python -m infra.smoke --project ${PROJECT_ID} --timeout ${_SMOKE_TIMEOUT_S}" in script
    assert "/workspace/smoke.rc" in script
    assert [s["id"] for s in config["steps"] if s.get("allowFailure") or s.get("allowExitCodes")] == ["smoke"]
    # The verdict passes only on the exit code the smoke step itself recorded: none recorded fails too.
    rc_file = tmp_path / "smoke.rc"
    verdict = substituted(step["verdict"]["args"][-1], values_of(config)).replace("/workspace/smoke.rc", str(rc_file))
    for recorded, code in ((None, 1), ("1", 1), ("2", 1), ("", 1), ("0", 0)):
        rc_file.unlink(missing_ok=True)
        if recorded is not None:
            rc_file.write_text(recorded + "\n")
        done = subprocess.run(["bash", "-c", verdict], capture_output=True, text=True, check=False)
        assert done.returncode == code, (recorded, done.stdout)


def shell_scripts(config: dict) -> list[tuple[str, str, str]]:
    """(step id, shell, script as the shell receives it) of every step that runs `sh -c` / `bash -c`."""
    values = values_of(config)
    found = []
    for step in config["steps"]:
        args = step.get("args", [])
        if step.get("entrypoint") in ("bash", "sh") and len(args) >= 2 and args[0] == "-c":
            found.append((step["id"], step["entrypoint"], substituted(args[1], values)))
    return found


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_the_step_scripts_parse_and_pass_shellcheck(path):
    scripts = shell_scripts(load(path))
    if path == BUILD:
        assert {s[0] for s in scripts} >= {"lint", "test", "smoke", "verdict", "tf-plan", "teardown"}
    for step_id, shell, script in scripts:
        parsed = subprocess.run([shell, "-n", "-c", script], capture_output=True, text=True, check=False)
        assert parsed.returncode == 0, f"{step_id}: {parsed.stderr}"
        if shutil.which("shellcheck"):
            # SC2050 (a constant comparison) is what a substitution like [ "${_TEARDOWN}" = true ] becomes.
            checked = subprocess.run(["shellcheck", "-s", shell, "-e", "SC2050", "-"], input=script, capture_output=True, text=True,
                                     check=False)
            assert checked.returncode == 0, f"{step_id}:\n{checked.stdout}"


FAKE_TERRAFORM = textwrap.dedent(r"""
    #!/bin/sh
    echo "$*" >>"$FAKE_LOG"
    case "$*" in
        *"state list"*) printf '%s\n' google_service_account.build google_service_account.builder \
            google_project_iam_member.build_storage_admin google_project_iam_member.builder_logging_logwriter \
            google_pubsub_topic.render_jobs ;;
    esac
""").lstrip()


def test_the_teardown_keeps_the_build_account_it_runs_as_and_destroys_the_rest(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "terraform").write_text(FAKE_TERRAFORM)
    (bin_dir / "terraform").chmod(0o755)
    log = tmp_path / "calls"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log)}
    done = subprocess.run(["sh", str(REPO / "scripts" / "tf_destroy.sh"), "fr-demo-project", "europe-west4"],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    calls = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]  # without -chdir=...
    assert calls[0] == "state list"
    assert sorted(c for c in calls if c.startswith("state rm")) == [
        "state rm google_project_iam_member.build_storage_admin", "state rm google_service_account.build"]
    assert calls[-1] == ("destroy -input=false -auto-approve -var=project=fr-demo-project -var=region=europe-west4 "
                         "-var=force_destroy_buckets=true -var=firestore_deletion_protection=false")
    usage = subprocess.run(["sh", str(REPO / "scripts" / "tf_destroy.sh")], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and usage.stderr.strip() == "usage: tf_destroy.sh PROJECT REGION"
