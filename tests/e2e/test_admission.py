"""Tenant isolation on a real kube-apiserver: tenancy's ValidatingAdmissionPolicies decide, nothing else.

The control plane (tests/e2e/conftest.py) runs the admission plugins of a managed cluster: PodSecurity,
Priority and ValidatingAdmissionPolicy, but neither PodNodeSelector nor PodTolerationRestriction, as on EKS.
So the namespace annotations tenancy also sets cannot pin anything here: every refusal below is a policy's.
Pods and claims are created with server-side dry-run (`dryRun=All`): admission runs in full, nothing is stored.

The catalogue has two dedicated tenants and one shared tenant; the namespaces and the admission objects are
exactly what the program renders for them (`namespace.namespace_manifest`, `admission.admission_manifests`).
Policy semantics are upstream's: k8s.io/apiserver v0.34 pkg/admission/plugin/policy/validating (the first
denying binding's message is returned, `ValidatingAdmissionPolicy '<name>' with binding ... denied request:`).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from components import admission, argo, catalogue, images, naming, rbac, settings
from components.namespace import namespace_manifest

PROJECT = Path(__file__).resolve().parents[2]
STACK = "dev"
DEDICATED = ("alpha", "beta")
SHARED = ("gamma",)
TENANTS = DEDICATED + SHARED
# alpha and beta restrict what they run; gamma lists nothing, which must keep today's behaviour.
CATALOGUE = """
defaults:
  allowed:
    # With the images tenancy itself runs in their pods (the catalogue refuses a list without them).
    registries: [ghcr.io/calypr, docker.io/library, docker.io/nextflow, quay.io/argoproj]
    storageClasses: [standard]
    priorityClasses: [tenancy-e2e-batch]
tenants:
  - {name: alpha, team: a, repo: {url: "https://github.com/calypr/a.git"}, isolation: {nodes: dedicated}}
  - {name: beta, team: b, repo: {url: "https://github.com/calypr/b.git"}, isolation: {nodes: dedicated}}
  - name: gamma
    team: g
    repo: {url: "https://github.com/calypr/g.git"}
    allowed: {registries: [], storageClasses: [], priorityClasses: []}
"""
ALLOWED_PRIORITY, OTHER_PRIORITY = "tenancy-e2e-batch", "tenancy-e2e-urgent"


def _stack() -> tuple[settings.StackSettings, list]:
    stack_settings = settings.load_stack(PROJECT, STACK)
    cat = catalogue.parse(CATALOGUE, source="tenants.yaml", base_dir=PROJECT, stacks=settings.known_stacks(PROJECT))
    return stack_settings, cat.for_stack(stack_settings)


STACK_SETTINGS, SPECS = _stack()
NAMESPACES = {spec.name: names.namespace for spec, names in SPECS}
SPECS_BY_NAME = {spec.name: (spec, names) for spec, names in SPECS}
# A second org's stack on the same cluster, with the same catalogue (so the same tenant names) and its own
# admission namespace (components/coexistence.py refuses two stacks sharing one).
OTHER_ORG = "acme"
OTHER_SETTINGS = STACK_SETTINGS.model_copy(update={
    "org": OTHER_ORG, "admission": STACK_SETTINGS.admission.model_copy(update={"namespace": "tenancy-acme"})})
OTHER_SPECS = catalogue.parse(CATALOGUE, source="tenants.yaml", base_dir=PROJECT,
                              stacks=settings.known_stacks(PROJECT)).for_stack(OTHER_SETTINGS)
OTHER_NAMESPACES = {spec.name: names.namespace for spec, names in OTHER_SPECS}


def node_value(tenant: str, org: str = STACK_SETTINGS.org) -> str:
    """The taint and label value of the tenant's dedicated nodes (`TenantNames.node_owner`)."""
    specs = SPECS if org == STACK_SETTINGS.org else OTHER_SPECS
    return next(names.node_owner for spec, names in specs if spec.name == tenant)


