"""The real Argo CD v3.5.7 ApplicationSet controller against what tenancy renders for Argo CD and its generator.

A clean kube-apiserver with the upstream Argo CD CRDs gets the dev stack as synth renders it (with the `scratch`
tenant suspended in the catalogue copy): the `argocd` namespace, the ApplicationSet, each tenant's AppProject, the
plugin ConfigMap and token Secret, the expected-tenants ConfigMap. The registry rows the same synth records are
written into Cassandra by the real registry provider (tests/e2e/registry.py) and served by the real generator
service on 127.0.0.1. Then the controller built by tools/engines/argocd.sh reconciles the ApplicationSet, and the
checks read what a user reads: the Applications and the ApplicationSet's status.

Two things differ from a cluster, each the least that lets a controller outside a cluster run:
- the plugin ConfigMap's `baseUrl` names the generator's in-cluster Service
  (`http://tenancy-generator.argocd.svc.cluster.local:4355`, derived in components/argocd.py, no setting); only
  that key is replaced, by the loopback address of the generator process;
- the token Secret's value is a `random.RandomPassword` made at `pulumi up` (synth masks it); the Secret is
  applied as rendered with the token the generator process reads.
The platform's `argocd-cm` is applied with the one key the README requires (sync impersonation): the controller
reads it for `cluster.inClusterEnabled` (default on: `https://kubernetes.default.svc` resolves without a cluster
Secret). No argocd-secret (only the SCM webhook handler wants it; it logs that and is not started) and no
repo-server (the plugin generator never calls it).

Upstream files relied on (argo-cd v3.5.7):
- `applicationset/controllers/applicationset_controller.go`: `Reconcile` (a generator error sets ErrorOccurred and
  returns before any create, update or delete; requeued after `ReconcileRequeueOnValidationError`, 3 min, or on
  any spec/label change), `validateGeneratedApplications` (only: the project exists, the destination resolves),
  `deleteInCluster` (an Application the generator no longer returns is deleted; finalizers are kept unless the
  destination is invalid), `shouldRequeueForApplicationSet` (label changes requeue);
- `applicationset/generators/plugin.go` (ConfigMap `baseUrl`/`token`/`requestTimeout`, `$secret:key` read from
  the controller's namespace, `requeueAfterSeconds`);
- `applicationset/utils/utils.go` `RenderTemplateParams` (the resources finalizer is added unless
  `preserveResourcesOnDeletion`), `applicationset/controllers/template/patch.go` (templatePatch).
"""

from __future__ import annotations

import copy
import json
import shutil
from typing import Any, Iterator

import httpx
import pytest

from components import naming
from tests.e2e.argocd import appset_controller, reconciles
from tests.e2e.cassandra import cassandra  # noqa: F401 - the fixture
from tests.e2e.conftest import LOGS
from tests.e2e.kube import Cluster, free_port
from tests.e2e.project import project_copy, synth
from tests.e2e.registry import (  # noqa: F401 - `table` and `plugin` are fixtures
    TOKEN, argocd_request, plugin, pointed_at, running_generator, table)

STACK = "dev"
ARGOCD_NAMESPACE = "argocd"
APPS = f"/apis/argoproj.io/v1alpha1/namespaces/{ARGOCD_NAMESPACE}/applications"
APPSET = f"/apis/argoproj.io/v1alpha1/namespaces/{ARGOCD_NAMESPACE}/applicationsets/{naming.APPLICATION_SET}"
RECORD = "pulumi-python:dynamic:Resource"
RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io"
SUSPENDED = "scratch"     # suspended in the catalogue copy: its Application stays, automated sync off
OFFBOARDED = "research"   # offboarded in a second render, as the platform team would do it
MISSING = "compliance"    # its row is deleted to make the generator refuse


