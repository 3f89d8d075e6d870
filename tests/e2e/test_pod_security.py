"""Pod Security admission, by the real apiserver: the pods the upstream controllers build from what tenancy
renders are admitted in their tenant's namespace (server-side dry-run), and a privileged pod is refused where
the namespace's level forbids it. How each controller builds its pods: tests/e2e/upstream_pods.py."""

from __future__ import annotations

import pytest

from tests.e2e.upstream_pods import argo_workflow_pods, flux_operator_pod

ENFORCE = "pod-security.kubernetes.io/enforce"


def _level(deployed, namespace: str) -> str:
    ns = next(n for n in deployed.tenant_namespaces() if n["metadata"]["name"] == namespace)
    return ns["metadata"]["labels"][ENFORCE]


def _refusals(deployed, pods):
    refused = {}
    for pod in pods:
        status, body = deployed.cluster.create(pod, dry_run=True)
        if status != 201:
            refused[f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"] = (status, body.get("message"))
    return refused


def test_every_tenant_namespace_enforces_a_pod_security_level(deployed):
    for ns in deployed.tenant_namespaces():
        stored = deployed.cluster.get(f"/api/v1/namespaces/{ns['metadata']['name']}")
        assert stored["metadata"]["labels"][ENFORCE] in ("restricted", "baseline"), ns["metadata"]["name"]


# The controller's `executor.securityContext`: empty by default, or set by an operator to something `restricted`
# refuses. Argo gives it to `init` and `wait` (workflow/controller/workflowpod.go); the template's podSpecPatch is
# applied last, so the pods must be admitted either way.
EXECUTOR_CONFIGS = {
    "default": None,
    "hostile": {"privileged": True, "runAsUser": 0, "allowPrivilegeEscalation": True,
                "capabilities": {"add": ["NET_ADMIN"]}},
}


@pytest.mark.parametrize("config", list(EXECUTOR_CONFIGS))
def test_workflow_pods_as_argo_builds_them_are_admitted(deployed, config):
    templates = deployed.of_kind("WorkflowTemplate")
    assert templates
    pods = [pod for template in templates for pod in argo_workflow_pods(template, EXECUTOR_CONFIGS[config])]
    assert all({c["name"] for c in p["spec"]["containers"]} == {"main", "wait"} for p in pods)
    assert all([c["name"] for c in p["spec"]["initContainers"]] == ["init"] for p in pods)
    assert _refusals(deployed, pods) == {}


def test_minicluster_pods_as_the_flux_operator_builds_them_are_admitted(deployed):
    clusters = deployed.of_kind("MiniCluster")
    assert clusters
    if clusters[0]["apiVersion"].endswith("/v1alpha2"):
        assert _refusals(deployed, [flux_operator_pod(c) for c in clusters]) == {}
    else:
        pytest.skip("the pod builder replays Flux Operator 0.2.1 (v1alpha2) only")


def test_a_minicluster_is_stored_by_the_flux_operator_crd(deployed):
    """The CRD is derived from the operator's PyPI SDK (tools/engines/minicluster_crd.py, fluxoperator 0.2.0)."""
    clusters = deployed.of_kind("MiniCluster")
    assert clusters
    stored = {(m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]) for m in deployed.stored}
    assert {("MiniCluster", m["metadata"]["namespace"], m["metadata"]["name"]) for m in clusters} <= stored


def _privileged_pod(namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged-probe", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "securityContext": {"privileged": True}}]}}


def test_a_privileged_pod_is_refused_in_every_tenant_namespace(deployed):
    for ns in deployed.tenant_namespaces():
        name = ns["metadata"]["name"]
        if _level(deployed, name) == "privileged":
            continue
        status, body = deployed.cluster.create(_privileged_pod(name), dry_run=True)
        assert status == 403 and "violates PodSecurity" in body.get("message", ""), (name, status, body)


def test_the_same_privileged_pod_is_admitted_where_no_level_is_enforced(deployed):
    """The refusal above is Pod Security's, not the cluster's: a namespace without labels admits the pod."""
    cluster = deployed.cluster
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "e2e-unlabelled"}})
    status, body = cluster.create(_privileged_pod("e2e-unlabelled"), dry_run=True)
    assert status == 201, body
