"""`python -m tenancy diff`: stack-to-stack and against a git revision, with the exit-code contract CI uses."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tenancy import cli, diff, revision, synth
from tenancy.synth import SynthResult

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
    assert "== only in dev scratch (active) ==" in out
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
    copy_project(project, keep=(".cache",))
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


def _edit_tenant(project: Path, name: str, **fields) -> None:
    path = project / "tenants.yaml"
    doc = yaml.safe_load(path.read_text())
    (tenant,) = [t for t in doc["tenants"] if t["name"] == name]
    for key, value in fields.items():
        if isinstance(value, dict):
            tenant.setdefault(key, {}).update(value)
        else:
            tenant[key] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _commit(project: Path) -> None:
    git = ["git", "-C", str(project), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["commit", "-qam", "next"], check=True)


def test_removed_live_tenant_is_flagged_loudly(repo: Path, capsys):
    _drop_tenant(repo, "compliance")
    assert cli.main(["--project", str(repo), "diff", "--stack", "prod", "--base", "HEAD"]) == 3
    out = capsys.readouterr().out
    assert "!!! REMOVED TENANT compliance" in out
    assert "`pulumi up` stops before deleting anything" in out
    assert "Offboard it first" in out  # it is active: the advice is to offboard, not to delete
    protected, data = map(int, re.search(r"(\d+) of its (\d+) data resources are protected", out).groups())
    assert 3 <= protected < data  # bucket, KMS key and namespace would stop `pulumi up`; Vault KV data is not protected
    # Destructive changes come before everything else, one line per data resource, each saying it is protected.
    destructive = out.index("DESTRUCTIVE CHANGE(S)")
    assert destructive < out.index("summary (") < out.index("REMOVED TENANT")
    assert "!!! DELETE Bucket compliance-storage-bucket (compliance)" in out
    assert "research" not in out  # untouched tenants stay out of the report


def test_removed_tenant_in_json(repo: Path, capsys):
    _drop_tenant(repo, "research")
    assert cli.main(["--project", str(repo), "diff", "--stack", "dev", "--base", "HEAD", "--format", "json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["removedTenants"] == ["research"]
    destructive = {d["urn"].rsplit("::", 1)[1]: d for d in report["destructive"]}
    assert set(destructive["research-storage-bucket"]) == {"urn", "tenant", "action", "reason", "protected", "retained"}
    # dev does not protect data: the namespace, bucket, registry row and Vault values are simply destroyed.
    for name in ("research-storage-bucket", "research-namespace-wf-calypr-research", "research-registry-record"):
        assert destructive[name]["action"] == "delete" and destructive[name]["tenant"] == "research"
        assert destructive[name]["protected"] is False and destructive[name]["retained"] is False
    assert any(d["reason"].startswith("Vault KV data") for d in report["destructive"])
    # The platform changes too (its list of tenants the generator must answer with), but only in place.
    entry = next(t for t in report["tenants"] if t["tenant"] == "research")
    assert all(t["summary"]["deleted"] == 0 for t in report["tenants"] if t is not entry)
    assert entry["summary"]["deleted"] == len(entry["onlyLeft"]) and entry["summary"]["added"] == 0
    # Every deleted resource, data or not, says whether it is protected or retained.
    assert [d["resource"] for d in entry["deleted"]] == entry["onlyLeft"]
    assert all(d["protected"] is False and d["retained"] is False for d in entry["deleted"])


def test_region_and_encryption_changes_are_destructive(repo: Path):
    """A tenant's `region` moves its bucket to another regional AWS provider, which Pulumi answers with a
    replacement (pulumi/pulumi pkg/resource/deploy/step_generator.go, `providerChanged`); switching
    `encryption: kms -> aes256` drops the KMS key. Both used to show as ordinary field lines."""
    _edit_tenant(repo, "compliance", region="us-west-2", artifacts={"encryption": "aes256"})
    result = diff.against_base(repo, "prod", "HEAD")
    assert diff.exit_code(result) == 3
    by_name = {d.urn.rsplit("::", 1)[1]: d for d in result.destructive}
    bucket = by_name["compliance-storage-bucket"]
    assert bucket.action == "replace" and "provider changes from aws-eu-west-1 to aws-us-west-2" in bucket.reason
    assert bucket.protected and bucket.retained  # prod protects data
    key = by_name["compliance-storage-kms-key"]
    assert key.action == "delete" and key.reason.startswith("KMS key")
    # Prod keeps S3 access logs per region: with its only tenant gone, eu-west-1's log bucket would go too.
    assert {(d.tenant, d.urn.rsplit("::", 1)[1]) for d in result.destructive if d.tenant != "compliance"} == {
        ("(shared)", "platform-access-logs-eu-west-1-bucket")}

    report = json.loads(diff.format_json(result))
    assert {"urn": bucket.urn, "tenant": "compliance", "action": "replace", "reason": bucket.reason,
            "protected": True, "retained": True} in report["destructive"]
    (entry,) = [t for t in report["tenants"] if t["tenant"] == "compliance"]
    assert entry["summary"]["replaced"] >= 1 and entry["summary"]["deleted"] >= 1

    text = diff.format_text(result)
    assert "+- aws:s3/bucket:Bucket compliance-storage-bucket  (replaced: provider changes from aws-eu-west-1 to " \
           "aws-us-west-2)" in text
    assert re.search(r"compliance \(active\): \d+ added, \d+ changed, [1-9]\d* replaced, [1-9]\d* deleted", text)

    markdown = diff.format_markdown(result)
    assert markdown.startswith("### `prod@HEAD` → `prod@working-tree`")
    caution = markdown.index("[!CAUTION]")
    assert caution < markdown.index("<details")  # destructive changes first
    assert "| **replace** | `Bucket compliance-storage-bucket` | compliance |" in markdown
    assert "| **delete** | `Key compliance-storage-kms-key` | compliance |" in markdown
    assert markdown.count("<details") == markdown.count("</details>") == len(report["tenants"])
    assert "<summary><b>compliance</b> (active):" in markdown
    assert "$" not in markdown  # short resource names, never type chains


def test_harmless_change_exits_2_without_destructive(repo: Path, capsys):
    _edit_tenant(repo, "research", labels={"tier": "gold"})
    assert cli.main(["--project", str(repo), "diff", "--stack", "prod", "--base", "HEAD", "--format", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["destructive"] == [] and report["different"]


def test_removing_an_offboarded_tenant_is_not_told_to_offboard(repo: Path, capsys):
    _edit_tenant(repo, "compliance", lifecycle="offboarded")
    _commit(repo)
    _drop_tenant(repo, "compliance")
    assert cli.main(["--project", str(repo), "diff", "--stack", "prod", "--base", "HEAD"]) == 3
    out = capsys.readouterr().out
    assert "REMOVED TENANT compliance" in out and "It was offboarded" in out
    assert "Offboard it first" not in out
    assert "pulumi state unprotect" in out  # prod protects data: the step that actually remains


def test_base_reads_the_stack_config_at_the_revision(repo: Path, capsys):
    stack_file = repo / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("tenancy:org: calypr", "tenancy:org: acme"))
    # The org is part of every bucket name: each bucket would be replaced, so the change is destructive.
    assert cli.main(["--project", str(repo), "diff", "--stack", "dev", "--base", "HEAD"]) == 3
    out = capsys.readouterr().out
    out = re.sub(r"\n(!!! )? {4}", " ", out)  # lines wrapped at 120 columns, joined again
    assert "  - kubernetes:core/v1:Namespace research-namespace-wf-calypr-research  (" in out
    assert "  + kubernetes:core/v1:Namespace research-namespace-wf-acme-research" in out
    assert "!!! REPLACE Bucket research-storage-bucket (research): S3 bucket: bucket changes from " \
           "calypr-research-dev-artifacts to acme-research-dev-artifacts" in out
    assert "!!! DELETE Namespace research-namespace-wf-calypr-research (research): namespace: no longer declared " \
           "under this name" in out


def _odd_files(repo: Path) -> None:
    """What a working tree holds beside the project: an editor's lock file (a dangling link), a FIFO, a link out
    of the tree, and a committed link that now leads out of it."""
    (repo / ".#tenants.yaml").symlink_to("user@host.12345:1700000000")
    os.mkfifo(repo / "pipe")
    (repo / "outside").symlink_to("/etc/hostname")
    (repo / "certs" / "tracked-link.pem").symlink_to("compliance-root-ca.pem")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["add", "certs/tracked-link.pem"], check=True)
    subprocess.run(git + ["commit", "-qm", "a link"], check=True)
    (repo / "certs" / "tracked-link.pem").unlink()
    (repo / "certs" / "tracked-link.pem").symlink_to("/etc/hostname")


@pytest.mark.parametrize("command", ["diff", "plan"])
def test_base_with_odd_files_in_the_working_tree_still_compares(repo: Path, command, capsys):
    """`--base` copies only the tracked files, as regular files, never through a link out of the tree: a dangling
    lock file or a FIFO gave a traceback (shutil.copytree), a link to /dev/zero filled the disk."""
    _odd_files(repo)
    code = cli.main(["--project", str(repo), command, "--stack", "dev", "--base", "HEAD"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "no differences" in out if command == "diff" else "dev" in out


def test_a_link_to_a_device_is_not_copied(repo: Path, monkeypatch):
    (repo / "zero").symlink_to("/dev/zero")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["add", "zero"], check=True)
    subprocess.run(git + ["commit", "-qm", "a device"], check=True)
    with revision.project_at(repo, "dev", "HEAD") as base_dir:
        copied = {p.relative_to(base_dir).as_posix() for p in base_dir.rglob("*") if p.is_file()}
        assert "zero" not in copied and not any(p.is_symlink() for p in base_dir.rglob("*"))
        assert {"__main__.py", "Pulumi.yaml", "Pulumi.dev.yaml", "tenants.yaml", "components/naming.py"} <= copied


def test_unknown_revision_and_missing_mode_exit_1(repo: Path, capsys):
    assert cli.main(["--project", str(repo), "diff", "--stack", "dev", "--base", "no-such-rev"]) == 1
    assert "Pulumi.dev.yaml: cannot read it at --base no-such-rev" in capsys.readouterr().err
    assert cli.main(["diff", "--stack", "dev"]) == 1


@pytest.mark.parametrize("typ,path,replaced", [
    # terraform-provider-aws internal/service/s3/bucket.go: `bucket` ForceNew
    ("aws:s3/bucket:Bucket", "bucket", True),
    ("aws:s3/bucket:Bucket", "tags.team", False),
    # terraform-provider-aws internal/service/kms/key.go: key_usage ForceNew; description, policy updated in place
    ("aws:kms/key:Key", "keyUsage", True),
    ("aws:kms/key:Key", "description", False),
    # terraform-provider-aws internal/service/keyspaces/table.go: keyspace_name, table_name ForceNew
    ("aws:keyspaces/table:Table", "tableName", True),
    ("aws:keyspaces/table:Table", "keyspaceName", True),
    ("aws:keyspaces/keyspace:Keyspace", "name", True),
    # pulumi-kubernetes provider/pkg/provider/forcenew.go: .metadata.name / .metadata.namespace for every kind
    ("kubernetes:core/v1:Namespace", "metadata.name", True),
    ("kubernetes:core/v1:Namespace", "metadata.labels.tier", False),
    ("kubernetes:core/v1:ConfigMap", "metadata.namespace", True),
    # terraform-provider-vault vault/resource_mount.go: `path` is remounted in place, `type` is ForceNew
    ("vault:index/mount:Mount", "path", False),
    ("vault:index/mount:Mount", "type", True),
    # terraform-provider-vault vault/resource_kv_secret_v2.go: mount, name ForceNew; data_json updated
    ("vault:kv/secretV2:SecretV2", "mount", True),
    ("vault:kv/secretV2:SecretV2", "name", True),
    ("vault:kv/secretV2:SecretV2", "dataJson", False),
    # components/registry_provider.py RegistryProvider.diff
    ("pulumi-python:dynamic:Resource", "tenant_id", True),
    ("pulumi-python:dynamic:Resource", "enabled", False),
])
def test_what_forces_replacement(typ, path, replaced):
    assert bool(diff.replacement_reasons(typ, True, {path: ["a", "b"]})) is replaced


def test_a_changed_provider_replaces_any_custom_resource_but_not_a_component():
    moved = {"[provider]": ["urn:pulumi:p::tenancy::pulumi:providers:aws::aws-eu-west-1",
                            "urn:pulumi:p::tenancy::pulumi:providers:aws::aws-us-west-2"]}
    assert diff.replacement_reasons("aws:iam/role:Role", True, moved) == [
        "provider changes from aws-eu-west-1 to aws-us-west-2"]
    assert diff.replacement_reasons("tenancy:index:Tenant", False, moved) == []


def test_the_only_dynamic_resources_are_registry_rows(dev):
    # DATA_KINDS labels every dynamic resource "registry row"; a new dynamic resource needs its own entry.
    assert {r["name"].removeprefix(r["parent"].rsplit("::", 1)[1]) for r in dev.of_type(
        "pulumi-python:dynamic:Resource")} == {"-registry-record"}


def test_across_stacks_nothing_is_destructive(capsys):
    # staging lacks scratch and has other settings; that is promotion, not deletion.
    assert cli.main(["diff", "--stack", "dev", "--to", "staging", "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["destructive"] == []


def test_markdown_fits_a_comment_without_losing_summaries():
    """GitHub rejects comments over 65,536 characters; a big change must still post its destructive table."""
    many = [_record("dev", "research", "tenancy:index:Tenant", {})]
    # Annotations change in place (a ConfigMap's data would replace it: pulumi-kubernetes forceNewProperties).
    many += [_record("dev", f"research-cm-{i}", "kubernetes:core/v1:ConfigMap",
                     {"metadata": {"annotations": {"k": "x" * 200}}}, parent=many[0]["urn"]) for i in range(300)]
    changed = [dict(r, inputs={"metadata": {"annotations": {"k": "y" * 200}}}) if r["type"] != "tenancy:index:Tenant"
               else r for r in many]
    bucket = _record("dev", "research-bucket", "aws:s3/bucket:Bucket", {"bucket": "a"}, parent=many[0]["urn"])
    result = diff.compare(SynthResult("dev", many + [bucket]), SynthResult("dev", changed), set(), set(), False,
                          over_time=True)
    full = diff.format_markdown(result)
    assert len(full) > 20_000
    short = diff.format_markdown(result, max_chars=20_000)
    assert len(short) <= 20_000
    assert "| **delete** | `Bucket research-bucket` | research |" in short
    assert "<summary><b>research</b>: 0 added, 300 changed, 0 replaced, 1 deleted</summary>" in short
    assert "Resource lines left out" in short and "Resource lines left out" not in full


def test_cli_markdown_exit_3_on_a_destructive_change(monkeypatch, capsys):
    base = _render("dev", False, True)
    head = SynthResult("dev", [r for r in base.resources if r["type"] == "tenancy:index:Tenant"])
    monkeypatch.setattr(diff, "against_base", lambda *a, **k: diff.compare(base, head, set(), set(), True,
                                                                           over_time=True))
    assert cli.main(["diff", "--stack", "dev", "--base", "HEAD", "--format", "markdown"]) == 3
    out = capsys.readouterr().out
    assert out.index("[!CAUTION]") < out.index("<details")
    assert "| **delete** | `Bucket research-dev` | research | S3 bucket: no longer declared" in out
    assert "| yes | yes |" in out  # protected and retained, shown for every deleted resource
    assert "- Bucket research-dev  (protected, retained)" in out


def test_offboarding_in_one_change_names_the_lifecycle_and_the_lost_vault_data():
    tenant = _record("dev", "research", "tenancy:index:Tenant", {})
    kv = _record("dev", "research-secrets-kv-s3", "vault:kv/secretV2:SecretV2", {"mount": "kv", "name": "x"},
                 parent=tenant["urn"])
    result = diff.compare(SynthResult("dev", [tenant, kv]), SynthResult("dev", [tenant]), set(), set(), False,
                          over_time=True, lifecycles=({"research": "active"}, {"research": "offboarded"}))
    (lost,) = result.destructive
    assert lost.action == "delete" and lost.reason == "Vault KV data: no longer declared: the tenant is offboarded"
    assert "research (active -> offboarded): 0 added, 0 changed, 0 replaced, 1 deleted" in diff.format_text(result)
    assert "| research | active → offboarded | 0 | 0 | 0 | 1 |" in diff.format_markdown(result)


@pytest.mark.parametrize("old,new,replaced", [
    # No identifier: another context may select another kubeconfig cluster entry, and then the provider is replaced.
    ({"context": "calypr-prod"}, {"context": "calypr-prod-admin"}, True),
    ({"kubeconfig": "/a"}, {"kubeconfig": "/b"}, True),
    ({"context": "a", "enableServerSideApply": "true"}, {"context": "a", "enableServerSideApply": "false"}, False),
    # The same identifier on both sides: nothing replaces, whatever the context.
    ({"context": "a", "clusterIdentifier": "c1"}, {"context": "b", "clusterIdentifier": "c1"}, False),
    ({"context": "a", "clusterIdentifier": "c1"}, {"context": "a", "clusterIdentifier": "c2"}, True),
    # Adding or removing it is not a change of identifier: the context rule applies (the migration path).
    ({"context": "a"}, {"context": "a", "clusterIdentifier": "c1"}, False),
    ({"context": "a"}, {"context": "b", "clusterIdentifier": "c1"}, True),
    ({"context": "a", "clusterIdentifier": "c1"}, {"context": "b"}, True),
    ({"context": "a", "clusterIdentifier": "c1"}, {"context": "a"}, False),
])
def test_kubernetes_provider_replacement_follows_diffconfig(old, new, replaced):
    """pulumi-kubernetes v4.25.0 provider/pkg/provider/provider.go DiffConfig: `diff.Updated(clusterIdentifier)`
    replaces, an unchanged identifier drops every replacement, and without one on both sides a changed
    kubeconfig/context/cluster replaces when it selects another cluster entry (assumed: the kubeconfig is not
    rendered)."""
    assert bool(diff.provider_replacement_reasons("pulumi:providers:kubernetes", old, new)) is replaced


def test_an_aws_provider_is_not_replaced_by_its_inputs():
    """pulumi-terraform-bridge pkg/tfbridge/provider.go configDiffer replaces a provider only for config marked
    ForcesProviderReplace, and pulumi-aws provider/resources.go marks none, `region` included; tenancy names each AWS
    provider after its region, so a region change is a provider URN change (test_region_and_encryption_changes)."""
    assert diff.provider_replacement_reasons("pulumi:providers:aws", {"region": "us-west-2"},
                                             {"region": "eu-west-1"}) == []


def test_the_kubernetes_provider_carries_the_cluster_identifier(dev):
    (provider,) = dev.of_type("pulumi:providers:kubernetes")
    assert provider["inputs"]["clusterIdentifier"] == "calypr-dev-eks"
    assert provider["inputs"]["context"] == "calypr-dev"


@pytest.mark.parametrize("option", ["[protect]", "[retainOnDelete]"])
def test_resource_options_never_replace(option):
    """`protect` and `retainOnDelete` live in the engine's state and are never diffed as inputs (pulumi/pulumi
    pkg/resource/deploy/step_generator.go), not even for a RandomPassword, which every input change replaces
    (terraform-provider-random resource_password.go: RequiresReplace on every argument)."""
    password = "random:index/randomPassword:RandomPassword"
    assert diff.replacement_reasons(password, True, {option: [False, True]}) == []
    assert diff.replacement_reasons(password, True, {"length": [24, 32]}) == ["length changes from 24 to 32"]


def _lifecycle_rules(*rules: dict) -> dict:
    flat: dict = {}
    diff._flatten({"rules": list(rules)}, "", flat)
    return flat


@pytest.mark.parametrize("old,new,lost", [
    ([], [{"expiration": {"days": 14}}], True),  # new expiry: objects older than 14 days go
    ([{"expiration": {"days": 14}}], [{"expiration": {"days": 7}}], True),
    ([{"expiration": {"days": 7}}], [{"expiration": {"days": 14}}], False),
    ([{"expiration": {"days": 7}}], [], False),
    ([{"expiration": {"days": 7}, "status": "Disabled"}], [{"expiration": {"days": 7}}], True),
    ([{"noncurrentVersionExpiration": {"noncurrentDays": 90}}],
     [{"noncurrentVersionExpiration": {"noncurrentDays": 30}}], True),
    ([{"noncurrentVersionExpiration": {"noncurrentDays": 30}}],
     [{"noncurrentVersionExpiration": {"noncurrentDays": 90}}], False),
    # A rule that now applies to the whole bucket instead of one prefix expires objects it never reached.
    ([{"filter": {"prefix": "tmp/"}, "expiration": {"days": 7}}],
     [{"filter": {"prefix": ""}, "expiration": {"days": 7}}], True),
])
def test_lifecycle_changes_that_delete_objects(old, new, lost):
    """terraform-provider-aws internal/service/s3/bucket_lifecycle_configuration.go puts the new rule set: an
    `expiration` deletes current objects, a `noncurrent_version_expiration` old versions, after their days."""
    def rules(items):
        return _lifecycle_rules(*({"status": "Enabled", "filter": {"prefix": ""}, **r} for r in items))
    typ = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    assert bool(diff.data_loss_reasons(typ, rules(old), rules(new))) is lost


@pytest.mark.parametrize("old,new,lost", [
    ("Enabled", "Suspended", True), ("Suspended", "Enabled", False), ("Suspended", "Suspended", False),
    ("Enabled", None, True),  # its resource deleted: terraform-provider-aws suspends versioning on delete
])
def test_suspending_versioning_loses_overwritten_objects(old, new, lost):
    """terraform-provider-aws internal/service/s3/bucket_versioning.go: update puts the new status; delete puts
    Suspended. Once suspended, an overwrite or delete destroys the previous object instead of keeping a version."""
    def flat(status):
        return None if status is None else {"versioningConfiguration.status": status, "bucket": "b"}
    typ = "aws:s3/bucketVersioning:BucketVersioning"
    assert bool(diff.data_loss_reasons(typ, flat(old), flat(new))) is lost


def test_a_new_context_without_identifier_replaces_every_kubernetes_object(repo: Path):
    """pulumi-kubernetes v4.25.0 provider/pkg/provider/provider.go DiffConfig replaces the provider, and the engine
    every resource whose provider is replaced (pulumi/pulumi pkg/resource/deploy/step_generator.go): not only the
    namespaces, every object the stack manages in the cluster; the namespaces are the destructive ones."""
    stack_file = repo / "Pulumi.dev.yaml"
    text = stack_file.read_text()
    stack_file.write_text(re.sub(r"\n    clusterIdentifier: .*", "", text))
    _commit(repo)
    stack_file.write_text(stack_file.read_text().replace("context: calypr-dev", "context: calypr-dev-admin"))
    result = diff.against_base(repo, "dev", "HEAD")
    replaced = {key for entry in result.tenants for key in entry.replaced}
    objects = {r["urn"].split("::", 2)[2] for r in synth.run(repo, "dev").resources
               if r["custom"] and (r["type"].startswith("kubernetes:") or r["type"] == diff.KUBERNETES_PROVIDER)}
    assert replaced == objects and len(objects) > 90
    assert {(d.action, d.urn.rsplit("::", 1)[1]) for d in result.destructive} == {
        ("replace", r.rsplit("::", 1)[1]) for r in objects if ":core/v1:Namespace::" in r}
    assert diff.exit_code(result) == 3


def _legacy_vault_names(org: str, environment: str, tenant: str, bucket=None):
    """The Vault names before they carried the org (`argo/apps/<tenant>`, `tenant-<env>-<tenant>`)."""
    import dataclasses

    names = _DERIVE(org, environment, tenant, bucket)
    base = f"argo/apps/{tenant}"
    return dataclasses.replace(names, vault_base_path=base, vault_s3_path=f"{base}/s3/artifacts",
                               vault_minicluster_path=f"{base}/minicluster",
                               vault_policy=f"tenant-{environment}-{tenant}", vault_role=f"tenant-{environment}-{tenant}")


from components import naming as _naming  # noqa: E402
from tests.project_copy import copy_project

_DERIVE = _naming.derive


def test_the_org_in_vault_paths_shows_as_a_replacement_of_the_kv_entries(monkeypatch, capsys):
    """An existing stack's Vault entries move from argo/apps/<tenant> to argo/orgs/<org>/<tenant>: `name` is
    ForceNew on `vault_kv_secret_v2` (terraform-provider-vault `vault/resource_kv_secret_v2.go`), so Pulumi
    replaces each entry, and `tenancy diff` must say so as a destructive change (docs/migrations.md)."""
    from tests.conftest import render, sample

    monkeypatch.setattr(_naming, "derive", _legacy_vault_names)
    base = render("dev")
    monkeypatch.setattr(_naming, "derive", _DERIVE)
    head = sample("dev")
    monkeypatch.setattr(diff, "against_base", lambda *a, **k: diff.compare(base, head, set(), set(), False,
                                                                           over_time=True))
    assert cli.main(["diff", "--stack", "dev", "--base", "HEAD"]) == 3
    out = capsys.readouterr().out
    assert "DESTRUCTIVE CHANGE(S)" in out
    for tenant, suffix in (("research", "s3"), ("research", "minicluster"), ("scratch", "s3")):
        assert re.search(rf"!!! REPLACE SecretV2 {tenant}-secrets-kv-{suffix} \({tenant}\).*\bname\b", out), out
    # Policies and roles are replaced too, but hold no data: they are not among the destructive lines.
    assert "!!! REPLACE Policy" not in out and "!!! REPLACE AuthBackendRole" not in out


@pytest.mark.parametrize(
    ("typ", "field", "replaced"),
    [
        ("kubernetes:core/v1:ConfigMap", "data.default-v1", True),
        ("kubernetes:core/v1:Secret", "stringData.token", True),
        ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "roleRef.name", True),
        ("kubernetes:apps/v1:Deployment", "spec.selector.matchLabels.app", True),
        ("kubernetes:core/v1:Service", "spec.clusterIP", True),
        ("kubernetes:core/v1:Namespace", "metadata.name", True),
        ("kubernetes:core/v1:ConfigMap", "metadata.labels.team", False),
        ("kubernetes:apps/v1:Deployment", "spec.replicas", False),
        ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "subjects[0].name", False),
        ("kubernetes:core/v1:Namespace", "metadata.labels.team", False),
    ],
)
def test_kubernetes_objects_are_replaced_where_the_provider_replaces_them(typ, field, replaced):
    """pulumi-kubernetes v4.25.0 provider/pkg/provider/diff.go `forceNewProperties`: `.metadata.name/.namespace` of
    every kind; a ConfigMap's `.data`/`.binaryData` and a Secret's `.type`/`.stringData`/`.data` unless the provider
    enables mutable ConfigMaps/Secrets (tenancy's does not); a (Cluster)RoleBinding's `.roleRef`; a Deployment's
    `.spec.selector`; a Service's `.spec.clusterIP`. The real engine replaced the generator's expected-tenants
    ConfigMap on every catalogue edit while `diff` called it an update (tests/e2e/test_pulumi_plan_matches_diff.py)."""
    reasons = diff.replacement_reasons(typ, True, {field: ["old", "new"]})
    assert bool(reasons) is replaced, reasons
