"""ResourceQuota, enforced by the real apiserver with kube-controller-manager computing quota status: pods
beyond a tenant's quota are refused, and a suspended tenant (quota of zero pods) admits none.

Pods are created for real (they stay Pending: no scheduler or kubelet runs) and deleted afterwards; unscheduled
pods are deleted at once, so later tests see the quota as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from components import naming
from tests.e2e.kube import PROJECT, applicable

QUOTA = "tenant-quota"


def _quota(cluster, namespace: str) -> dict:
    return cluster.get(f"/api/v1/namespaces/{namespace}/resourcequotas/{QUOTA}")


def _calculated(cluster, namespace: str, hard: dict) -> dict:
    """Wait until the controller-manager has written status.hard equal to `hard` (admission needs it) and
    counted usage for every key."""
    def ready():
        status = _quota(cluster, namespace).get("status", {})
        return status if status.get("hard") == hard and set(status.get("used", {})) == set(hard) else None
    return cluster.wait_for(ready, f"quota status in {namespace}", timeout=120)


def _pod(deployed, namespace: str, index: int) -> dict:
    """A pod the tenant may run, so only the quota decides: it meets `restricted`, runs an image from the tenant's
    allowed registries and, for a dedicated tenant, selects and tolerates its nodes, as the admission policies
    require (placement from the Namespace's node-selector annotations). Requests and limits come from the
    LimitRange defaults."""
    ns = next(n for n in deployed.tenant_namespaces() if n["metadata"]["name"] == namespace)
    tenant = ns["metadata"]["labels"][naming.TENANT_LABEL]
    (params,) = [c for c in deployed.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-params")]
    registries = params.get("data", {}).get(f"{tenant}.registries")
    image = f"{registries.split(',')[0]}/quota-probe:1" if registries else "docker.io/library/busybox:1"
    spec = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": image,
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}
    annotations = ns["metadata"].get("annotations", {})
    if "scheduler.alpha.kubernetes.io/node-selector" in annotations:
        key, _, value = annotations["scheduler.alpha.kubernetes.io/node-selector"].partition("=")
        spec["nodeSelector"] = {key: value}
        spec["tolerations"] = json.loads(annotations["scheduler.alpha.kubernetes.io/defaultTolerations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"quota-probe-{index}", "namespace": namespace},
            "spec": spec}


def _fill(deployed, namespace: str, limit: int):
    """Create pods until one is refused (at most limit + 1); return (created, refusal status, message)."""
    created = []
    for index in range(limit + 1):
        status, body = deployed.cluster.create(_pod(deployed, namespace, index))
        if status != 201:
            return created, status, body.get("message", "")
        created.append(body)
    return created, 201, ""


def _delete(cluster, pods):
    for pod in pods:
        cluster.delete(pod)


def test_the_controller_manager_fills_every_tenant_quota(deployed):
    for quota in deployed.of_kind("ResourceQuota"):
        namespace = quota["metadata"]["namespace"]
        stored = _quota(deployed.cluster, namespace)
        status = _calculated(deployed.cluster, namespace, stored["spec"]["hard"])
        assert set(status["used"]) == set(stored["spec"]["hard"]), namespace


def test_pods_beyond_a_tenant_quota_are_refused(deployed):
    cluster = deployed.cluster
    for quota in deployed.of_kind("ResourceQuota"):
        namespace = quota["metadata"]["namespace"]
        hard = _quota(cluster, namespace)["spec"]["hard"]
        _calculated(cluster, namespace, hard)
        pods_allowed = int(hard["pods"])
        created, status, message = _fill(deployed, namespace, pods_allowed)
        try:
            assert status == 403 and f"exceeded quota: {QUOTA}" in message, (namespace, status, message)
            assert len(created) <= pods_allowed
            used = _quota(cluster, namespace)["status"]["used"]
            assert int(used["pods"]) == len(created)
        finally:
            _delete(cluster, created)


def test_a_suspended_tenant_admits_no_pod(deployed, tmp_path):
    """Suspend every tenant of the stack in a copy of the catalogue, re-render, apply its quotas over the running
    stack, and wait for the controller-manager to recalculate them: then not one pod is admitted."""
    catalogue = yaml.safe_load((PROJECT / "tenants.yaml").read_text())
    for tenant in catalogue["tenants"]:
        tenant["lifecycle"] = "suspended"
    (tmp_path / "tenants.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    (tmp_path / "certs").mkdir()
    for cert in (PROJECT / "certs").glob("*.pem"):
        (tmp_path / "certs" / cert.name).write_text(cert.read_text())
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "tenancy", "synth", "--stack", deployed.stack,
                           "--tenants", str(tmp_path / "tenants.yaml"), "--out", str(out)],
                          cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    quotas = [yaml.safe_load(p.read_text()) for p in Path(out / "manifests").rglob("resourcequota-*.yaml")]
    assert quotas
    cluster = deployed.cluster
    for quota in quotas:
        namespace = quota["metadata"]["namespace"]
        stored = cluster.apply(applicable(quota))
        _calculated(cluster, namespace, stored["spec"]["hard"])
        status, body = cluster.create(_pod(deployed, namespace, 0))
        if status == 201:
            cluster.delete(body)
        assert status == 403 and f"exceeded quota: {QUOTA}" in body.get("message", ""), (namespace, status, body)
    # Back to the stack as rendered, for the tests that follow.
    for quota in deployed.of_kind("ResourceQuota"):
        stored = cluster.apply(applicable(quota))
        _calculated(cluster, quota["metadata"]["namespace"], stored["spec"]["hard"])