def records(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The registry rows synth records, by URN, without the masked `__provider`."""
    return {r["urn"]: {k: v for k, v in r["inputs"].items() if k != "__provider"}
            for r in resources if r["type"] == RECORD}


def expected_json(manifests: list[dict[str, Any]]) -> str:
    (configmap,) = [m for m in manifests if m["kind"] == "ConfigMap"
                    and m["metadata"]["name"] == naming.GENERATOR_EXPECTED_CONFIGMAP]
    return configmap["data"][naming.GENERATOR_EXPECTED_KEY]


def registry_key(manifests: list[dict[str, Any]], tenant: str) -> str:
    """The tenant's registry key (its Application's name): the name of the AppProject rendered for it."""
    (project,) = [m["metadata"]["name"] for m in manifests if m["kind"] == "AppProject"
                  and m["metadata"]["labels"].get(naming.TENANT_LABEL) == tenant]
    return project


def render(tmp_path_factory, lifecycles: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("appset-project")
    return synth(project_copy(folder, STACK, lifecycles=lifecycles), STACK, folder / "out")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return render(tmp_path_factory, {SUSPENDED: "suspended"})


@pytest.fixture(scope="module")
def rows(cassandra, table, plugin, rendered) -> dict[str, tuple[str, dict[str, Any]]]:
    """The stack's rows, written by the registry provider as `pulumi up` writes them: URN -> (id, state)."""
    resources, _ = rendered
    return {urn: plugin.create(urn, pointed_at(cassandra, props)) for urn, props in records(resources).items()}


@pytest.fixture(scope="module")
def generator(cassandra, table, rows, rendered, tmp_path_factory):
    with running_generator(cassandra, table, tmp_path_factory.mktemp("generator"),
                           expected_json(rendered[1])) as running:
        yield running


@pytest.fixture(scope="module")
def controller(cluster: Cluster, rendered, generator, tmp_path_factory) -> Iterator[Any]:
    """The dev stack applied to the clean cluster, then the controller started against it."""
    _, manifests = rendered
    sent = []
    for manifest in manifests:
        manifest = copy.deepcopy(manifest)
        meta = manifest["metadata"]
        if manifest["kind"] == "ConfigMap" and meta["name"] == naming.GENERATOR:
            manifest["data"]["baseUrl"] = generator.base
        if manifest["kind"] == "Secret" and meta["name"] == naming.GENERATOR_TOKEN_SECRET:
            manifest["stringData"] = {naming.GENERATOR_TOKEN_KEY: TOKEN}
        sent.append(manifest)
    # The platform's Argo CD settings: what the README requires of them (sync impersonation) and nothing else.
    sent.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "argocd-cm", "namespace": ARGOCD_NAMESPACE, "labels": {"app.kubernetes.io/part-of": "argocd"}},
        "data": {"application.sync.impersonation.enabled": "true"}})
    _, refused, _ = cluster.apply_all(sent)
    assert not refused, refused
    assert argocd_request(generator.base, naming.APPLICATION_SET, {}).status_code == 200
    folder = tmp_path_factory.mktemp("argocd")
    # Nothing listens there: the plugin generator never calls the repo-server.
    try:
        with appset_controller(cluster.admin_kubeconfig, folder, ARGOCD_NAMESPACE,
                               f"127.0.0.1:{free_port()}") as server:
            yield server
    finally:
        # Kept beside the cluster's logs (conftest keeps those under .engines/e2e-logs/<module>/).
        keep = LOGS / "test_applicationset"
        keep.mkdir(parents=True, exist_ok=True)
        for log in (folder / "argocd-applicationset-controller.log", generator.log):
            if log.exists():
                shutil.copy(log, keep / log.name)


