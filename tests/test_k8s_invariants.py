"""Isolation invariants over every rendered object of every stack: what a tenant (or attacker in one) can reach."""

from __future__ import annotations

import ipaddress
from collections import defaultdict

import pytest
import yaml

from components import catalogue, namespace, naming, settings
from tests.conftest import PROJECT, sample

STACKS = ("dev", "staging", "prod")
FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate"}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}
# (apiGroup, resource) a tenant must never write: the fences around it.
FENCES = {("", "namespaces"), ("", "namespaces/status"), ("", "namespaces/finalize"), ("", "resourcequotas"),
          ("", "limitranges"), ("networking.k8s.io", "networkpolicies")}
TENANT_ROLES = (naming.TENANT_ADMIN_ROLE, naming.TENANT_DEVELOPER_ROLE, naming.EXECUTOR_ROLE)


def _objects(stack: str) -> list[dict]:
    return [m for _, m in sample(stack).manifests()]


def _namespaces(stack: str) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in _objects(stack)
            if m["kind"] == "Namespace" and naming.TENANT_LABEL in m["metadata"].get("labels", {})}


def _in_namespace(stack: str) -> dict[str, list[dict]]:
    found = defaultdict(list)
    for m in _objects(stack):
        found[m["metadata"].get("namespace")].append(m)
    return found


def _one(objects: list[dict], kind: str, name: str) -> dict:
    matches = [m for m in objects if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels AND matchExpressions)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _peers(policy: dict) -> list[dict]:
    spec = policy["spec"]
    return [p for rule in spec.get("ingress", []) for p in rule.get("from", [])] + \
           [p for rule in spec.get("egress", []) for p in rule.get("to", [])]


@pytest.mark.parametrize("stack", STACKS)
def test_no_cluster_scoped_grant_to_a_tenant_subject(stack):
    tenant_groups = set()
    for ns in _namespaces(stack):
        for m in _in_namespace(stack)[ns]:
            if m["kind"] == "RoleBinding" and m["metadata"]["name"] != naming.PLATFORM_ADMIN_BINDING:
                tenant_groups |= {s["name"] for s in m["subjects"]}
    for m in _objects(stack):
        if m["kind"] == "ClusterRoleBinding":
            names = {s["name"] for s in m.get("subjects", [])}
            assert not names & tenant_groups, m["metadata"]["name"]
            assert not any(s.get("namespace") in _namespaces(stack) for s in m.get("subjects", []))


