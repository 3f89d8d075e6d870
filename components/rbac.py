"""RBAC inside a tenant namespace: the workflow runner's identity, and the roles of the tenant's people.

Every grant here is a Role or RoleBinding in the tenant's own namespace: tenancy never binds a tenant subject
cluster-wide. Tenant roles never grant `*`, escalate, bind or impersonate, and never write the objects that
fence the tenant in (its Namespace, ResourceQuota, LimitRange, NetworkPolicies).
"""

from __future__ import annotations

from typing import Any, Optional

from . import naming
from .naming import TenantNames

RBAC_API = "rbac.authorization.k8s.io/v1"
_READ = ["get", "list", "watch"]
_WRITE = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
# The built-in aggregate role the platform's cluster-admin group gets in each tenant namespace.
PLATFORM_ADMIN_CLUSTER_ROLE = "admin"


def _meta(name: str, names: TenantNames, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": names.namespace, **extra}


def runner_service_account(names: TenantNames, role_arn: Optional[Any]) -> dict[str, Any]:
    """`wf-runner`; with IRSA, the annotation that makes EKS inject web-identity credentials for the role.

    The token is automounted on purpose: Argo's wait container reports results with it. Keeping it from the
    pipeline container would need `executor.serviceAccountName`, for which Argo mounts a never-expiring
    `<sa>.service-account-token` Secret; a short-lived, rotated projected token that can only report task
    results and read one ConfigMap is the smaller risk.
    """
    metadata = _meta(naming.RUNNER_SERVICE_ACCOUNT, names)
    if role_arn is not None:
        metadata["annotations"] = {IRSA_ROLE_ANNOTATION: role_arn}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata, "automountServiceAccountToken": True}


def executor_role(names: TenantNames) -> dict[str, Any]:
    """Exactly what Argo's executor (v3.4+) needs: report task results, read the artifact repository."""
    return {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": _meta(naming.EXECUTOR_ROLE, names),
        "rules": [
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [naming.ARTIFACT_REPOSITORIES_CONFIGMAP],
                "verbs": ["get"],
            },
        ],
    }


def tenant_admin_role(names: TenantNames) -> dict[str, Any]:
    """Runs the tenant's workloads: pods, jobs, Argo and MiniClusters; reads Secrets, Ratify and its fences.

    Ratify's namespaced objects are tenancy's (`supplyChain`: the trust anchor and the verification policy), so
    like the other fences they are read-only here, as the AppProject's blacklist keeps them out of syncs: a
    tenant that could rewrite them would choose which signatures its own pods need.
    """
    return {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": _meta(naming.TENANT_ADMIN_ROLE, names),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods", "services", "configmaps", "persistentvolumeclaims"],
                "verbs": _WRITE,
            },
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": _READ},
            {"apiGroups": [""], "resources": ["pods/exec", "pods/portforward"], "verbs": ["create"]},
            {
                "apiGroups": [""],
                "resources": ["secrets", "serviceaccounts", "events", "resourcequotas", "limitranges"],
                "verbs": _READ,
            },
            {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "replicasets"], "verbs": _WRITE},
            {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": _WRITE},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": _READ},
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflows", "workflowtemplates", "cronworkflows", "workfloweventbindings"],
                "verbs": _WRITE,
            },
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowtaskresults", "workflowartifactgctasks"],
                "verbs": _READ,
            },
            {
                "apiGroups": ["config.ratify.deislabs.io"],
                "resources": [
                    "namespacedkeymanagementproviders",
                    "namespacedverifiers",
                    "namespacedstores",
                    "namespacedpolicies",
                ],
                "verbs": _READ,
            },
            {"apiGroups": ["flux-framework.org"], "resources": ["miniclusters"], "verbs": _WRITE},
        ],
    }


def tenant_developer_role(names: TenantNames) -> dict[str, Any]:
    """Submits and watches workflows and reads their logs; changes nothing else."""
    return {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": _meta(naming.TENANT_DEVELOPER_ROLE, names),
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "pods/log", "events", "configmaps", "services"], "verbs": _READ},
            {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "list", "watch", "create"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates", "cronworkflows"], "verbs": _READ},
            {"apiGroups": ["flux-framework.org"], "resources": ["miniclusters"], "verbs": _READ},
        ],
    }


def role_binding(
    names: TenantNames, name: str, role_kind: str, role: str, subjects: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": _meta(name, names),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects,
    }


def groups(group_names: list[str]) -> list[dict[str, str]]:
    return [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g} for g in group_names]


def rbac_manifests(
    names: TenantNames, admins: list[str], developers: list[str], cluster_admin_group: str, role_arn: Optional[Any]
) -> list[dict[str, Any]]:
    """Service account, roles and bindings of one tenant namespace; a binding with no groups is left out."""
    runner = [{"kind": "ServiceAccount", "name": naming.RUNNER_SERVICE_ACCOUNT, "namespace": names.namespace}]
    manifests = [
        runner_service_account(names, role_arn),
        executor_role(names),
        role_binding(names, naming.EXECUTOR_ROLE, "Role", naming.EXECUTOR_ROLE, runner),
        tenant_admin_role(names),
        tenant_developer_role(names),
        # The platform group gets the built-in `admin` role through a RoleBinding in each namespace rather than
        # a ClusterRoleBinding: tenancy then owns no cluster-wide grant at all, and removing a tenant removes
        # every grant it made. `admin` can manage in-namespace RBAC, which tenant roles never can.
        role_binding(
            names,
            naming.PLATFORM_ADMIN_BINDING,
            "ClusterRole",
            PLATFORM_ADMIN_CLUSTER_ROLE,
            groups([cluster_admin_group]),
        ),
    ]
    for role, members in ((naming.TENANT_ADMIN_ROLE, admins), (naming.TENANT_DEVELOPER_ROLE, developers)):
        if members:
            manifests.append(role_binding(names, role, "Role", role, groups(members)))
    return manifests
