"""Issue 21 acceptance: the destructive-edit comparison, rerun through the real `tenancy diff --base` path.

Each row is a realistic edit of the catalogue or a stack's settings, applied to a throw-away git copy of the
project, with the data it destroys (by action, resource type and tenant) and the exit code CI acts on: 0 no
change, 2 changes, 3 destructive. No data-holding delete, replace or expiry may go unflagged, and nothing
harmless may be flagged. What each row expects was read upstream:

- a replaced Kubernetes provider replaces every object under it: pulumi-kubernetes v4.25.0
  provider/pkg/provider/provider.go `DiffConfig` (a `clusterIdentifier` on both sides alone decides; without
  one, a changed `context` replaces) and pulumi/pulumi pkg/resource/deploy/step_generator.go (a resource whose
  provider is replaced is replaced);
- S3 expiry and versioning: terraform-provider-aws internal/service/s3/bucket_lifecycle_configuration.go
  (PutBucketLifecycleConfiguration with the new rules: `expiration` deletes current objects,
  `noncurrent_version_expiration` old versions) and internal/service/s3/bucket_versioning.go (PutBucketVersioning
  with the new status; once Suspended an overwrite destroys the previous object);
- `protect` and `retainOnDelete` are resource options kept in the state, never diffed as inputs
  (pulumi/pulumi pkg/resource/deploy/step_generator.go), so flipping `tenancy:protectData` replaces nothing;
- ForceNew fields of the data kinds: tenancy/diff.py DATA_KINDS (each entry names its upstream file).

One repository serves every row, reset between rows, and every render goes through render's cache in it: the
base side renders once per base, and a catalogue edit renders only the tenants it touches.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest
import yaml

from tenancy import cli
from tests.project_copy import copy_project

PROJECT = Path(__file__).resolve().parent.parent
GIT = ["-c", "user.email=t@example.com", "-c", "user.name=t"]


def _git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(project), *GIT, *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("edits") / "project"
    copy_project(project)
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "sample")
    _git(project, "tag", "sample")
    return project


# --- edits -------------------------------------------------------------------------------------------------------

def _catalogue(project: Path, change: Callable[[dict], None]) -> None:
    path = project / "tenants.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _tenant(tenant_name: str, **fields) -> Callable[[Path], None]:
    """Sets `fields` of tenant `tenant_name` (mappings are merged one level deep, a None there removes the key)."""
    def change(doc: dict) -> None:
        (tenant,) = [t for t in doc["tenants"] if t["name"] == tenant_name]
        for key, value in fields.items():
            if isinstance(value, dict):
                section = tenant.setdefault(key, {})
                section.update(value)
                for gone in [k for k, v in value.items() if v is None]:
                    del section[gone]
            else:
                tenant[key] = value
    return lambda project: _catalogue(project, change)


def _drop(name: str) -> Callable[[Path], None]:
    return lambda project: _catalogue(project, lambda doc: doc.update(
        tenants=[t for t in doc["tenants"] if t["name"] != name]))


def _rename(name: str, new: str) -> Callable[[Path], None]:
    return _tenant(name, name=new)


def _add(name: str, environments: list[str]) -> Callable[[Path], None]:
    return lambda project: _catalogue(project, lambda doc: doc["tenants"].append({
        "name": name, "displayName": "Genomics", "team": "genomics",
        "repo": {"url": "https://github.com/calypr/genomics-workflows.git"},
        "owners": {"admins": ["genomics-admins"], "developers": ["genomics-developers"]},
        "environments": environments}))


def _settings(stack: str, key: str, **fields) -> Callable[[Path], None]:
    """Sets `fields` of the mapping `tenancy:<key>` in Pulumi.<stack>.yaml (a field set to None is removed)."""
    def edit(project: Path) -> None:
        path = project / f"Pulumi.{stack}.yaml"
        doc = yaml.safe_load(path.read_text())
        section = doc["config"][f"tenancy:{key}"]
        for name, value in fields.items():
            if value is None:
                section.pop(name, None)
            else:
                section[name] = value
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return edit


def _setting(stack: str, key: str, value) -> Callable[[Path], None]:
    def edit(project: Path) -> None:
        path = project / f"Pulumi.{stack}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["config"][f"tenancy:{key}"] = value
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return edit


def _both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(project: Path) -> None:
        for one in edits:
            one(project)
    return edit


# --- the table ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Edit:
    name: str
    stack: str
    edit: Callable[[Path], None]
    exit_code: int
    # (action, resource type, tenant) of every destructive change, as many times as it is listed
    destructive: tuple[tuple[str, str, str], ...] = ()
    base: Optional[Callable[[Path], None]] = None  # committed first: the deployed state the edit starts from


def _times(n: int, item: tuple[str, str, str]) -> tuple[tuple[str, str, str], ...]:
    return (item,) * n


# Every namespace (the tenants' and the platform's tenancy-system) goes with a replaced Kubernetes provider.
NAMESPACES = (
        ("replace", "Namespace", "(shared)"), ("replace", "Namespace", "compliance"),
        ("replace", "Namespace", "research"))
# A new table starts empty (migrateFrom only confirms the move: RegistryProvider.check), and every row moves to it.
REGISTRY_MOVE = (
        ("replace", "Table", "(shared)"), ("replace", "Resource", "compliance"), ("replace", "Resource", "research"))

EDITS = [
    Edit("add a tenant", "prod", _add("genomics", ["prod"]), 2),
    Edit("raise the noncurrent-version expiry", "prod", _settings("prod", "artifacts", noncurrentVersionExpireDays=120), 2),
    Edit("lengthen a temporary tenant's expiry", "dev", _tenant("scratch", artifacts={"expireAfterDays": 30}), 2),
    Edit("temporary -> standard (expiry removed)", "dev", _tenant("scratch", artifacts={"storageClass": "standard",
                                                                                  "expireAfterDays": None}), 2),
    Edit("change an artifact keyPrefix", "prod", _tenant("research", artifacts={"keyPrefix": "pipelines/"}), 2),
    Edit("aes256 -> kms (a key is added)", "prod", _tenant("research", artifacts={"encryption": "kms"}), 2),
    Edit("protectData true -> false (options only)", "prod", _setting("prod", "protectData", False), 2),
    Edit("another context for the same cluster identifier", "prod",
         _settings("prod", "kubernetes", context="calypr-prod-admin"), 2),
    Edit("add clusterIdentifier, context unchanged (the migration)", "prod",
         _settings("prod", "kubernetes", clusterIdentifier="calypr-prod-eks"), 2,
         base=_settings("prod", "kubernetes", clusterIdentifier=None)),
    # compliance is prod's only tenant in eu-west-1: the platform's access-log bucket there goes with it.
    Edit("remove a live tenant", "prod", _drop("compliance"), 3, (
        ("delete", "Bucket", "(shared)"), ("delete", "Bucket", "compliance"), ("delete", "Key", "compliance"), ("delete", "Namespace", "compliance"),
        ("delete", "Resource", "compliance"))),
    # Offboarding keeps bucket, key and namespace; what goes is what tenancy generated and kept only in Vault.
    Edit("offboard a tenant without generated secrets", "prod", _tenant("compliance", lifecycle="offboarded"), 2),
    Edit("offboard a tenant with generated secrets", "prod", _tenant("research", lifecycle="offboarded"), 3, (
        *_times(2, ("delete", "RandomPassword", "research")), ("delete", "SecretV2", "research"))),
    Edit("rename a tenant", "dev", _rename("scratch", "sandbox"), 3, (
        ("delete", "Bucket", "scratch"), ("delete", "Namespace", "scratch"), ("delete", "Resource", "scratch"),
        ("delete", "SecretV2", "scratch"))),
    # research leaves us-west-2, whose access-log bucket then holds no tenant's logs and goes.
    Edit("move a tenant to another region", "prod", _tenant("research", region="eu-west-1"), 3, (
        ("delete", "Bucket", "(shared)"), ("replace", "Bucket", "research"))),
    Edit("kms -> aes256 (the key goes)", "prod", _tenant("compliance", artifacts={"encryption": "aes256"}), 3, (
        ("delete", "Key", "compliance"),)),
    Edit("change the context without a cluster identifier", "prod",
         _settings("prod", "kubernetes", context="calypr-prod-admin", clusterIdentifier=None), 3, NAMESPACES),
    Edit("another cluster identifier", "prod", _settings("prod", "kubernetes", clusterIdentifier="calypr-prod-eks2"),
         3, NAMESPACES),
    Edit("add clusterIdentifier and change the context at once", "prod",
         _settings("prod", "kubernetes", clusterIdentifier="calypr-prod-eks", context="calypr-prod-admin"), 3, NAMESPACES,
         base=_settings("prod", "kubernetes", clusterIdentifier=None)),
    Edit("versioning true -> false", "prod", _settings("prod", "artifacts", versioning=False), 3, (
        ("expire", "BucketVersioning", "compliance"), ("expire", "BucketVersioning", "research"))),
    Edit("storageClass standard -> temporary", "prod", _tenant("compliance", artifacts={"storageClass": "temporary"}),
         3, (("expire", "BucketLifecycleConfiguration", "compliance"),)),
    Edit("shorten a temporary tenant's expiry", "dev", _tenant("scratch", artifacts={"expireAfterDays": 3}), 3, (
        ("expire", "BucketLifecycleConfiguration", "scratch"),)),
    Edit("lower the noncurrent-version expiry", "prod", _settings("prod", "artifacts", noncurrentVersionExpireDays=30), 3, (
        ("expire", "BucketLifecycleConfiguration", "compliance"), ("expire", "BucketLifecycleConfiguration", "research"))),
    Edit("another Vault KV mount path", "dev", _settings("dev", "vault", kvMount={"path": "kv-tenants", "create": True}),
         3, (("replace", "SecretV2", "compliance"), *_times(2, ("replace", "SecretV2", "research")),
             ("replace", "SecretV2", "scratch"))),
    Edit("another registry table without migrateFrom", "prod", _settings("prod", "registry", table="tenants_v2"), 3, REGISTRY_MOVE),
    Edit("another registry table with migrateFrom", "prod",
         _settings("prod", "registry", table="tenants_v2", migrateFrom="tenant_ops.tenant_configs"), 3,
         REGISTRY_MOVE),
]


def _destructive_of(report: dict) -> Counter:
    def typ(urn: str) -> str:
        return urn.split("::")[2].rsplit("$", 1)[-1].rsplit(":", 1)[-1]
    return Counter((d["action"], typ(d["urn"]), d["tenant"]) for d in report["destructive"])


def _run(repo: Path, edit: Edit, capsys) -> tuple[int, dict]:
    _git(repo, "reset", "-q", "--hard", "sample")
    if edit.base is not None:
        edit.base(repo)
        _git(repo, "commit", "-qam", "base")
    edit.edit(repo)
    capsys.readouterr()
    code = cli.main(["--project", str(repo), "diff", "--stack", edit.stack, "--base", "HEAD", "--format", "json",
                     "--jobs", "1"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else {}


def test_every_destructive_edit_is_flagged_and_nothing_else(repo: Path, capsys):
    started = time.monotonic()
    failures = []
    for edit in EDITS:
        code, report = _run(repo, edit, capsys)
        found = _destructive_of(report)
        if code != edit.exit_code or found != Counter(edit.destructive):
            failures.append(f"{edit.name}: exit {code} (want {edit.exit_code}), destructive {sorted(found.elements())}"
                            f" (want {sorted(edit.destructive)})")
    assert not failures, f"{len(EDITS)} edits in {time.monotonic() - started:.0f}s; wrong:\n" + "\n".join(failures)
