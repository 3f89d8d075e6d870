"""The GitHub workflows: they parse, run the steps the delivery flow relies on, and hold no credentials."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
SETUP_ACTION = ROOT / ".github" / "actions" / "stack-setup" / "action.yml"
PULUMI_ACTION = "pulumi/actions@"


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the bare key `on` as true
    return doc


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses", "").startswith(action)]


def run_text(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in job["steps"])


ALL = sorted(p.name for p in WORKFLOWS.glob("*.yml"))


def test_expected_workflows_exist():
    assert {"pull-request.yml", "deploy-dev.yml", "promote.yml"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_default_token_is_read_only(name):
    doc = load(name)
    assert doc["permissions"] == {"contents": "read"}
    for job_name, job in doc["jobs"].items():
        permissions = job.get("permissions", {})
        assert permissions != "write-all"
        writes = {k for k, v in permissions.items() if v == "write"}
        # OIDC only where AWS is used; PR writes only where a comment is posted.
        assert ("id-token" in writes) == bool(steps_using(job, "./.github/actions/stack-setup")), job_name
        if "pull-requests" in writes:
            assert doc["on"].keys() == {"pull_request"}
        assert writes <= {"id-token", "pull-requests"}


@pytest.mark.parametrize("name", ALL)
def test_no_plaintext_credentials(name):
    text = (WORKFLOWS / name).read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|pul-[0-9a-f]{20,}|hvs\.[A-Za-z0-9]{20,}", text)
    doc = load(name)
    for job in doc["jobs"].values():
        for step in job["steps"]:
            for key, value in (step.get("env") or {}).items():
                if re.search(r"TOKEN|SECRET|PASSWORD|KEY", key):
                    assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", value), (key, value)
            assert "aws-access-key-id" not in (step.get("with") or {})


def test_aws_credentials_come_from_oidc():
    action = yaml.safe_load(SETUP_ACTION.read_text())
    (aws,) = [s for s in action["runs"]["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials")]
    assert aws["with"]["role-to-assume"] == "${{ inputs.aws-role-arn }}"
    assert set(aws["with"]) == {"role-to-assume", "role-session-name", "aws-region"}


def test_setup_installs_program_and_policy_dependencies():
    # pulumi/actions installs no Python dependencies; the program and the pack each need their venv.
    runs = "\n".join(s.get("run", "") for s in yaml.safe_load(SETUP_ACTION.read_text())["runs"]["steps"])
    assert "make venv/.runtime" in runs
    assert "policy/venv/bin/pip install -q -r policy/requirements.txt" in runs


def test_pull_request_tests_validates_comments_and_previews_affected_stacks():
    doc = load("pull-request.yml")
    jobs = doc["jobs"]
    assert "pull_request" in doc["on"]
    assert "make test" in run_text(jobs["test"]) and "make validate" in run_text(jobs["test"])
    diff = jobs["diff"]
    assert diff["needs"] == "test"
    assert 'tenancy diff --stack "$stack" --base "$BASE"' in run_text(diff)
    assert diff["steps"][0]["with"]["fetch-depth"] == 0
    (comment,) = steps_using(diff, "marocchino/sticky-pull-request-comment@")
    assert comment["with"]["path"] == "diff.md"
    assert diff["permissions"]["pull-requests"] == "write"
    plan = jobs["plan"]
    assert plan["steps"][0]["with"]["fetch-depth"] == 0
    assert 'tenancy plan --stack "$env" --base "$BASE" --format json' in run_text(plan)
    preview = jobs["preview"]
    assert preview["needs"] == ["diff", "plan"]
    # One matrix job per touched stack (platform or shard), in its environment's preview environment.
    assert preview["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert preview["environment"] == "preview-${{ matrix.environment }}"
    (pulumi,) = steps_using(preview, PULUMI_ACTION)
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["stack-name"].endswith("/${{ matrix.stack }}")
    assert pulumi["with"]["policyPackConfigs"] == "policy/config.${{ matrix.environment }}.json"
    # Setup (dependencies) happens before the preview.
    names = [s.get("uses", "") for s in preview["steps"]]
    assert names.index("./.github/actions/stack-setup") < names.index(pulumi["uses"])


def test_deploy_dev_updates_the_platform_then_touched_shards_in_parallel():
    doc = load("deploy-dev.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    jobs = doc["jobs"]
    (platform,) = steps_using(jobs["platform"], PULUMI_ACTION)
    assert platform["with"]["command"] == "up" and platform["with"]["stack-name"].endswith("/dev")
    assert platform["with"]["policyPacks"] == "policy"
    assert jobs["platform"]["if"] == "needs.plan.outputs.platform == 'true'"
    assert jobs["platform"]["concurrency"] == {"group": "pulumi-dev", "cancel-in-progress": False}
    shards = jobs["shards"]
    assert shards["needs"] == ["plan", "platform"] and "!failure()" in shards["if"]
    assert shards["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    (up,) = steps_using(shards, PULUMI_ACTION)
    assert up["with"]["command"] == "up" and up["with"]["stack-name"].endswith("/${{ matrix.stack }}")
    assert up["with"]["policyPackConfigs"] == "policy/config.dev.json"
    assert shards["concurrency"] == {"group": "pulumi-${{ matrix.stack }}", "cancel-in-progress": False}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_promotion_is_gated_and_runs_preview_then_up_with_the_policy_pack(stack):
    doc = load("promote.yml")
    assert "workflow_dispatch" in doc["on"]
    for name, target in ((stack, stack), (f"{stack}-shards", "${{ matrix.stack }}")):
        job = doc["jobs"][name]
        assert job["environment"] == stack  # required reviewers are configured on the GitHub environment
        assert job["concurrency"]["cancel-in-progress"] is False
        commands = [(s["with"]["command"], s["with"]) for s in steps_using(job, PULUMI_ACTION)]
        assert [c for c, _ in commands] == ["preview", "up"]
        for _, options in commands:
            assert options["stack-name"].endswith(f"/{target}")
            assert options["policyPacks"] == "policy"
            assert options["policyPackConfigs"] == f"policy/config.{stack}.json"
            assert (ROOT / options["policyPackConfigs"]).exists()
    assert doc["jobs"][f"{stack}-shards"]["needs"] == stack  # shards after their platform


def test_prod_waits_for_staging():
    prod = load("promote.yml")["jobs"]["prod"]
    assert prod["needs"] == ["staging", "staging-shards"] and "!failure()" in prod["if"]


def _plan_step(workflow: str, job: str) -> dict[str, Any]:
    (step,) = [s for s in load(workflow)["jobs"][job]["steps"] if s.get("id") == "plan"]
    return step


def _sharded_repo(tmp_path: Path) -> Path:
    """A git repository of the project with dev in 3 shards, `venv` linked to the real one."""
    from tests.test_sharding import git, make_repo, set_settings

    project = make_repo(tmp_path / "project", shards=3)
    (project / "venv").symlink_to(ROOT / "venv")
    with (project / ".gitignore").open("a") as f:
        f.write("venv\n")  # the link; `venv/` matches only a directory
    git(project, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "ignore the venv link")
    set_settings(project, shards=3)  # unchanged: keeps the working tree equal to the commit
    return project


def test_pull_request_plan_step_emits_the_touched_stacks_as_a_matrix(tmp_path):
    """Runs the plan step's script as the runner would, with the real `tenancy plan`."""
    import yaml as _yaml

    from components import sharding

    project = _sharded_repo(tmp_path)
    catalogue = _yaml.safe_load((project / "tenants.yaml").read_text())
    catalogue["tenants"][0]["labels"] = {"cost-centre": "7"}
    (project / "tenants.yaml").write_text(_yaml.safe_dump(catalogue, sort_keys=False))
    env = {**os.environ, "BASE": "HEAD", "GITHUB_OUTPUT": str(tmp_path / "out"), "RUNNER_TEMP": str(tmp_path),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    run = subprocess.run(RUNNER_BASH + [_plan_step("pull-request.yml", "plan")["run"]], cwd=project, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines())
    name = catalogue["tenants"][0]["name"]
    # The tenant exists in every environment it names; in dev it sits in one of three shards.
    matrix = json.loads(outputs["matrix"])
    assert {"environment": "dev", "stack": sharding.stack_of("dev", name, 3)} in matrix
    assert not [m for m in matrix if m["environment"] == "dev" and m["stack"] != sharding.stack_of("dev", name, 3)]


def test_deploy_dev_plan_step_splits_platform_and_shards(tmp_path):
    project = _sharded_repo(tmp_path)
    with (project / "components" / "quota.py").open("a") as f:
        f.write("\n# a program change\n")
    env = {**os.environ, "BEFORE": "HEAD", "GITHUB_OUTPUT": str(tmp_path / "out"), "RUNNER_TEMP": str(tmp_path)}
    step = _plan_step("deploy-dev.yml", "plan")
    run = subprocess.run(RUNNER_BASH + [step["run"]], cwd=project, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines())
    assert outputs["platform"] == "true"
    assert json.loads(outputs["shards"]) == ["dev-shard-0", "dev-shard-1", "dev-shard-2"]
    # No usable base (a first push): every stack.
    (tmp_path / "out").unlink()
    env["BEFORE"] = "0000000000000000000000000000000000000000"
    run = subprocess.run(RUNNER_BASH + [step["run"]], cwd=project, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines())
    assert outputs["platform"] == "true" and len(json.loads(outputs["shards"])) == 3


# How GitHub runs a `run:` step on Linux (shell: bash, the default).
RUNNER_BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]


