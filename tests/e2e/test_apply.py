"""Every object synth renders for dev, staging and prod is accepted by a real kube-apiserver (with the upstream
CRDs installed): server-side apply with strict field validation, in dependency order, nothing refused, warned
about or pruned (`Cluster.apply` raises on each of the three)."""

from __future__ import annotations

import pytest

from tests.e2e.kube import applicable


def test_every_rendered_object_is_accepted(deployed):
    assert len(deployed.stored) > 40
    assert deployed.refused == {}


def test_custom_kinds_whose_crd_is_not_fetchable_are_reported(deployed):
    if deployed.skipped:
        pytest.skip("not applied, CRD unavailable: " + "; ".join(f"{k[0]} {k[1]}/{k[2]}: {why}"
                                                               for k, why in deployed.skipped.items()))


def test_a_stack_applies_twice_without_change(deployed):
    """Re-applying (dry-run) what is stored changes nothing: no field flips between manager and defaults."""
    cluster = deployed.cluster
    applied = [m for m in deployed.manifests
               if (m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]) not in
               {**deployed.refused, **deployed.skipped}]
    for manifest in applied:
        before = cluster.get(cluster.object_path(manifest))
        after = cluster.apply(applicable(manifest), dry_run=True)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], manifest["kind"]



def test_a_missing_prerequisite_namespace_is_reported_not_created(start_cluster, rendered):
    """The dev stack on a cluster where the platform has not made the Argo CD namespace (Argo CD is not installed):
    every object tenancy puts there is refused by the apiserver, nothing else is, and the namespace stays absent,
    so the suite cannot pass over a prerequisite the platform lacks (install_platform_prerequisites makes it)."""
    import yaml

    from components import settings
    from tests.e2e.kube import PROJECT, KubeError

    argocd = settings.load_stack(PROJECT, "dev").argocd.namespace
    manifests = [yaml.safe_load(p.read_text()) for p in sorted((rendered("dev") / "manifests").rglob("*.yaml"))]
    in_argocd = {(m["kind"], argocd, m["metadata"]["name"]) for m in manifests
                 if m["metadata"].get("namespace") == argocd}
    assert {kind for kind, _, _ in in_argocd} >= {"Deployment", "Service", "ApplicationSet", "AppProject"}
    with start_cluster(controller_manager=False, logs_name="prerequisites") as cluster:
        _, refused, skipped = cluster.apply_all(manifests)
        assert set(refused) == in_argocd - set(skipped)
        assert all(f'namespaces "{argocd}" not found' in why for why in refused.values()), refused
        with pytest.raises(KubeError) as absent:
            cluster.get(f"/api/v1/namespaces/{argocd}")
        assert absent.value.status == 404
