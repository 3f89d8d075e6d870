"""`python -m components diff`: stack-to-stack and against a git revision, with the exit-code contract CI uses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components import cli, diff
from components.synth import SynthResult

PROJECT = Path(__file__).resolve().parent.parent


def _record(stack: str, name: str, typ: str, inputs: dict, parent: str | None = None, protect: bool = False) -> dict:
    chain = "pulumi:pulumi:Stack$" + typ if parent is None else "tenancy:index:Tenant$" + typ
    return {"urn": f"urn:pulumi:{stack}::tenancy::{chain}::{name}", "type": typ, "name": name, "parent": parent,
            "custom": True, "provider": None, "inputs": inputs, "protect": protect, "retainOnDelete": protect}


def _render(stack: str, versioning: bool, protect: bool) -> SynthResult:
    tenant = _record(stack, "research", "tenancy:index:Tenant", {})
    bucket = _record(stack, f"research-{stack}", "aws:s3/bucket:Bucket",
                     {"bucket": f"calypr-research-{stack}-artifacts", "tags": {"team": "research-developers"},
                      "policy": json.dumps({"Statement": [{"Effect": "Allow", "Versioning": versioning}]})},
                     parent=tenant["urn"], protect=protect)
    return SynthResult(stack=stack, resources=[tenant, bucket])


def test_stack_names_are_normalised_but_settings_differences_remain():
    result = diff.compare(_render("dev", False, False), _render("staging", True, True),
                          {"dev"}, {"staging"}, right_protects_data=True)
    (research,) = result.tenants
    # The bucket is the same resource in both stacks: matched by URN without the stack, names normalised.
    assert not research.only_left and not research.only_right
    (fields,) = research.changed.values()
    # `developers` contains `dev` but is not the environment name: it must not show as a difference.
    assert set(fields) == {"policy.Statement[0].Versioning", "[protect]", "[retainOnDelete]"}
    assert fields["policy.Statement[0].Versioning"] == [False, True]
    assert result.different


def test_identical_renders_are_not_different():
    result = diff.compare(_render("dev", True, False), _render("staging", True, False), {"dev"}, {"staging"}, False)
    assert not result.different
    assert "no differences" in diff.format_text(result)


def test_dev_to_staging_on_the_sample_lists_unpromoted_tenant_and_exits_2(capsys):
    assert cli.main(["diff", "--stack", "dev", "--to", "staging"]) == 2
    out = capsys.readouterr().out
    # scratch never leaves dev: all its resources are only in dev, and that is not a deletion.
    assert "== only in dev scratch ==" in out
    assert "REMOVED TENANT" not in out
    assert "wf-calypr-scratch" in out


def test_same_stack_twice_exits_0(capsys):
    assert cli.main(["diff", "--stack", "prod", "--to", "prod"]) == 0
    assert "no differences" in capsys.readouterr().out


def test_json_format_is_parseable(capsys):
    assert cli.main(["diff", "--stack", "dev", "--to", "staging", "--format", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["different"] and report["removedTenants"] == []
    assert {t["tenant"] for t in report["tenants"]} >= {"scratch"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throw-away git repository holding a copy of the project, with the sample committed."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns(
        ".git", "venv", "out", ".hypothesis", ".pytest_cache", "__pycache__", "bench", "generator", "tests"))
    git = ["git", "-C", str(project), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "base"], check=True)
    return project


def _drop_tenant(project: Path, name: str) -> None:
    path = project / "tenants.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["tenants"] = [t for t in doc["tenants"] if t["name"] != name]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_base_without_changes_exits_0(repo: Path, capsys):
    assert cli.main(["--project", str(repo), "diff", "--stack", "prod", "--base", "HEAD"]) == 0
    assert "no differences" in capsys.readouterr().out


def test_removed_live_tenant_is_flagged_loudly(repo: Path, capsys):
    _drop_tenant(repo, "compliance")
    assert cli.main(["--project", str(repo), "diff", "--stack", "prod", "--base", "HEAD"]) == 2
    out = capsys.readouterr().out
    assert "!!! REMOVED TENANT compliance" in out
    assert "protects data" in out and "`pulumi up` stops before deleting anything" in out
    protected, data = map(int, re.search(r"(\d+) of its (\d+) data resources are protected", out).groups())
    assert data >= 1 and protected == data  # the bucket (and KMS key) would stop `pulumi up`
    assert "research" not in out  # untouched tenants stay out of the report


def test_removed_tenant_in_json(repo: Path, capsys):
    _drop_tenant(repo, "research")
    assert cli.main(["--project", str(repo), "diff", "--stack", "dev", "--base", "HEAD", "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["removedTenants"] == ["research"]


def test_base_reads_the_stack_config_at_the_revision(repo: Path, capsys):
    stack_file = repo / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("tenancy:org: calypr", "tenancy:org: acme"))
    assert cli.main(["--project", str(repo), "diff", "--stack", "dev", "--base", "HEAD"]) == 2
    out = capsys.readouterr().out
    assert "  - tenancy:index:Tenant$kubernetes:core/v1:Namespace::research-namespace-wf-calypr-research" in out
    assert "  + tenancy:index:Tenant$kubernetes:core/v1:Namespace::research-namespace-wf-acme-research" in out


def test_unknown_revision_and_missing_mode_exit_1(repo: Path, capsys):
    assert cli.main(["--project", str(repo), "diff", "--stack", "dev", "--base", "no-such-rev"]) == 1
    assert "Pulumi.dev.yaml: cannot read it at --base no-such-rev" in capsys.readouterr().err
    assert cli.main(["diff", "--stack", "dev"]) == 1
