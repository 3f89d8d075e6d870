"""The tenant roles against the AppProject: what a sync may not bring, a tenant may not write by hand either.

Argo CD refuses the kinds in an AppProject's `namespaceResourceBlacklist` at sync (argo-cd
`pkg/apis/application/v1alpha1/app_project_types.go`, `IsGroupKindPermitted`), but a team admin holds the
`tenant-admin` Role directly (and the deployer Argo CD impersonates holds the same Role). Where the two disagree,
the blacklist only stops the Git route. RBAC rules match by API group and plural resource name
(kubernetes `pkg/apis/rbac/v1/evaluation_helpers.go`, `RuleAllows`).
"""

from __future__ import annotations

import pytest

from components import argocd, naming

WRITES = ("create", "update", "patch", "delete", "deletecollection")


def _plural(kind: str) -> str:
    """The resource of a kind as its CRD or the core API names it (every blacklisted kind pluralises regularly)."""
    lower = kind.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


def _allows(rules: list[dict], verb: str, group: str, resource: str) -> bool:
    return any(group in rule.get("apiGroups", []) and resource in rule.get("resources", [])
               and verb in rule.get("verbs", []) and not rule.get("resourceNames") for rule in rules)


@pytest.mark.parametrize("group, kind", argocd.NAMESPACE_RESOURCE_BLACKLIST)
def test_tenant_admin_cannot_write_what_the_app_project_keeps_from_syncs(dev, group, kind):
    roles = [r["inputs"] for r in dev.resources if r["custom"] and r["inputs"].get("kind") == "Role"
             and r["inputs"]["metadata"]["name"] == naming.TENANT_ADMIN_ROLE]
    assert roles
    for role in roles:
        written = [v for v in WRITES if _allows(role["rules"], v, group, _plural(kind))]
        assert written == [], f"{role['metadata']['namespace']}: tenant-admin may {written} {group}/{kind}"


def test_tenant_admin_reads_the_ratify_objects_tenancy_installs(dev):
    """Read stays: a team admin sees why a pod was refused (which certificate and policy are in force)."""
    installed = {(r["inputs"]["apiVersion"].split("/")[0], r["inputs"]["kind"], r["inputs"]["metadata"]["namespace"])
                 for r in dev.resources if r["custom"] and str(r["inputs"].get("apiVersion", "")).startswith(
                     "config.ratify.deislabs.io/")}
    assert installed
    roles = {r["inputs"]["metadata"]["namespace"]: r["inputs"] for r in dev.resources if r["custom"]
             and r["inputs"].get("kind") == "Role" and r["inputs"]["metadata"]["name"] == naming.TENANT_ADMIN_ROLE}
    for group, kind, namespace in installed:
        for verb in ("get", "list", "watch"):
            assert _allows(roles[namespace]["rules"], verb, group, _plural(kind)), (namespace, kind, verb)
