"""RBAC as the real authorizer decides it (SubjectAccessReview against kube-apiserver's RBAC), per stack.

For every tenant, its admin groups, developer groups and `wf-runner` ServiceAccount are checked over a full
matrix of namespaced resources and verbs:
- in every other tenant's namespace: nothing at all;
- in their own namespace: exactly what docs/kubernetes.md and the roles' docstrings promise — the team admin
  runs workloads (pods, controllers, jobs, Argo, MiniClusters) and reads Secrets, Ratify and its fences but never
  writes quota, limits, network policies, RBAC or the Namespace; developers submit and read workflows and read
  their pods and logs; the runner only what Argo's executor (v3.4+) needs: create/patch workflowtaskresults and
  get the `artifact-repositories` ConfigMap (argo-workflows `workflow/executor`, `manifests/quick-start`
  executor Role).
A second org's copy of the dev stack on the same cluster (`two_orgs`): its same-named tenants' subjects can do
nothing in the first org's namespaces and the other way round, and the NetworkPolicies' namespace selectors, as the
API server evaluates them, pick no namespace of the other org.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

READ = {"get", "list", "watch"}
WRITE = READ | {"create", "update", "patch", "delete", "deletecollection"}
VERBS = sorted(WRITE)
# Verbs that only mean something on some resources (RBAC escalation, impersonating a ServiceAccount).
SPECIAL_VERBS = {"roles": ["escalate", "bind"], "serviceaccounts": ["impersonate"]}

# (api group, resource) for every namespaced resource a tenant could care about.
RESOURCES = [
    ("", "pods"), ("", "pods/log"), ("", "pods/exec"), ("", "pods/portforward"), ("", "pods/attach"),
    ("", "pods/ephemeralcontainers"), ("", "services"), ("", "configmaps"), ("", "secrets"),
    ("", "serviceaccounts"), ("", "serviceaccounts/token"), ("", "persistentvolumeclaims"), ("", "events"),
    ("", "endpoints"), ("", "resourcequotas"), ("", "resourcequotas/status"), ("", "limitranges"),
    ("", "namespaces"),
    ("apps", "deployments"), ("apps", "statefulsets"), ("apps", "replicasets"), ("apps", "daemonsets"),
    ("batch", "jobs"), ("batch", "cronjobs"),
    ("networking.k8s.io", "networkpolicies"), ("networking.k8s.io", "ingresses"),
    ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "rolebindings"),
    ("argoproj.io", "workflows"), ("argoproj.io", "workflowtemplates"), ("argoproj.io", "cronworkflows"),
    ("argoproj.io", "workfloweventbindings"), ("argoproj.io", "workflowtaskresults"),
    ("argoproj.io", "workflowartifactgctasks"), ("argoproj.io", "workflowtasksets"),
    *(("config.ratify.deislabs.io", r) for r in ("namespacedkeymanagementproviders", "namespacedverifiers",
                                                  "namespacedstores", "namespacedpolicies")),
    ("flux-framework.org", "miniclusters"),
    ("external-secrets.io", "externalsecrets"), ("external-secrets.io", "secretstores"),
    ("external-secrets.io", "pushsecrets"),
]

RATIFY = {("config.ratify.deislabs.io", r) for r in ("namespacedkeymanagementproviders", "namespacedverifiers",
                                                      "namespacedstores", "namespacedpolicies")}

# The promise, per role: (group, resource) -> verbs allowed in the tenant's own namespace.
ADMIN = {
    **{("", r): WRITE for r in ("pods", "services", "configmaps", "persistentvolumeclaims")},
    ("", "pods/log"): READ, ("", "pods/exec"): {"create"}, ("", "pods/portforward"): {"create"},
    **{("", r): READ for r in ("secrets", "serviceaccounts", "events", "resourcequotas", "limitranges")},
    **{("apps", r): WRITE for r in ("deployments", "statefulsets", "replicasets")},
    **{("batch", r): WRITE for r in ("jobs", "cronjobs")},
    ("networking.k8s.io", "networkpolicies"): READ,
    **{("argoproj.io", r): WRITE for r in ("workflows", "workflowtemplates", "cronworkflows",
                                           "workfloweventbindings")},
    **{("argoproj.io", r): READ for r in ("workflowtaskresults", "workflowartifactgctasks")},
    # Tenancy's trust anchor and verification policy (supplyChain): read, never changed.
    **{k: READ for k in RATIFY},
    ("flux-framework.org", "miniclusters"): WRITE,
}
DEVELOPER = {
    **{("", r): READ for r in ("pods", "pods/log", "events", "configmaps", "services")},
    ("argoproj.io", "workflows"): READ | {"create"},
    **{("argoproj.io", r): READ for r in ("workflowtemplates", "cronworkflows")},
    ("flux-framework.org", "miniclusters"): READ,
}
RUNNER = {("argoproj.io", "workflowtaskresults"): {"create", "patch"}}
ARTIFACT_CONFIGMAP = "artifact-repositories"

# What admission and isolation rely on: no tenant role may ever write these, whatever else changes.
FENCES = [("", "resourcequotas"), ("", "limitranges"), ("networking.k8s.io", "networkpolicies"),
          ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "rolebindings"), ("", "namespaces"),
          *sorted(RATIFY)]


def _subjects(deployed):
    """tenant namespace -> [(label, user, groups, promise)] from the rendered RoleBindings."""
    found = {}
    for namespace in deployed.tenant_namespaces():
        ns = namespace["metadata"]["name"]
        bindings = {b["metadata"]["name"]: b for b in deployed.of_kind("RoleBinding") if b["metadata"]["namespace"] == ns}
        subjects = []
        for binding, promise in (("tenant-admin", ADMIN), ("tenant-developer", DEVELOPER)):
            for subject in bindings.get(binding, {}).get("subjects", []):
                subjects.append((f"{binding}:{subject['name']}", f"someone-in-{subject['name']}",
                                 (subject["name"], "system:authenticated"), promise))
        subjects.append(("wf-runner", f"system:serviceaccount:{ns}:wf-runner",
                         ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"), RUNNER))
        found[ns] = subjects
    return found


def _verbs(resource: str) -> list[str]:
    return VERBS + SPECIAL_VERBS.get(resource, [])


def _matrix(cluster, user, groups, namespace, name=""):
    """(group, resource, verb) -> allowed, for the whole matrix in `namespace`."""
    checks = [(g, r, v) for g, r in RESOURCES for v in _verbs(r)]

    def ask(check):
        group, resource, verb = check
        base, _, sub = resource.partition("/")
        return check, cluster.can(user, groups, verb, base, namespace, api_group=group, subresource=sub,
                                  name=name or (namespace if base == "namespaces" else ""))

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(ask, checks))


def test_every_tenant_has_admins_developers_and_a_runner(deployed):
    subjects = _subjects(deployed)
    assert subjects and all(len(s) >= 3 for s in subjects.values()), subjects


def test_no_tenant_subject_can_do_anything_in_another_tenants_namespace(deployed):
    subjects = _subjects(deployed)
    assert len(subjects) >= 2
    granted = {}
    for own, people in subjects.items():
        for other in subjects:
            if other == own:
                continue
            for label, user, groups, _ in people:
                allowed = sorted(f"{v} {g}/{r}" for (g, r, v), ok in _matrix(deployed.cluster, user, groups, other).items()
                                 if ok)
                if allowed:
                    granted[f"{own} {label} in {other}"] = allowed
    assert granted == {}


def test_in_their_own_namespace_subjects_hold_exactly_what_the_docs_promise(deployed):
    subjects = _subjects(deployed)
    differences = {}
    for namespace, people in subjects.items():
        for label, user, groups, promise in people:
            actual = _matrix(deployed.cluster, user, groups, namespace)
            expected = {(g, r, v): v in promise.get((g, r), set()) for g, r in RESOURCES for v in _verbs(r)}
            extra = sorted(f"{v} {g}/{r}" for k, ok in actual.items() if ok and not expected[k] for g, r, v in [k])
            missing = sorted(f"{v} {g}/{r}" for k, ok in actual.items() if expected[k] and not ok for g, r, v in [k])
            if extra or missing:
                differences[f"{namespace} {label}"] = {"beyond the promise": extra, "promised, not granted": missing}
    assert differences == {}


def test_the_runner_reads_only_the_artifact_repository_configmap(deployed):
    for namespace, people in _subjects(deployed).items():
        _, user, groups, _ = next(p for p in people if p[0] == "wf-runner")
        assert deployed.cluster.can(user, groups, "get", "configmaps", namespace, name=ARTIFACT_CONFIGMAP)
        assert not deployed.cluster.can(user, groups, "get", "configmaps", namespace, name="other")
        assert not deployed.cluster.can(user, groups, "update", "configmaps", namespace, name=ARTIFACT_CONFIGMAP)


@pytest.mark.parametrize("group, resource", FENCES)
def test_no_tenant_subject_writes_a_fence(deployed, group, resource):
    for namespace, people in _subjects(deployed).items():
        for label, user, groups, _ in people:
            for verb in ("create", "update", "patch", "delete", "escalate", "bind"):
                assert not deployed.cluster.can(user, groups, verb, resource, namespace, api_group=group,
                                                 name=namespace if resource == "namespaces" else ""), \
                    f"{label} can {verb} {resource} in {namespace}"


def _same_named(two_orgs):
    """(namespace, subjects, other org's namespace of the same tenant) in both directions."""
    ours, theirs = (_subjects(org) for org in two_orgs)
    tenant = lambda org, ns: next(n["metadata"]["labels"]["tenancy.io/tenant"]  # noqa: E731
                                  for n in org.tenant_namespaces() if n["metadata"]["name"] == ns)
    pairs = []
    for (a, a_org), (b, b_org) in (((ours, two_orgs[0]), (theirs, two_orgs[1])),
                                   ((theirs, two_orgs[1]), (ours, two_orgs[0]))):
        for ns, people in a.items():
            for other in b:
                if tenant(a_org, ns) == tenant(b_org, other):
                    pairs.append((ns, people, other))
    return pairs


def test_a_second_orgs_same_named_tenant_can_do_nothing_in_the_first_orgs(two_orgs):
    pairs = _same_named(two_orgs)
    assert {(ns, other) for ns, _, other in pairs} >= {("wf-acme-research", "wf-calypr-research"),
                                                       ("wf-calypr-research", "wf-acme-research")}
    cluster = two_orgs[0].cluster
    granted = {}
    for own, people, other in pairs:
        for label, user, groups, _ in people:
            allowed = sorted(f"{v} {g}/{r}" for (g, r, v), ok in _matrix(cluster, user, groups, other).items() if ok)
            if allowed:
                granted[f"{own} {label} in {other}"] = allowed
    assert granted == {}
    # The grants are in force: acme's research admins do hold their role in their own namespace.
    assert cluster.can("someone-in-acme-research-admins", ("acme-research-admins", "system:authenticated"),
                       "create", "pods", "wf-acme-research")


def test_no_network_policy_of_either_org_selects_the_other_orgs_namespaces(two_orgs):
    """Each namespaceSelector of every tenant NetworkPolicy, as the API server evaluates it (a labelSelector
    query), lists no namespace of the other org; `allow-same-tenant` lists exactly its own namespace."""
    cluster = two_orgs[0].cluster
    for org, other in (two_orgs, two_orgs[::-1]):
        foreign = {n["metadata"]["name"] for n in other.tenant_namespaces()}
        for policy in org.of_kind("NetworkPolicy"):
            namespace = policy["metadata"]["namespace"]
            stored = cluster.get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/"
                                 f"{policy['metadata']['name']}")
            rules = stored["spec"].get("ingress", []) + stored["spec"].get("egress", [])
            for peer in [p for rule in rules for p in rule.get("from", rule.get("to", []))]:
                selector = peer.get("namespaceSelector")
                if selector is None:
                    continue
                assert set(selector) == {"matchLabels"}, selector
                query = ",".join(f"{k}={v}" for k, v in selector["matchLabels"].items())
                listed = {n["metadata"]["name"] for n in cluster.get("/api/v1/namespaces",
                                                                     params={"labelSelector": query})["items"]}
                assert not listed & foreign, (namespace, policy["metadata"]["name"], listed & foreign)
                if policy["metadata"]["name"] == "allow-same-tenant":
                    assert listed == {namespace}, (namespace, listed)
