"""Suspending and offboarding a tenant: access goes, data stays."""

from __future__ import annotations

import json

import pytest

from tests.conftest import render

CATALOGUE = """
tenants:
  - name: {name}
    team: t
    lifecycle: {lifecycle}
    repo: {{url: https://github.com/x/{name}.git}}
    artifacts: {{encryption: kms}}
    minicluster: {{enabled: true, users: [alice]}}
    owners: {{admins: [{name}-admins], developers: [{name}-devs]}}
"""


def tenant(stack: str, lifecycle: str, tmp_path) -> list[dict]:
    result = render(stack, CATALOGUE.format(name="acme", lifecycle=lifecycle), tmp_path)
    return result.tenant("acme")


def types(records: list[dict]) -> set[str]:
    return {r["type"] for r in records}


def one(records: list[dict], type_token: str) -> dict:
    (record,) = [r for r in records if r["type"] == type_token]
    return record


def manifests(records: list[dict], kind: str) -> list[dict]:
    return [r["inputs"] for r in records if r["custom"] and r["inputs"].get("kind") == kind]


DATA = {"aws:s3/bucket:Bucket", "aws:kms/key:Key", "kubernetes:core/v1:Namespace"}
ROLE = "vault:kubernetes/authBackendRole:AuthBackendRole"


def registry_enabled(records: list[dict]) -> bool:
    return one(records, "pulumi-python:dynamic:Resource")["inputs"]["enabled"]


def pods_quota(records: list[dict]) -> str:
    return manifests(records, "ResourceQuota")[0]["spec"]["hard"]["pods"]


def test_active_tenant_has_working_access(tmp_path):
    records = tenant("dev", "active", tmp_path)
    assert one(records, "aws:iam/accessKey:AccessKey")["inputs"].get("status", "Active") == "Active"
    assert "aws:iam/userPolicyAttachment:UserPolicyAttachment" in types(records)
    assert ROLE in types(records) and registry_enabled(records) and pods_quota(records) != "0"


def test_suspended_static_tenant_is_revoked_but_kept(tmp_path):
    records = tenant("dev", "suspended", tmp_path)
    assert one(records, "aws:iam/accessKey:AccessKey")["inputs"]["status"] == "Inactive"
    assert "aws:iam/userPolicyAttachment:UserPolicyAttachment" not in types(records)
    assert ROLE not in types(records), "External Secrets must not be able to log in"
    assert pods_quota(records) == "0"
    assert registry_enabled(records) is False
    # Kept for resuming: namespace, data, secret values and their delivery objects, RBAC.
    assert DATA <= types(records)
    assert "vault:kv/secretV2:SecretV2" in types(records)
    assert manifests(records, "ExternalSecret") and manifests(records, "RoleBinding")


def test_suspended_irsa_tenant_cannot_assume_its_role(tmp_path):
    records = tenant("prod", "suspended", tmp_path)
    trust = json.loads(one(records, "aws:iam/role:Role")["inputs"]["assumeRolePolicy"])
    assert [s["Effect"] for s in trust["Statement"]] == ["Deny"]
    assert "aws:iam/rolePolicyAttachment:RolePolicyAttachment" not in types(records)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_offboarded_tenant_loses_all_access_and_keeps_its_data(stack, tmp_path):
    records = tenant(stack, "offboarded", tmp_path)
    found = types(records)
    for gone in ("aws:iam/user:User", "aws:iam/role:Role", "aws:iam/policy:Policy", "aws:iam/accessKey:AccessKey",
                 "vault:index/policy:Policy", ROLE, "vault:kv/secretV2:SecretV2",
                 "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
                 "kubernetes:rbac.authorization.k8s.io/v1:Role",
                 "kubernetes:flux-framework.org/v1alpha2:MiniCluster",
                 "kubernetes:external-secrets.io/v1:ExternalSecret"):
        assert gone not in found, gone
    assert DATA <= found
    assert registry_enabled(records) is False, "the row is disabled, never deleted"
    assert pods_quota(records) == "0"
    policies = manifests(records, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") and not p["spec"].get("egress")
               for p in policies), "the namespace stays fenced"
    protected = stack == "prod"
    for record in records:
        if record["type"] in DATA:
            assert record["protect"] is protected and record["retainOnDelete"] is protected, record["name"]


def test_every_data_resource_of_every_prod_tenant_is_protected(prod, dev):
    for result, expected in ((prod, True), (dev, False)):
        for name in result.tenant_names():
            for record in result.tenant(name):
                if record["type"] in DATA | {"aws:keyspaces/table:Table"}:
                    assert (record["protect"], record["retainOnDelete"]) == (expected, expected), record["urn"]
    for table in prod.of_type("aws:keyspaces/table:Table"):
        assert table["protect"] and table["retainOnDelete"]