def applications(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {a["metadata"]["name"]: a for a in cluster.get(APPS)["items"]}


def appset(cluster: Cluster) -> dict[str, Any]:
    return cluster.get(APPSET)


def conditions(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (appset(cluster).get("status") or {}).get("conditions") or []}


def up_to_date(cluster: Cluster) -> bool:
    found = conditions(cluster)
    return (found.get("ResourcesUpToDate", {}).get("status") == "True"
            and found.get("ErrorOccurred", {}).get("status") == "False")


def poke(cluster: Cluster, value: str) -> None:
    """A label change on the ApplicationSet: the controller reconciles it at once (shouldRequeueForApplicationSet)
    instead of after requeueAfterSeconds, or the 3 minutes a generator error waits."""
    status, body = cluster.request("PATCH", APPSET, json={"metadata": {"labels": {"e2e-poke": value}}},
                                   headers={"Content-Type": "application/merge-patch+json"})
    assert status == 200, body


def reconcile_once(cluster: Cluster, controller, value: str) -> None:
    """Poke the ApplicationSet and wait until the controller logged the end of one more reconcile, failed or not."""
    before = sum(reconciles(controller, naming.APPLICATION_SET))
    poke(cluster, value)
    cluster.wait_for(lambda: sum(reconciles(controller, naming.APPLICATION_SET)) > before,
                     f"a reconcile after poke {value}", timeout=60)


def tenant_rows(rendered) -> dict[str, dict[str, Any]]:
    return {props["tenant_id"]: props for props in records(rendered[0]).values()}


def test_one_application_per_tenant_in_its_own_project(cluster, controller, rendered):
    rows_by_key = tenant_rows(rendered)
    generated = json.loads(expected_json(rendered[1]))
    suspended = registry_key(rendered[1], SUSPENDED)
    assert generated[suspended] == "suspended" and len(generated) == len(rows_by_key) == 3
    apps = cluster.wait_for(lambda: (lambda found: found if set(found) == set(generated) else None)(
        applications(cluster)), "one Application per generated tenant", timeout=60)
    projects = {p["metadata"]["name"]: p for p in rendered[1] if p["kind"] == "AppProject"}
    for key, app in apps.items():
        row, spec = rows_by_key[key], app["spec"]
        # The tenant's own AppProject, whose only destination and source are the tenant's.
        assert spec["project"] == key and key in projects
        (destination,) = projects[key]["spec"]["destinations"]
        assert spec["destination"] == {"server": row["target_cluster"], "namespace": row["namespace"]}
        assert (destination["server"], destination["namespace"]) == (row["target_cluster"], row["namespace"])
        assert spec["source"] == {"repoURL": row["repo_url"], "path": row["repo_path"], "targetRevision": "HEAD"}
        assert projects[key]["spec"]["sourceRepos"] == [row["repo_url"]]
        automated = spec["syncPolicy"]["automated"]
        assert automated == {"prune": False, "selfHeal": True, "enabled": row["lifecycle"] == "active"}, key
        assert spec["syncPolicy"]["retry"]["limit"] == 5
        # preserveResourcesOnDeletion: no resources finalizer, so deleting the Application deletes nothing else.
        assert RESOURCES_FINALIZER not in (app["metadata"].get("finalizers") or []), key
        (owner,) = app["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("ApplicationSet", naming.APPLICATION_SET)
        assert app["metadata"]["labels"]["app.kubernetes.io/managed-by"] == naming.MANAGED_BY
    assert apps[suspended]["spec"]["syncPolicy"]["automated"]["enabled"] is False
    cluster.wait_for(lambda: up_to_date(cluster), "the ApplicationSet up to date", timeout=30)
    found = conditions(cluster)
    assert found["ParametersGenerated"]["status"] == "True"
    status = appset(cluster)["status"]
    assert status["health"]["status"] == "Healthy"
    assert sorted(r["name"] for r in status.get("resources") or []) == sorted(generated)


def test_a_row_no_tenant_expects_never_reaches_the_controller(cluster, controller, cassandra, plugin, rows, rendered,
                                                              generator):
    """A registry row for an unknown tenant aiming at an existing tenant's namespace: tenancy does not expect it,
    so the generator leaves it out of the answer and counts it. Answered, it would name a project that does not
    exist (its own tenant id): the controller would refuse that Application and report ApplicationValidationError
    on the ApplicationSet (`validateGeneratedApplications`); left out, the reconcile is an ordinary one."""
    before = applications(cluster)
    urn, (_, olds) = next(iter(rows.items()))
    victim = before[registry_key(rendered[1], MISSING)]["spec"]["destination"]["namespace"]
    rogue = {**olds, "tenant_id": "calypr-rogue", "namespace": victim}
    rogue.pop("__provider", None)
    rogue_urn = urn.replace("registry-record", "rogue-record")
    rogue_id, rogue_state = plugin.create(rogue_urn, pointed_at(cassandra, rogue))
    try:
        reconcile_once(cluster, controller, "rogue")
        assert up_to_date(cluster), conditions(cluster)
        after = applications(cluster)
        assert "calypr-rogue" not in after
        assert {k: a["metadata"]["resourceVersion"] for k, a in after.items()} == {
            k: a["metadata"]["resourceVersion"] for k, a in before.items()}
        assert "generator_unexpected_rows 1.0" in httpx.get(f"{generator.base}/metrics").text
    finally:
        plugin.delete(rogue_urn, rogue_id, rogue_state)
    reconcile_once(cluster, controller, "rogue-gone")
    assert up_to_date(cluster)


def test_a_refusing_generator_changes_no_application(cluster, controller, cassandra, plugin, rows, rendered):
    """An emptied registry (the original failure): the generator refuses (a tenant it must return is missing),
    the controller reports ErrorOccurred and, over several reconciles, deletes and changes nothing."""
    before = applications(cluster)
    assert before
    missing = registry_key(rendered[1], MISSING)
    urn, (id_, state) = next((u, r) for u, r in rows.items() if r[1]["tenant_id"] == missing)
    plugin.delete(urn, id_, state)   # the row is gone, as from an emptied or wrong table
    try:
        for n in range(3):
            reconcile_once(cluster, controller, f"refused-{n}")
            assert applications(cluster) == before
            error = conditions(cluster)["ErrorOccurred"]
            assert error["status"] == "True", error
            assert "API error with status code 503" in error["message"], error
            assert missing in error["message"], error
            assert conditions(cluster)["ParametersGenerated"]["status"] == "False"
            assert appset(cluster)["status"]["health"]["status"] == "Degraded"
    finally:
        rows[urn] = plugin.create(urn, pointed_at(cassandra, state))
    reconcile_once(cluster, controller, "recovered")
    assert up_to_date(cluster)
    assert {k: a["metadata"]["uid"] for k, a in applications(cluster).items()} == {
        k: a["metadata"]["uid"] for k, a in before.items()}


def test_an_offboarded_tenant_loses_only_its_application(cluster, controller, cassandra, plugin, rows, generator,
                                                         rendered, tmp_path_factory):
    """Offboarding as the platform does it (catalogue lifecycle, `pulumi up`): the row says offboarded and the
    expected tenants no longer list it; the controller deletes that Application. It never carried the resources
    finalizer (preserveResourcesOnDeletion), so it is gone at once and nothing it deployed is deleted: with the
    finalizer, the Application would stay Terminating until the application controller deleted its resources."""
    resources, manifests = render(tmp_path_factory, {SUSPENDED: "suspended", OFFBOARDED: "offboarded"})
    key = registry_key(rendered[1], OFFBOARDED)
    assert key not in json.loads(expected_json(manifests))
    before = applications(cluster)
    for urn, news in records(resources).items():
        id_, olds = rows[urn]
        if news["tenant_id"] == key:
            assert news["lifecycle"] == "offboarded"
            rows[urn] = (id_, plugin.update(urn, id_, olds, pointed_at(cassandra, news)))
    generator.expected_file.write_text(expected_json(manifests))   # the re-rendered ConfigMap, as mounted
    # `pulumi up` also deletes what the new render no longer holds: the tenant's AppProject.
    kept = {m["metadata"]["name"] for m in manifests if m["kind"] == "AppProject"}
    gone = [m for m in rendered[1] if m["kind"] == "AppProject" and m["metadata"]["name"] not in kept]
    assert [m["metadata"]["name"] for m in gone] == [key]
    for project in gone:
        assert cluster.delete(project) == 200
    reconcile_once(cluster, controller, "offboarded")
    try:
        after = cluster.wait_for(lambda: (lambda found: found if key not in found else None)(applications(cluster)),
                                 f"{key}'s Application deleted", timeout=20)
    except TimeoutError:
        left = applications(cluster)[key]["metadata"]
        raise AssertionError(f"{key}'s Application was not deleted outright: deletionTimestamp "
                             f"{left.get('deletionTimestamp')}, finalizers {left.get('finalizers')}") from None
    assert {k: a["metadata"]["resourceVersion"] for k, a in after.items()} == {
        k: a["metadata"]["resourceVersion"] for k, a in before.items() if k != key}
    assert up_to_date(cluster)
    events = cluster.get(f"/api/v1/namespaces/{ARGOCD_NAMESPACE}/events")["items"]
    assert any(e["reason"] == "Deleted" and key in e["message"] for e in events)


def test_the_controller_changes_nothing_while_cassandra_is_down(cluster, controller, cassandra, generator):
    """Registry unreachable: the generator answers non-2xx, the controller keeps every Application. Stops the
    module's Cassandra, so it runs last."""
    before = applications(cluster)
    cassandra.stop()
    assert httpx.get(f"{generator.base}/readyz", timeout=30).status_code == 503
    for n in range(2):
        reconcile_once(cluster, controller, f"down-{n}")
        assert conditions(cluster)["ErrorOccurred"]["status"] == "True"
        assert applications(cluster) == before