def rule_name(rule: str) -> str:
    return naming.admission_object(STACK_SETTINGS.org, STACK_SETTINGS.environment, rule)


def answering(rule: str) -> set[str]:
    """The policies whose refusal counts as `rule`'s: node isolation is bound to every namespace by both orgs'
    stacks (their copies agree), and the API server names whichever denied first."""
    names = {rule_name(rule)}
    if rule == admission.NODE_ISOLATION:
        names.add(naming.admission_object(OTHER_SETTINGS.org, OTHER_SETTINGS.environment, rule))
    return names


# ------------------------------------------------------------------------------------------------- objects

def pod(tenant: Optional[str], *, image: str = "ghcr.io/calypr/tool:1", namespace: Optional[str] = None,
        **spec: Any) -> dict:
    """A pod Pod Security `restricted` admits, so only tenancy's policies can refuse it."""
    container = {"name": "main", "image": image,
                 "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "probe", "namespace": namespace or NAMESPACES[tenant]},
            "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [container], **spec}}


def toleration(tenant: str, org: str = STACK_SETTINGS.org) -> dict:
    return {"key": naming.TENANT_LABEL, "operator": "Equal", "value": node_value(tenant, org), "effect": "NoSchedule"}


def placement(tenant: str, org: str = STACK_SETTINGS.org) -> dict:
    """What a compliant pod of `tenant` carries: its own nodes and taint for dedicated tenants, nothing else."""
    if tenant in DEDICATED:
        return {"nodeSelector": {naming.TENANT_LABEL: node_value(tenant, org)}, "tolerations": [toleration(tenant, org)]}
    return {}


def required_affinity(tenant: str) -> dict:
    term = {"matchExpressions": [{"key": naming.TENANT_LABEL, "operator": "In", "values": [node_value(tenant)]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def pvc(tenant: str, storage_class: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "probe", "namespace": NAMESPACES[tenant]},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": "1Gi"}}}}


def priority_class(name: str, value: int) -> dict:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value}


# ------------------------------------------------------------------------------------------------- checks

def admitted(cluster, obj: dict) -> None:
    status, body = cluster.create(obj, dry_run=True)
    assert status == 201, f"refused ({status}): {body.get('message')}"


def refused(cluster, obj: dict, rule: str, tenant: Optional[str]) -> str:
    """Refused by `rule`'s policy, with a message naming the tenant (or the tenant-less namespace) and the rule."""
    status, body = cluster.create(obj, dry_run=True)
    message = body.get("message", "")
    assert status == 403, f"expected a refusal by {rule}, got {status}: {message}"
    assert any(f"ValidatingAdmissionPolicy '{name}'" in message for name in answering(rule)), message
    assert f"(tenancy rule {rule})" in message, message
    who = f"tenant {tenant}: " if tenant else f"namespace {obj['metadata']['namespace']}: "
    assert who in message, message
    return message


# One request each rule must refuse, for waiting until the apiserver enforces it (policies load asynchronously).
def _probes() -> dict[str, tuple[dict, Optional[str]]]:
    return {
        admission.NODE_ISOLATION: (pod("gamma", tolerations=[toleration("alpha")]), "gamma"),
        admission.DEDICATED_NODES: (pod("alpha"), "alpha"),
        admission.REGISTRIES: (pod("alpha", image="quay.io/evil/miner:1", **placement("alpha")), "alpha"),
        admission.STORAGE_CLASSES: (pvc("alpha", "premium"), "alpha"),
        admission.PRIORITY_CLASSES: (pod("alpha", priorityClassName=OTHER_PRIORITY, **placement("alpha")), "alpha"),
    }


def _enforced(cluster, rule: str) -> bool:
    obj, _ = _probes()[rule]
    status, body = cluster.create(obj, dry_run=True)
    return status == 403 and any(name in body.get("message", "") for name in answering(rule))


def wait(cluster, rule: str, enforced: bool, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _enforced(cluster, rule) != enforced:
        assert time.monotonic() < deadline, f"{rule} still {'not ' if enforced else ''}enforced after {timeout}s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def tenants_cluster(cluster):
    """The cluster with the three tenant namespaces, tenancy's admission objects and two priority classes, and
    the same of a second org's stack."""
    for stack_settings, specs in ((STACK_SETTINGS, SPECS), (OTHER_SETTINGS, OTHER_SPECS)):
        for spec, names in specs:
            cluster.apply(namespace_manifest(spec, names, stack_settings.environment, stack_settings.org))
    # The ServiceAccount admission plugin refuses pods until the controller has made `default` in a namespace.
    for namespace in [*NAMESPACES.values(), *OTHER_NAMESPACES.values(), "default", "kube-system"]:
        cluster.wait_for(lambda: cluster.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")[0]
                         == 200, f"the default ServiceAccount of {namespace}")
    cluster.apply(priority_class(ALLOWED_PRIORITY, 1000))
    cluster.apply(priority_class(OTHER_PRIORITY, 100000))
    for stack_settings, specs in ((STACK_SETTINGS, SPECS), (OTHER_SETTINGS, OTHER_SPECS)):
        for manifest in admission.admission_manifests(stack_settings, [spec for spec, _ in specs]):
            cluster.apply(manifest)
    for rule in admission.RULES:
        wait(cluster, rule, enforced=True)
    return cluster


# ------------------------------------------------------------------------------------------------- node isolation

PAIRS = list(itertools.permutations(TENANTS, 2))


@pytest.mark.parametrize("tenant, other", PAIRS)
def test_another_tenants_toleration_is_refused(tenants_cluster, tenant, other):
    bad = pod(tenant, **{**placement(tenant),
                         "tolerations": placement(tenant).get("tolerations", []) + [toleration(other)]})
    refused(tenants_cluster, bad, admission.NODE_ISOLATION, tenant)


@pytest.mark.parametrize("tenant, other", PAIRS)
def test_another_tenants_node_selector_is_refused(tenants_cluster, tenant, other):
    # A dedicated tenant keeps its own placement through affinity, so only the foreign selector is wrong.
    extra = {"affinity": required_affinity(tenant), "tolerations": [toleration(tenant)]} if tenant in DEDICATED else {}
    refused(tenants_cluster, pod(tenant, nodeSelector={naming.TENANT_LABEL: node_value(other)}, **extra),
            admission.NODE_ISOLATION, tenant)


@pytest.mark.parametrize("tenant, other", PAIRS)
def test_another_tenants_node_affinity_is_refused(tenants_cluster, tenant, other):
    bad = pod(tenant, **{**placement(tenant), "affinity": required_affinity(other)})
    refused(tenants_cluster, bad, admission.NODE_ISOLATION, tenant)


@pytest.mark.parametrize("tenant", TENANTS)
def test_wildcard_toleration_and_node_name_are_refused_in_tenant_namespaces(tenants_cluster, tenant):
    refused(tenants_cluster, pod(tenant, **{**placement(tenant), "tolerations": [{"operator": "Exists"}]}),
            admission.NODE_ISOLATION, tenant)
    refused(tenants_cluster, pod(tenant, **placement(tenant), nodeName="tenant-node-1"),
            admission.NODE_ISOLATION, tenant)


@pytest.mark.parametrize("tenant", DEDICATED)
def test_platform_namespaces_may_not_tolerate_a_tenants_taint(tenants_cluster, tenant):
    refused(tenants_cluster, pod(None, namespace="default", tolerations=[toleration(tenant)]),
            admission.NODE_ISOLATION, None)
    refused(tenants_cluster, pod(None, namespace="default", nodeSelector={naming.TENANT_LABEL: node_value(tenant)}),
            admission.NODE_ISOLATION, None)
    # Exempt namespaces (node agents, CNI) are not held to it.
    admitted(tenants_cluster, pod(None, namespace="kube-system", tolerations=[toleration(tenant)]))


@pytest.mark.parametrize("tenant", DEDICATED)
def test_a_same_named_tenant_of_another_org_may_not_use_its_nodes(tenants_cluster, tenant):
    """Org acme's `alpha` runs beside calypr's `alpha`: calypr's taint, label or affinity value is refused in acme's
    namespace (by whichever org's node-isolation binding answers first: both bind every namespace and agree),
    as is the bare tenant name the nodes carried before the org was part of the value; acme's own is admitted."""
    namespace = OTHER_NAMESPACES[tenant]
    foreign = [
        placement(tenant),
        {**placement(tenant, OTHER_ORG), "tolerations": [toleration(tenant, OTHER_ORG), toleration(tenant)]},
        {**placement(tenant, OTHER_ORG), "affinity": required_affinity(tenant)},
        {"nodeSelector": {naming.TENANT_LABEL: tenant}, "tolerations": [{**toleration(tenant), "value": tenant}]},
    ]
    for spec in foreign:
        status, body = tenants_cluster.create(pod(None, namespace=namespace, **spec), dry_run=True)
        message = body.get("message", "")
        assert status == 403 and f"(tenancy rule {admission.NODE_ISOLATION})" in message, (spec, status, message)
        assert f"tenant {tenant}: " in message, message
    admitted(tenants_cluster, pod(None, namespace=namespace, **placement(tenant, OTHER_ORG)))
    # And the other way round: calypr's tenant may not take acme's nodes.
    status, body = tenants_cluster.create(pod(tenant, **placement(tenant, OTHER_ORG)), dry_run=True)
    assert status == 403, body.get("message")


def test_each_orgs_parameter_bindings_reach_only_its_own_tenants(tenants_cluster):
    """The per-tenant bindings select namespaces by org and environment labels: asked with each binding's own
    selector, the API server lists exactly that org's tenant namespaces."""
    for stack_settings, namespaces in ((STACK_SETTINGS, NAMESPACES), (OTHER_SETTINGS, OTHER_NAMESPACES)):
        selector = admission.tenant_namespace_selector(stack_settings.org, stack_settings.environment)
        terms = [f"{k}={v}" for k, v in selector["matchLabels"].items()] + \
                [e["key"] for e in selector["matchExpressions"] if e["operator"] == "Exists"]
        listed = tenants_cluster.get("/api/v1/namespaces", params={"labelSelector": ",".join(terms)})
        assert sorted(n["metadata"]["name"] for n in listed["items"]) == sorted(namespaces.values())


# ------------------------------------------------------------------------------------------------- dedicated nodes

@pytest.mark.parametrize("tenant", DEDICATED)
def test_a_dedicated_tenants_pod_without_its_placement_is_refused(tenants_cluster, tenant):
    refused(tenants_cluster, pod(tenant), admission.DEDICATED_NODES, tenant)
    refused(tenants_cluster, pod(tenant, tolerations=[toleration(tenant)]), admission.DEDICATED_NODES, tenant)


@pytest.mark.parametrize("tenant", TENANTS)
def test_compliant_pods_are_admitted(tenants_cluster, tenant):
    admitted(tenants_cluster, pod(tenant, **placement(tenant)))
    admitted(tenants_cluster, pod(tenant, image="nginx:1.27", priorityClassName=ALLOWED_PRIORITY,
                                  **placement(tenant)))
    if tenant in DEDICATED:
        admitted(tenants_cluster, pod(tenant, affinity=required_affinity(tenant), tolerations=[toleration(tenant)]))


# ------------------------------------------------------------------------------------------------- allow-lists

@pytest.mark.parametrize("tenant", DEDICATED)
def test_an_image_from_an_unlisted_registry_is_refused(tenants_cluster, tenant):
    for image in ("quay.io/evil/miner:1", "ghcr.io/calypr-evil/tool:1", "someone/tool:1"):
        message = refused(tenants_cluster, pod(tenant, image=image, **placement(tenant)), admission.REGISTRIES,
                          tenant)
        assert "is not from an allowed registry" in message
    init = pod(tenant, **placement(tenant))
    init["spec"]["initContainers"] = [{**init["spec"]["containers"][0], "name": "init", "image": "quay.io/evil/x"}]
    refused(tenants_cluster, init, admission.REGISTRIES, tenant)


@pytest.mark.parametrize("tenant", DEDICATED)
def test_the_catalogue_reads_images_as_the_api_server_does(tenants_cluster, tenant):
    """The catalogue refuses a registry list that would refuse tenancy's own pods by `images.admitted`; the real
    policy must agree with it on every spelling of an image (Docker Hub short names, hosts with ports, lookalike
    hosts and paths)."""
    registries = SPECS_BY_NAME[tenant][0].allowed.registries
    for image in ("nginx:1", "library/nginx:1", "someone/nginx:1", "nextflow/nextflow:1", "docker.io/nextflow/x:1",
                  "index.docker.io/nextflow/x:1", "ghcr.io/calypr/tool:1", "ghcr.io/calypr-evil/tool:1",
                  "ghcr.io.evil.example/calypr/x:1", "localhost:5000/x:1", "quay.io/argoproj/argoexec:v3.7.9",
                  images.FLUX_VIEW_IMAGE):
        status, body = tenants_cluster.create(pod(tenant, image=image, **placement(tenant)), dry_run=True)
        assert (status == 201) == images.admitted(image, registries), (image, status, body.get("message"))


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_workflow_pods_tenancy_templates_pass_the_tenants_registry_list(tenants_cluster, tenant):
    """Argo's pods for the tenant's WorkflowTemplate (main, init and wait containers, built as the controller
    builds them: tests/e2e/upstream_pods.py) are admitted under the tenant's own allow-list."""
    from tests.e2e.upstream_pods import argo_workflow_pods

    spec, names = SPECS_BY_NAME[tenant]
    tenants_cluster.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                           "metadata": {"name": naming.RUNNER_SERVICE_ACCOUNT, "namespace": names.namespace}})
    for workflow_pod in argo_workflow_pods(argo.workflow_template(spec, names)):
        admitted(tenants_cluster, workflow_pod)


def test_an_ephemeral_container_from_an_unlisted_registry_is_refused(tenants_cluster):
    """`kubectl debug` adds ephemeral containers through the pods/ephemeralcontainers subresource."""
    tenant = "alpha"
    live = pod(tenant, **placement(tenant))
    live["metadata"]["name"] = "debug-target"
    status, body = tenants_cluster.create(live)
    assert status == 201, body
    path = f"/api/v1/namespaces/{NAMESPACES[tenant]}/pods/debug-target/ephemeralcontainers"
    debug = {"name": "debug", "image": "quay.io/evil/shell:1", "targetContainerName": "main",
             "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
    status, body = tenants_cluster.request(
        "PATCH", path, json={"spec": {"ephemeralContainers": [debug]}}, params={"dryRun": "All"},
        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert status == 403 and f"(tenancy rule {admission.REGISTRIES})" in body.get("message", ""), body
    status, body = tenants_cluster.request(
        "PATCH", path, json={"spec": {"ephemeralContainers": [{**debug, "image": "ghcr.io/calypr/shell:1"}]}},
        params={"dryRun": "All"}, headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert status == 200, body


@pytest.mark.parametrize("tenant", DEDICATED)
def test_a_claim_with_an_unlisted_storage_class_is_refused(tenants_cluster, tenant):
    message = refused(tenants_cluster, pvc(tenant, "premium"), admission.STORAGE_CLASSES, tenant)
    assert "storage class premium is not allowed (standard)" in message
    admitted(tenants_cluster, pvc(tenant, "standard"))
    ephemeral = {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": pvc(tenant, "premium")["spec"]}}}
    refused(tenants_cluster, pod(tenant, volumes=[ephemeral], **placement(tenant)), admission.STORAGE_CLASSES, tenant)


@pytest.mark.parametrize("tenant", DEDICATED)
def test_a_pod_with_an_unlisted_priority_class_is_refused(tenants_cluster, tenant):
    message = refused(tenants_cluster, pod(tenant, priorityClassName=OTHER_PRIORITY, **placement(tenant)),
                      admission.PRIORITY_CLASSES, tenant)
    assert f"priority class {OTHER_PRIORITY} is not allowed" in message


def test_a_tenant_without_lists_keeps_todays_behaviour(tenants_cluster):
    admitted(tenants_cluster, pod("gamma", image="quay.io/anything/at-all:1", priorityClassName=OTHER_PRIORITY))
    admitted(tenants_cluster, pvc("gamma", "premium"))


# ------------------------------------------------------------------------------------------------- parameters

def test_tenants_cannot_change_their_parameters_or_the_policies(tenants_cluster):
    """The per-tenant values live outside tenant namespaces: a tenant admin may write ConfigMaps only in its own."""
    spec, names = SPECS[0]
    for manifest in rbac.rbac_manifests(names, ["alpha-admins"], ["alpha-devs"], STACK_SETTINGS.cluster_admin_group,
                                        None):
        tenants_cluster.apply(manifest)
    user, groups = "alice", ["alpha-admins"]
    assert tenants_cluster.can(user, groups, "update", "configmaps", names.namespace)  # the grant is in force
    for verb in ("update", "patch", "delete"):
        assert not tenants_cluster.can(user, groups, verb, "configmaps", STACK_SETTINGS.admission.namespace)
        assert not tenants_cluster.can(user, groups, verb, "namespaces", "")
        for resource in ("validatingadmissionpolicies", "validatingadmissionpolicybindings"):
            assert not tenants_cluster.can(user, groups, verb, resource, "", api_group="admissionregistration.k8s.io")


def test_missing_parameters_refuse_tenant_pods(tenants_cluster):
    """parameterNotFoundAction Deny: without the ConfigMap a tenant's compliant pod is refused, not waved through."""
    params = next(m for m in admission.admission_manifests(STACK_SETTINGS, [s for s, _ in SPECS])
                  if m["kind"] == "ConfigMap")
    compliant = pod("gamma")
    admitted(tenants_cluster, compliant)
    assert tenants_cluster.delete(params) == 200
    try:
        tenants_cluster.wait_for(lambda: tenants_cluster.create(compliant, dry_run=True)[0] != 201,
                                 "refusal without parameters")
        status, body = tenants_cluster.create(compliant, dry_run=True)
        # The dispatcher reports a binding configuration error under failurePolicy Fail (422 Invalid).
        assert status == 422 and "no params found" in body.get("message", ""), body.get("message")
    finally:
        tenants_cluster.apply(params)
    tenants_cluster.wait_for(lambda: tenants_cluster.create(compliant, dry_run=True)[0] == 201, "parameters back")


# ------------------------------------------------------------------------------------------------- each rule matters

@pytest.mark.parametrize("rule", admission.RULES)
def test_each_refusal_is_the_work_of_its_rule(tenants_cluster, rule):
    """Without its bindings, each rule's probe request is admitted; with them again, refused. Both orgs' bindings
    go: the other org's node-isolation binding holds in every namespace too (the two agree)."""
    bindings = [m for stack_settings, specs in ((STACK_SETTINGS, SPECS), (OTHER_SETTINGS, OTHER_SPECS))
                for m in admission.admission_manifests(stack_settings, [s for s, _ in specs])
                if m["kind"] == "ValidatingAdmissionPolicyBinding"
                and m["metadata"]["name"] == naming.admission_object(stack_settings.org, stack_settings.environment,
                                                                     rule)]
    assert [tenants_cluster.delete(binding) for binding in bindings] == [200, 200]
    try:
        obj, _ = _probes()[rule]
        tenants_cluster.wait_for(lambda: tenants_cluster.create(obj, dry_run=True)[0] == 201,
                                 f"{rule} no longer enforced")
        admitted(tenants_cluster, obj)
    finally:
        for binding in bindings:
            tenants_cluster.apply(binding)
        wait(tenants_cluster, rule, enforced=True)