def _pull_request_diff_step() -> dict[str, Any]:
    (step,) = [s for s in load("pull-request.yml")["jobs"]["diff"]["steps"] if s.get("id") == "diff"]
    return step


@pytest.mark.parametrize("codes,destructive", [
    ({"dev": 0, "staging": 0, "prod": 0}, "false"),
    ({"dev": 2, "staging": 0, "prod": 0}, "false"),
    ({"dev": 2, "staging": 3, "prod": 0}, "true"),
])
def test_pull_request_diff_step_flags_exit_3_for_an_extra_approval(tmp_path, codes, destructive):
    """Runs the step's script as the runner would, with `tenancy diff` stubbed by its exit-code contract."""
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
    (tmp_path / "tenants.yaml").write_text("tenants: []\n")
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "base"], check=True)
    subprocess.run(git + ["checkout", "-qb", "pr"], check=True)
    (tmp_path / "tenants.yaml").write_text("tenants: [x]\n")  # an input change only: no code changed
    subprocess.run(git + ["commit", "-qam", "pr"], check=True)
    stub = tmp_path / "venv" / "bin" / "python"
    stub.parent.mkdir(parents=True)
    # `python -m tenancy diff --stack S --base B --format markdown`: $5 is the stack.
    stub.write_text('#!/bin/sh\n'
                    'echo "### $5"\n'
                    'echo "progress" >&2\n'
                    'exit $(printenv "CODE_$5")\n')
    stub.chmod(0o755)
    step = _pull_request_diff_step()
    assert "--format markdown --max-chars 20000" in step["run"]
    env = {**os.environ, "BASE": "main", "GITHUB_OUTPUT": str(tmp_path / "out"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"), **{f"CODE_{k}": str(v) for k, v in codes.items()}}
    run = subprocess.run(RUNNER_BASH + [step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines())
    assert outputs["destructive"] == destructive
    comment = (tmp_path / "diff.md").read_text()
    headings = [line for line in comment.splitlines() if line.startswith("### ")]
    assert headings == ["### dev", "### staging", "### prod"]
    assert "progress" not in comment  # stderr stays out of the pull-request comment
    assert ("[!CAUTION]" in comment) == (destructive == "true")


def test_pull_request_diff_step_stops_on_invalid_input(tmp_path):
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q",
                    "--allow-empty", "-m", "base"], check=True)
    stub = tmp_path / "venv" / "bin" / "python"
    stub.parent.mkdir(parents=True)
    stub.write_text('#!/bin/sh\necho "tenants.yaml: tenants[0]: bad" >&2\nexit 1\n')
    stub.chmod(0o755)
    env = {**os.environ, "BASE": "main", "GITHUB_OUTPUT": str(tmp_path / "out"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
    run = subprocess.run(RUNNER_BASH + [_pull_request_diff_step()["run"]], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 1 and "tenants[0]: bad" in run.stdout


def test_destructive_changes_wait_for_the_approval_environment():
    doc = load("pull-request.yml")
    assert doc["jobs"]["diff"]["outputs"]["destructive"] == "${{ steps.diff.outputs.destructive }}"
    approval = doc["jobs"]["destructive-approval"]
    assert approval["needs"] == "diff"
    assert approval["if"] == "needs.diff.outputs.destructive == 'true'"
    assert approval["environment"] == "destructive-change"


def test_promotion_summaries_use_the_markdown_format():
    steps = [s for job in load("promote.yml")["jobs"].values() for s in job["steps"]
             if "tenancy diff" in s.get("run", "")]
    assert steps and all("--format markdown" in s["run"] for s in steps)


ACTION_FILES = [*sorted(WORKFLOWS.glob("*.yml")), SETUP_ACTION]


def _steps(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    if "runs" in doc:
        return doc["runs"]["steps"]
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", ACTION_FILES, ids=lambda p: p.name)
def test_third_party_actions_are_pinned_by_commit_with_their_tag(path):
    """A tag (`@v4`) is moved by whoever controls the action's repository, and the next run executes the new code
    with this job's OIDC and tokens. The SHAs are the commits the tags named in the actions' own repositories
    (actions/checkout, actions/setup-python, actions/setup-go, actions/setup-java, actions/cache,
    aws-actions/configure-aws-credentials, pulumi/actions, marocchino/sticky-pull-request-comment: git tags)."""
    text = path.read_text()
    uses = re.findall(r"^\s*(?:- )?uses: (\S+)(.*)$", text, re.M)
    assert uses
    for action, rest in uses:
        if action.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", rest), f"{action}: the tag it stands for, as a comment"


@pytest.mark.parametrize("path", ACTION_FILES, ids=lambda p: p.name)
def test_checkouts_keep_no_credentials(path):
    """actions/checkout writes the job's token into .git/config unless persist-credentials is false; every job
    here runs the program (or pulumi) on the checked-out tree, which then could read and use it."""
    for step in _steps(path):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, step


# drift.yml: the scheduled drift check for stacks on any backend (docs/delivery.md, "Drift on any backend").
# Exit codes from pulumi/pulumi pkg/cmd/pulumi/cmd/exit_codes.go (v3.274.0): NoChangesExpectedError -> 7.
DRIFT_EXIT = 7
# Pulumi commands (and flags) that change a stack, its state or the cloud.
CHANGING = re.compile(r"\bpulumi\s+(up|update|destroy|import|cancel|state|stack\s+(rm|import|rename)|config\s+set)\b"
                      r"|--yes\b|--skip-preview\b|--run-program\b")


def test_drift_runs_on_a_schedule_and_on_demand_only():
    doc = load("drift.yml")
    assert set(doc["on"]) == {"schedule", "workflow_dispatch"}
    assert doc["on"]["schedule"][0]["cron"]


def test_drift_changes_nothing():
    """Every pulumi command is a refresh preview that fails on change; the pulumi action only installs the CLI."""
    doc = load("drift.yml")
    text = (WORKFLOWS / "drift.yml").read_text()
    runs = "\n".join(run_text(job) for job in doc["jobs"].values())
    assert not CHANGING.search(runs)
    invocations = re.findall(r"^\s*pulumi\s+(\S+)(.*(?:\\\n.*)*)", runs, re.M)
    assert invocations and all(command == "refresh" for command, _ in invocations)
    for _, flags in invocations:
        assert "--preview-only" in flags and "--expect-no-changes" in flags
    for job in doc["jobs"].values():
        for step in steps_using(job, PULUMI_ACTION):
            assert "command" not in step["with"], "the action would run a command; it must only install the CLI"
            assert step["with"]["pulumi-version"] == "3.274.0"  # the exit-code contract below is this version's
    assert "pulumi/actions" not in text.replace(PULUMI_ACTION, "")  # no other form of the action


def test_drift_permissions_are_read_only_but_oidc():
    doc = load("drift.yml")
    assert doc["permissions"] == {"contents": "read"}
    assert "permissions" not in doc["jobs"]["stacks"]
    assert doc["jobs"]["drift"]["permissions"] == {"contents": "read", "id-token": "write"}
    # The read-only preview environments: no reviewers for a scheduled run to wait for, no deploy role.
    assert doc["jobs"]["drift"]["environment"] == "preview-${{ matrix.environment }}"
    assert doc["jobs"]["drift"]["strategy"]["fail-fast"] is False


def test_drift_matrix_covers_every_stack_and_shard_of_each_environment(tmp_path):
    """Runs the `stacks` step as the runner would, on the project with dev split into 3 shards."""
    project = _sharded_repo(tmp_path)
    (step,) = [s for s in load("drift.yml")["jobs"]["stacks"]["steps"] if s.get("id") == "stacks"]
    env = {**os.environ, "GITHUB_OUTPUT": str(tmp_path / "out"), "RUNNER_TEMP": str(tmp_path)}
    run = subprocess.run(RUNNER_BASH + [step["run"]], cwd=project, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines())
    matrix = json.loads(outputs["matrix"])
    assert sorted((m["environment"], m["stack"]) for m in matrix) == [
        ("dev", "dev"), ("dev", "dev-shard-0"), ("dev", "dev-shard-1"), ("dev", "dev-shard-2"),
        ("prod", "prod"), ("staging", "staging")]
    drift = load("drift.yml")["jobs"]["drift"]
    assert drift["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.stacks.outputs.matrix) }}"


@pytest.mark.parametrize("code,verdict", [(0, "no drift"), (DRIFT_EXIT, "DRIFT"), (3, "not checked: pulumi exited 3")])
def test_drift_step_reports_each_stack_by_pulumis_exit_code(tmp_path, code, verdict):
    """Runs the drift step with `pulumi` stubbed by the CLI's exit-code contract; the job fails unless 0."""
    (step,) = [s for s in load("drift.yml")["jobs"]["drift"]["steps"] if s.get("id") == "drift"]
    stub = tmp_path / "bin" / "pulumi"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\necho "pulumi $*"\necho "  ~ aws:s3/bucket:Bucket research-storage-bucket refresh"\n'
                    f'echo "error: no changes were expected for refresh but changes were proposed" >&2\nexit {code}\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}", "STACK": "dev-shard-1",
           "PULUMI_STACK": "organization/tenancy/dev-shard-1", "GITHUB_OUTPUT": str(tmp_path / "out"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"), "RUNNER_TEMP": str(tmp_path)}
    run = subprocess.run(RUNNER_BASH + [step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == code
    summary = (tmp_path / "summary").read_text()
    assert summary.startswith(f"### dev-shard-1: {verdict}")
    assert ("research-storage-bucket" in summary) == (code != 0)  # the diff is shown when there is one
    assert "pulumi refresh --preview-only --expect-no-changes" in run.stdout
    assert (tmp_path / "out").read_text() == f"code={code}\n"
