"""Two stacks of one project on one cluster or one Vault: `validate` refuses what would make them collide.

What each system compares is upstream's: a Kubernetes namespace is one object per cluster; Vault keeps one policy
per name (`sys/policy/<name>`, vault `vault/policy_store.go`), one role per name and auth mount
(`auth/<mount>/role/<name>`, vault-plugin-auth-kubernetes `path_role.go`) and one KV entry per mount and path,
each write replacing the last.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tenancy import cli
from tests.conftest import PROJECT
from tests.project_copy import copy_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    copy_project(copy)
    return copy


def _edit(project: Path, stack: str, **changes) -> None:
    path = project / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        doc["config"][f"tenancy:{key}"] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _config(stack: str, key: str):
    return yaml.safe_load((PROJECT / f"Pulumi.{stack}.yaml").read_text())["config"][f"tenancy:{key}"]


def _same_cluster() -> dict:
    return {**_config("staging", "kubernetes"), "context": "calypr-dev", "clusterIdentifier": "calypr-dev-eks"}


def _validate(project: Path, capsys, stack: str = "dev") -> tuple[int, str]:
    code = cli.main(["--project", str(project), "validate", "--stack", stack])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_sample_stacks_share_nothing(project, capsys):
    for stack in ("dev", "staging", "prod"):
        assert _validate(project, capsys, stack)[0] == 0


def test_two_stacks_of_one_org_on_one_cluster_are_refused(project, capsys):
    _edit(project, "staging", kubernetes=_same_cluster())
    code, out = _validate(project, capsys)
    assert code == 1
    assert ("Pulumi.dev.yaml: tenancy:org: stack 'staging' deploys to the same cluster (clusterIdentifier "
            "'calypr-dev-eks') with the same org") in out
    assert "Pulumi.dev.yaml: tenancy:admission.namespace: stack 'staging'" in out
    assert "Pulumi.dev.yaml: tenancy:argocd.enabled: stack 'staging'" in out
    assert "Traceback" not in out


def test_distinct_orgs_with_their_own_platform_namespaces_share_a_cluster(project, capsys):
    _edit(project, "staging", org="acme", kubernetes=_same_cluster(),
          admission={**_config("staging", "admission"), "namespace": "tenancy-acme"},
          argocd={**_config("staging", "argocd"), "enabled": False})
    assert _validate(project, capsys) == (0, "dev: 3 tenant(s) valid: research, compliance, scratch\n")


def test_orgs_whose_namespaces_run_into_each_other_are_refused(project, capsys):
    """'-' joins org and tenant: org `calypr-research`'s tenant `x` and org `calypr`'s `research-x` are one name."""
    _edit(project, "staging", org="calypr-compliance",
          kubernetes=_same_cluster(),
          admission={**_config("staging", "admission"), "namespace": "tenancy-acme"},
          argocd={**_config("staging", "argocd"), "enabled": False})
    _edit(project, "dev", org="calypr")
    catalogue = yaml.safe_load((project / "tenants.yaml").read_text())
    extra = {**next(t for t in catalogue["tenants"] if t["name"] == "scratch"), "name": "compliance-scratch",
             "environments": ["dev"]}
    twin = {**extra, "name": "scratch", "environments": ["staging"]}
    catalogue["tenants"] = [t for t in catalogue["tenants"] if t["name"] != "scratch"] + [extra, twin]
    (project / "tenants.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    code, out = _validate(project, capsys)
    assert code == 1 and "derives the same tenant namespaces wf-calypr-compliance-scratch" in out, out


def test_a_shared_kv_mount_needs_distinct_orgs_and_one_owner(project, capsys):
    dev_vault = _config("dev", "vault")
    _edit(project, "staging", vault={**_config("staging", "vault"), "address": dev_vault["address"],
                                     "kvMount": dev_vault["kvMount"]})
    code, out = _validate(project, capsys)
    assert code == 1
    assert "tenancy:vault.kvMount.path: stack 'staging' uses the same Vault" in out
    assert "with the same org: entries argo/orgs/<org>/<tenant> carry no environment" in out
    assert "tenancy:vault.kvMount.create: stack 'staging' uses the same Vault" in out
    # Another org, and the mount left to dev: nothing collides (policies and roles carry org and environment).
    _edit(project, "staging", org="acme", vault={**_config("staging", "vault"), "address": dev_vault["address"],
                                                 "kvMount": {**dev_vault["kvMount"], "create": False}})
    assert _validate(project, capsys)[0] == 0
