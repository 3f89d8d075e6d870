"""The day-one loop as a new user runs it: edit the catalogue, settings or program, `synth`, `diff --base HEAD`.

Each test is a sequence of CLI commands on a throw-away git copy of the project (the sample catalogue: three
tenants, the smallest catalogue that has a tenant of each lifecycle), asserting what the user sees: exit codes,
output, bytes written. None of them may end in a traceback.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tenancy import cli, render
from tests.project_copy import copy_project

from .conftest import PROJECT

GIT = ["-c", "user.email=t@example.com", "-c", "user.name=t"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A committed git copy of the program, the sample catalogue and the stack files."""
    root = tmp_path / "project"
    copy_project(root, skip=("deployments", "docs", "tools",))
    subprocess.run(["git", "-C", str(root), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(root), *GIT, "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(root), *GIT, "commit", "-qm", "base"], check=True)
    return root


def _tool(root: Path, *args: str) -> int:
    return cli.main(["--project", str(root), *args])


def _catalogue(root: Path, change) -> None:
    doc = yaml.safe_load((root / "tenants.yaml").read_text())
    change(doc["tenants"])
    (root / "tenants.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _tenant(tenants: list, name: str) -> dict:
    return next(t for t in tenants if t["name"] == name)


def _add(tenants: list) -> None:
    tenants.append({**copy.deepcopy(_tenant(tenants, "scratch")), "name": "newcomer", "displayName": "Newcomer"})


def _suspend(tenants: list) -> None:
    _tenant(tenants, "research")["lifecycle"] = "suspended"


def _promote(tenants: list) -> None:
    _tenant(tenants, "scratch")["environments"] = ["dev", "staging"]


def _settings(root: Path) -> None:
    path = root / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace("tenancy:quotaScale: 0.5", "tenancy:quotaScale: 0.25"))


def _program(root: Path) -> None:
    # What the cache keys read: the project's files (the loaded modules are the repository's).
    path = root / "components" / "naming.py"
    path.write_text(path.read_text() + "\n# edited\n")


EDITS = [  # (what a user does, the stack it shows in)
    (lambda root: _catalogue(root, _add), "dev"),
    (lambda root: _catalogue(root, _suspend), "dev"),
    (lambda root: _catalogue(root, _promote), "staging"),
    (_settings, "dev"),
    (_program, "dev"),
]


@pytest.mark.parametrize("jobs,edits", [(1, EDITS), (2, [EDITS[3]])], ids=["jobs1", "jobs2"])
def test_synth_edit_synth_diff_works_whatever_the_cache_holds(project: Path, jobs: int, edits, monkeypatch,
                                                               capsys):
    """synth; then for each edit (add a tenant, suspend one, promote one to staging, change a setting, change the
    program): edit, synth, `diff --base HEAD`. Every diff exits 2 (the edits add up against HEAD) and prints the
    diff a cold cache gives; none raises (before the fix: MergeRefused "the cached rendering of tenant ... can no
    longer be read" on the first diff, a traceback). With --jobs 2 the renders run in two worker processes (each
    starts by importing the SDKs, so that sequence is the settings change alone: every tenant renders again in
    the workers, beside entries the cold synth stored)."""
    if jobs > 1:
        monkeypatch.setattr(render, "PARALLEL_FROM", 2)  # the sample's few tenants, over two processes
    flags = ["--jobs", str(jobs)]
    assert _tool(project, "synth", "--stack", "dev", *flags) == 0
    for edit, stack in edits:
        edit(project)
        assert _tool(project, "synth", "--stack", stack, *flags) == 0
        assert _tool(project, "diff", "--stack", stack, "--base", "HEAD", "--format", "json", *flags) == 2
    capsys.readouterr()
    assert _tool(project, "diff", "--stack", "dev", "--base", "HEAD", "--format", "json", *flags) == 2
    cached = capsys.readouterr().out
    assert _tool(project, "diff", "--stack", "dev", "--base", "HEAD", "--format", "json", "--no-cache") == 2
    assert capsys.readouterr().out == cached


def test_a_cache_entry_gone_mid_diff_is_rendered_again(project: Path, monkeypatch, capsys):
    """A rendering deleted (or damaged) after its head was read is rendered again, never a traceback."""
    from tenancy import render_cache

    assert _tool(project, "synth", "--stack", "dev") == 0
    _catalogue(project, _suspend)
    original = render_cache.RenderCache.get

    def damaged(self, key, platform=None):
        return None if platform is not None else original(self, key, platform)

    monkeypatch.setattr(render_cache.RenderCache, "get", damaged)
    render._open.cache_clear()  # noqa: SLF001 - a new process: nothing read yet
    assert _tool(project, "diff", "--stack", "dev", "--base", "HEAD", "--format", "json") == 2
    assert '"tenant": "research"' in capsys.readouterr().out


def _tree(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def test_two_uncached_renders_on_different_machines_write_the_same_bytes(project: Path, tmp_path: Path):
    """`synth --no-cache --out` twice, as two machines would run it: different hash seeds and the two protobuf
    runtimes (upb, pure Python; google.protobuf.internal.api_implementation picks one per install). A Struct's
    fields arrive in an order of the runtime's choosing (protobuf python/google/protobuf/internal/
    well_known_types.py, Struct.fields is a map), so before the fix 98 of 108 manifests differed in key order."""
    outs = []
    for seed, runtime in (("1", "upb"), ("2", "python")):
        out = tmp_path / f"out-{runtime}" / "dev"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": runtime}
        subprocess.run([sys.executable, "-m", "tenancy", "--project", str(project), "synth", "--stack", "dev",
                        "--no-cache", "--out", str(out)], cwd=PROJECT, env=env, check=True, capture_output=True)
        outs.append(_tree(out))
    assert len(outs[0]) > 90  # resources.json, outputs.json and every manifest
    assert [name for name in outs[0] if outs[0][name] != outs[1].get(name)] == []


def test_one_and_two_processes_write_the_same_bytes(project: Path, tmp_path: Path, monkeypatch, capsys):
    """`synth --jobs 1` and `synth --jobs 2` (two worker processes) write identical files."""
    monkeypatch.setattr(render, "PARALLEL_FROM", 2)
    trees = []
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs-{jobs}" / "dev"
        assert _tool(project, "synth", "--stack", "dev", "--no-cache", "--jobs", jobs, "--out", str(out)) == 0
        trees.append(_tree(out))
    assert trees[0] == trees[1]


def _problems(root: Path, capsys) -> list[str]:
    assert _tool(root, "validate", "--stack", "dev") == 1
    return capsys.readouterr().err.splitlines()


def test_every_problem_of_one_quota_map_in_one_run(project: Path, capsys):
    """A bad quantity and a misspelt key in one quota map: both are reported, not the second after the first is
    fixed (ResourceQuota names: kubernetes pkg/apis/core/types.go ResourceName constants)."""
    def quota(tenants: list) -> None:
        _tenant(tenants, "research")["quota"] = {"pods": "5O", "servcies": "3"}

    _catalogue(project, quota)
    found = _problems(project, capsys)
    assert "tenants.yaml: tenants[0] (name=research).quota: pods: '5O' is not a Kubernetes quantity " \
           "(e.g. 500m, 2, 4Gi)" in found
    assert "tenants.yaml: tenants[0] (name=research).quota: 'servcies' is not a ResourceQuota resource name" in found


def test_an_unknown_stack_does_not_hide_an_unknown_field(project: Path, capsys):
    def typos(tenants: list) -> None:
        _tenant(tenants, "scratch")["environments"] = ["dve"]
        _tenant(tenants, "compliance")["artifcts"] = {"keyPrefix": "c/"}

    _catalogue(project, typos)
    found = _problems(project, capsys)
    assert any(line.startswith("tenants.yaml: tenants[2] (name=scratch).environments[0]: no stack 'dve'")
               for line in found), found
    assert "tenants.yaml: tenants[1] (name=compliance).artifcts: unknown field; did you mean 'artifacts'?" in found


def test_a_misspelt_aws_key_is_named(project: Path, capsys):
    """Pulumi.<stack>.yaml `aws:regoin`: the AWS provider's keys are its own (pulumi-aws reads `aws:*`), so the
    tool passes them over, and a misspelt region shows only as the missing one: the message names the misspelling."""
    path = project / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace("aws:region:", "aws:regoin:"))
    assert _problems(project, capsys)[0] == (
        "Pulumi.dev.yaml: aws:region: missing; this field is required (the config sets 'aws:regoin': a misspelling "
        "of aws:region?)")


# Small CLI items a newcomer meets.

def test_stacks_lists_the_stacks_in_its_own_words(capsys):
    assert cli.main(["stacks", "--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "dev: 1 stack(s), in update order (the platform first: shards read its outputs)"
    assert "touched" not in out and "(no base)" not in out


def test_schema_check_says_the_schema_is_current(capsys):
    assert cli.main(["schema", "--check"]) == 0
    assert capsys.readouterr().out == "tenants.schema.json is current\n"


def test_diff_base_refuses_a_tenants_file_it_would_ignore(capsys):
    assert cli.main(["diff", "--stack", "dev", "--base", "HEAD", "--tenants", "big.yaml"]) == 1
    assert "--tenants works with --to" in capsys.readouterr().err


def test_the_tool_runs_from_any_directory(tmp_path: Path):
    """`python <project>/tenancy ...` from another directory imports the project's packages, not the cwd's."""
    done = subprocess.run([sys.executable, str(PROJECT / "tenancy"), "validate", "--stack", "dev"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dev: 3 tenant(s) valid")


# What a reviewer reads.

def _big_diff() -> "diff.Diff":
    """A diff far over a comment's size: 300 changed tenants with long field values, one destructive change."""
    from tenancy import diff

    tenants = []
    for i in range(300):
        key = f"tenancy:storage:TenantStorage$aws:iam/policy:Policy::t{i:03d}-storage-policy"
        tenants.append(diff.TenantDiff(f"t{i:03d}", "changed", changed={key: {"policy.Statement[0].Resource": [
            "x" * 150, "arn:aws:kms:us-west-2:123456789012:key/0123abcd-4567-4abc-8def-0123456789ab"]}},
            unchanged=40, lifecycle=("active", "active")))
    bucket = "tenancy:storage:TenantStorage$aws:s3/bucket:Bucket::t000-storage-bucket"
    tenants[0].only_left = [bucket]
    tenants[0].deleted_options = {bucket: (False, False)}
    return diff.Diff("dev@HEAD", "dev@working-tree", False, False, tenants, removal_is_deletion=True,
                     destructive=[diff.Destructive("urn:x", "t000", "delete", "S3 bucket: gone", False, False, bucket)])


def test_a_pull_request_comment_stays_under_githubs_limit_with_its_tables():
    from tenancy import diff

    big = _big_diff()
    comment = diff.format_markdown(big, diff.COMMENT_LIMIT)
    assert len(comment) <= 65_536
    assert "> [!CAUTION]" in comment and "| **delete** | `Bucket t000-storage-bucket` |" in comment
    assert "**Totals:** + 0 to create, ~ 300 to update, - 1 to delete, ± 0 to replace, 12000 unchanged" in comment
    assert "| `aws:iam/policy:Policy` |  | 300 |  |  |" in comment
    assert all(f"| t{i:03d} | active |" in comment for i in range(300))  # every tenant counted in the table
    more = re.search(r"_(\d+) more tenant section\(s\) left out", comment)
    assert more and comment.count("<details>") + int(more.group(1)) == 300  # the rest of the sections, said so
    whole = diff.format_markdown(big)  # no limit: every resource line
    assert "123456789012" not in whole and "+ (known after apply)" in whole


def test_text_fits_120_columns_and_totals_like_pulumi_preview():
    """Totals by `pulumi preview`'s operations (pulumi/pulumi pkg/resource/deploy/step.go StepOp: create, update,
    delete, replace, same), overall and per resource type, and no line wider than 120 columns; values the mocks
    made up (the mock account's ARNs) shown as `(known after apply)`."""
    from tenancy import diff

    text = diff.format_text(_big_diff())
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "totals: + 0 to create, ~ 300 to update, - 1 to delete, ± 0 to replace, 12000 unchanged" in text
    assert "  ~ 300  aws:iam/policy:Policy" in text and "  - 1  aws:s3/bucket:Bucket" in text
    assert "123456789012" not in text and "+ (known after apply)" in text  # a KMS key's ARN: its id is made up
    from tenancy import synth

    # An ARN derived from known names keeps them: only the account is unknown offline.
    assert synth.after_apply("arn:aws:iam::123456789012:role/r") == "arn:aws:iam::(known after apply):role/r"


def test_the_editor_schema_takes_the_numbers_the_tool_takes():
    """`pods: 50` (a YAML number) is a valid quota to the tool (catalogue._quantities_as_text), so the schema an
    editor checks the file with must not flag it (JSON Schema 2020-12 `type` may list several types)."""
    import json

    import jsonschema

    schema = json.loads((PROJECT / "tenants.schema.json").read_text())
    doc = {"tenants": [{"name": "a", "quota": {"pods": 50, "requests.cpu": 0.5},
                        "limits": {"default": {"cpu": 1}, "max": {"memory": "2Gi"}}}]}
    jsonschema.Draft202012Validator(schema).validate(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({"tenants": [{"name": "a", "quota": {"pods": [50]}}]})


def _progress_lines(monkeypatch, capsys, *args: str) -> list[str]:
    import functools

    from tenancy import synth

    monkeypatch.setattr(synth, "Progress", functools.partial(synth.Progress, delay=0, interval=0))
    assert cli.main(list(args)) == 0
    return [line for line in capsys.readouterr().err.splitlines() if " tenants, " in line]


def _counts(line: str) -> tuple[int, int]:
    seen, total = re.search(r"(\d+)/(\d+) tenants", line).groups()
    return int(seen), int(total)


def test_progress_counts_each_tenant_once_as_workers_report_it(project: Path, monkeypatch, capsys):
    """Workers report each tenant as they begin it (not when their whole chunk returns), and a tenant the cache
    held beside other shared records, rendered again, is counted once: never `7/4 tenants`."""
    monkeypatch.setattr(render, "PARALLEL_FROM", 2)
    root = ["--project", str(project), "synth", "--stack", "dev", "--jobs", "2"]
    lines = _progress_lines(monkeypatch, capsys, *root)
    assert any(0 < _counts(line)[0] < 3 for line in lines if "done" not in line), lines  # before the end
    assert lines[-1].startswith("dev: done, 3/3 tenants")
    _catalogue(project, _add)  # another tenant: new shared records, every cached tenant renders again
    lines = _progress_lines(monkeypatch, capsys, *root)
    assert all(seen <= total == 4 for seen, total in map(_counts, lines)), lines
    assert lines[-1].startswith("dev: done, 4/4 tenants")