@pytest.mark.parametrize("stack", STACKS)
def test_tenant_roles_never_escalate_nor_write_their_fences(stack):
    roles = [m for ns in _namespaces(stack) for m in _in_namespace(stack)[ns] if m["kind"] == "Role"]
    assert {r["metadata"]["name"] for r in roles} == set(TENANT_ROLES)
    for role in roles:
        for rule in role["rules"]:
            where = f"{role['metadata']['namespace']}/{role['metadata']['name']}: {rule}"
            assert not set(rule["verbs"]) & FORBIDDEN_VERBS, where
            assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], where
            # Any grant on RBAC objects would let a tenant widen its own roles.
            assert "rbac.authorization.k8s.io" not in rule["apiGroups"], where
            touched = {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
            if set(rule["verbs"]) & WRITE_VERBS:
                assert not touched & FENCES, where


@pytest.mark.parametrize("stack", STACKS)
def test_bindings_name_only_own_roles_and_subjects(stack):
    for ns, objects in ((ns, _in_namespace(stack)[ns]) for ns in _namespaces(stack)):
        roles = {m["metadata"]["name"] for m in objects if m["kind"] == "Role"}
        accounts = {m["metadata"]["name"] for m in objects if m["kind"] == "ServiceAccount"}
        for binding in (m for m in objects if m["kind"] == "RoleBinding"):
            ref = binding["roleRef"]
            if ref["kind"] == "Role":
                assert ref["name"] in roles
            else:
                assert binding["metadata"]["name"] == naming.PLATFORM_ADMIN_BINDING and ref["name"] == "admin"
                assert [s["name"] for s in binding["subjects"]] == ["platform-admins"]
            for subject in binding["subjects"]:
                if subject["kind"] == "ServiceAccount":
                    assert subject["namespace"] == ns and subject["name"] in accounts


@pytest.mark.parametrize("stack", STACKS)
def test_owner_groups_are_bound_to_their_roles(stack):
    objects = _in_namespace(stack)["wf-calypr-compliance"]
    admin = _one(objects, "RoleBinding", naming.TENANT_ADMIN_ROLE)
    developer = _one(objects, "RoleBinding", naming.TENANT_DEVELOPER_ROLE)
    assert [s["name"] for s in admin["subjects"]] == ["compliance-admins"]
    assert [s["name"] for s in developer["subjects"]] == ["compliance-analysts"]


@pytest.mark.parametrize("stack", STACKS)
def test_executor_role_is_exactly_the_argo_rule(stack):
    for ns in _namespaces(stack):
        role = _one(_in_namespace(stack)[ns], "Role", naming.EXECUTOR_ROLE)
        assert role["rules"] == [
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["artifact-repositories"],
             "verbs": ["get"]},
        ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_tenant_namespace_is_fenced(stack):
    namespaces = _namespaces(stack)
    assert len(namespaces) >= 2
    for ns, namespace in namespaces.items():
        objects = _in_namespace(stack)[ns]
        labels = namespace["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] in ("restricted", "baseline")
        deny = _one(objects, "NetworkPolicy", "default-deny")["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        dns = _one(objects, "NetworkPolicy", "allow-dns")["spec"]["egress"][0]
        assert dns["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
        assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
        hard = _one(objects, "ResourceQuota", naming.QUOTA)["spec"]["hard"]
        assert {"pods", "services", "secrets", "configmaps", "requests.cpu", "limits.memory"} <= set(hard)
        limits = _one(objects, "LimitRange", naming.LIMIT_RANGE)["spec"]["limits"][0]
        assert limits["default"] and limits["defaultRequest"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_allow_rule_reaches_another_tenants_namespace(stack):
    namespaces = _namespaces(stack)
    for ns in namespaces:
        for policy in (m for m in _in_namespace(stack)[ns] if m["kind"] == "NetworkPolicy"):
            for peer in _peers(policy):
                selector = peer.get("namespaceSelector")
                if selector is None:
                    continue
                assert selector.get("matchLabels") or selector.get("matchExpressions"), \
                    f"{ns}/{policy['metadata']['name']}: empty namespaceSelector selects every namespace"
                reached = {other for other, m in namespaces.items() if _selects(selector, m["metadata"]["labels"])}
                assert reached <= {ns}, f"{ns}/{policy['metadata']['name']} reaches {reached - {ns}}"


@pytest.mark.parametrize("stack", STACKS)
def test_no_allow_rule_reaches_a_same_named_tenant_of_another_org(stack):
    """Another org's stack on the same cluster labels its tenants' namespaces as `namespace.tenancy_labels` does,
    with the same tenant values and its own org: none of this stack's selectors may pick them."""
    others = {}
    for spec, _ in catalogue.load(PROJECT / "tenants.yaml", stacks=STACKS).for_stack(settings.load_stack(PROJECT, stack)):
        names = naming.derive("acme", stack, spec.name)
        others[names.namespace] = namespace.tenancy_labels(spec, names, stack, "acme")
    assert {labels[naming.TENANT_LABEL] for labels in others.values()} == \
        {m["metadata"]["labels"][naming.TENANT_LABEL] for m in _namespaces(stack).values()}
    for ns in _namespaces(stack):
        for policy in (m for m in _in_namespace(stack)[ns] if m["kind"] == "NetworkPolicy"):
            for peer in _peers(policy):
                selector = peer.get("namespaceSelector")
                reached = {o for o, labels in others.items() if selector is not None and _selects(selector, labels)}
                assert not reached, f"{ns}/{policy['metadata']['name']} reaches org acme's {reached}"


@pytest.mark.parametrize("stack", STACKS)
def test_internet_egress_only_when_allowed_and_never_to_metadata(stack):
    tenants_with_internet = set()
    for ns in _namespaces(stack):
        for policy in (m for m in _in_namespace(stack)[ns] if m["kind"] == "NetworkPolicy"):
            for peer in _peers(policy):
                block = peer.get("ipBlock")
                if not block:
                    continue
                network = ipaddress.ip_network(block["cidr"])
                excepted = [ipaddress.ip_network(c) for c in block.get("except", [])]
                metadata = ipaddress.ip_address("169.254.169.254")
                if metadata in network:
                    assert any(metadata in e for e in excepted), f"{ns}/{policy['metadata']['name']}"
                if network.prefixlen == 0 and policy["spec"]["podSelector"] == {}:
                    tenants_with_internet.add(ns)
    assert tenants_with_internet == {"wf-calypr-research"}


@pytest.mark.parametrize("stack", STACKS)
def test_names_referenced_across_objects_exist(stack):
    for ns in _namespaces(stack):
        objects = _in_namespace(stack)[ns]
        by_kind = defaultdict(dict)
        for m in objects:
            by_kind[m["kind"]][m["metadata"]["name"]] = m
        # Secrets in the namespace are the targets External Secrets writes, with the keys it copies.
        secret_keys = {es["spec"]["target"]["name"]: {d["secretKey"] for d in es["spec"]["data"]}
                       for es in by_kind["ExternalSecret"].values()}

        configmap = by_kind["ConfigMap"][naming.ARTIFACT_REPOSITORIES_CONFIGMAP]
        key = configmap["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
        repository = yaml.safe_load(configmap["data"][key])
        for ref in ("accessKeySecret", "secretKeySecret"):
            if ref in repository["s3"]:
                secret = repository["s3"][ref]
                assert secret["key"] in secret_keys.get(secret["name"], set()), (ns, ref)

        template = by_kind["WorkflowTemplate"][naming.WORKFLOW_TEMPLATE]["spec"]
        assert template["serviceAccountName"] in by_kind["ServiceAccount"]

        for store in by_kind["SecretStore"].values():
            account = store["spec"]["provider"]["vault"]["auth"]["kubernetes"]["serviceAccountRef"]["name"]
            assert account in by_kind["ServiceAccount"]
        for es in by_kind["ExternalSecret"].values():
            assert es["spec"]["secretStoreRef"]["name"] in by_kind["SecretStore"]

        for mc in by_kind["MiniCluster"].values():
            for container in mc["spec"]["containers"]:
                for env, ref in container.get("secrets", {}).items():
                    assert ref["key"] in secret_keys.get(ref["name"], set()), (ns, env)

        for verifier in by_kind["NamespacedVerifier"].values():
            for refs in verifier["spec"]["parameters"]["verificationCertStores"]["ca"].values():
                for ref in refs:
                    ref_ns, _, kmp = ref.partition("/")
                    assert ref_ns == ns and kmp in by_kind["NamespacedKeyManagementProvider"]


@pytest.mark.parametrize("stack", STACKS)
def test_dedicated_tenant_pods_land_only_on_its_nodes(stack):
    objects = _in_namespace(stack)["wf-calypr-compliance"]
    namespace = _namespaces(stack)["wf-calypr-compliance"]["metadata"]["annotations"]
    assert namespace["scheduler.alpha.kubernetes.io/node-selector"] == "tenancy.io/tenant=calypr.compliance"
    template = _one(objects, "WorkflowTemplate", naming.WORKFLOW_TEMPLATE)["spec"]
    assert template["nodeSelector"] == {"tenancy.io/tenant": "calypr.compliance"}
    assert yaml.safe_load(namespace["scheduler.alpha.kubernetes.io/defaultTolerations"]) == template["tolerations"]


def test_irsa_stacks_name_the_role_and_no_static_keys():
    for stack in ("staging", "prod"):
        for ns in _namespaces(stack):
            objects = _in_namespace(stack)[ns]
            account = _one(objects, "ServiceAccount", naming.RUNNER_SERVICE_ACCOUNT)
            assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
            repository = yaml.safe_load(_one(objects, "ConfigMap", naming.ARTIFACT_REPOSITORIES_CONFIGMAP)
                                        ["data"][naming.ARTIFACT_REPOSITORY_KEY])
            assert repository["s3"]["useSDKCreds"] is True and "accessKeySecret" not in repository["s3"]
    for ns in _namespaces("dev"):
        account = _one(_in_namespace("dev")[ns], "ServiceAccount", naming.RUNNER_SERVICE_ACCOUNT)
        assert "annotations" not in account["metadata"]


@pytest.mark.parametrize("stack", STACKS)
def test_tenancy_objects_register_under_the_tenant_cluster_component(stack):
    result = sample(stack)
    for tenant in result.tenant_names():
        owned = result.tenant(tenant)
        component = [r for r in owned if r["type"] == "tenancy:cluster:TenantCluster"]
        assert len(component) == 1
        inside = result.descendants(component[0]["urn"])
        assert inside and all(r["provider"] and r["provider"].endswith("::kubernetes") for r in inside)
        assert {r["inputs"]["kind"] for r in inside} >= {"ResourceQuota", "LimitRange", "NetworkPolicy", "Role",
                                                         "RoleBinding", "ServiceAccount", "ConfigMap",
                                                         "WorkflowTemplate"}
