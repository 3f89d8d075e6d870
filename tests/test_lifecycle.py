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


# --- what Argo CD does with the tenant's deployed workloads at each step -----------------------------------------------

def _argocd_view(stack: str, lifecycle: str, tmp_path):
    """(the tenant's records, the generator's parameter map for its row or None, the Application Argo CD would
    render from it or None, the expected-tenants list the generator enforces)."""
    from tests.test_argocd import generated_application, generator_objects, generator_params

    result = render(stack, CATALOGUE.format(name="acme", lifecycle=lifecycle), tmp_path)
    params = generator_params(result).get("calypr-acme")
    objects = generator_objects(result)
    appset = objects["ApplicationSet"]["inputs"]
    expected = json.loads(next(iter(objects["ExpectedConfigMap"]["inputs"]["data"].values())))
    app = generated_application(appset, params) if params is not None else None
    return result.tenant("acme"), params, app, expected


def _kinds(records: list[dict]) -> set[str]:
    return {r["inputs"].get("kind") for r in records if r["custom"]}


def test_active_tenant_syncs_automatically_in_its_project(tmp_path):
    from tests.test_argocd import auto_sync_enabled

    records, params, app, expected = _argocd_view("dev", "active", tmp_path)
    assert "AppProject" in _kinds(records) and expected == {"calypr-acme": "active"}
    assert auto_sync_enabled(app) and app["spec"]["project"] == "calypr-acme"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_suspended_tenant_keeps_its_application_and_workloads_without_automated_sync(stack, tmp_path):
    from tests.test_argocd import RESOURCES_FINALIZER, auto_sync_enabled

    records, params, app, expected = _argocd_view(stack, "suspended", tmp_path)
    row = one(records, "pulumi-python:dynamic:Resource")["inputs"]
    assert (row["enabled"], row["lifecycle"]) == (False, "suspended")
    # Still generated and still expected: the generator refuses any answer without it, so Argo never deletes it.
    assert params is not None and expected == {"calypr-acme": "suspended"}
    assert app is not None and not auto_sync_enabled(app)
    assert RESOURCES_FINALIZER not in app["metadata"].get("finalizers", [])
    # Its project and deployer stay, so a platform operator can still sync it by hand.
    assert "AppProject" in _kinds(records)
    assert any(m.get("metadata", {}).get("name") == "tenancy-deployer" for m in (r["inputs"] for r in records))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_offboarded_tenant_loses_its_application_but_not_what_it_deployed(stack, tmp_path):
    records, params, app, expected = _argocd_view(stack, "offboarded", tmp_path)
    row = one(records, "pulumi-python:dynamic:Resource")["inputs"]
    assert (row["enabled"], row["lifecycle"]) == (False, "offboarded")
    # Not generated and not expected: the next successful answer lacks it and Argo deletes the Application,
    # which carries no resources finalizer (test_argocd: the ApplicationSet never cascades).
    assert params is None and app is None and expected == {}
    assert "AppProject" not in _kinds(records)
    assert not any(m.get("metadata", {}).get("name") == "tenancy-deployer" for m in (r["inputs"] for r in records))
