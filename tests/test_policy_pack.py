"""The CrossGuard pack's rules, called directly on synth output: clean stacks pass, each broken resource fires.

Synth records are adapted to the arguments the policy engine passes (type, camelCase inputs, URN, name,
options). Where the program does not emit a kind of resource yet, the broken case starts from a reference
record of the shape the guardrail expects, so every rule is exercised both ways either way.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Optional

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from components import settings
from policy import tenancy_policies as rules

PROJECT = Path(__file__).resolve().parent.parent
STACKS = ("dev", "staging", "prod")


def _options(record: dict[str, Any]) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=record["protect"], ignore_changes=[], delete_before_replace=None, aliases=[],
                                 custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[],
                                 parent=record["parent"])


def _policy_resource(record: dict[str, Any]) -> PolicyResource:
    return PolicyResource(record["type"], record["inputs"], record["urn"], record["name"], _options(record),
                          provider=None, parent=None, dependencies=[], property_dependencies={})


def violations(policy, records: list[dict[str, Any]], config: Optional[dict] = None) -> list[tuple[str, Any]]:
    """Every (message, urn) the policy reports over `records`, as `pulumi preview --policy-pack` would."""
    found: list[tuple[str, Any]] = []
    if isinstance(policy, ResourceValidationPolicy):
        for record in records:
            args = ResourceValidationArgs(record["type"], record["inputs"], record["urn"], record["name"],
                                          _options(record), None, config or {})
            policy.validate(args, lambda message, urn=None, r=record: found.append((message, urn or r["urn"])))
    else:
        args = StackValidationArgs([_policy_resource(r) for r in records if r["custom"]], config or {})
        policy.validate(args, lambda message, urn=None: found.append((message, urn)))
    return found


def pack_config(stack: str) -> dict[str, Any]:
    return json.loads((PROJECT / "policy" / f"config.{stack}.json").read_text())


def _rec(typ: str, name: str, inputs: dict[str, Any], protect: bool = False, stack: str = "prod") -> dict[str, Any]:
    return {"urn": f"urn:pulumi:{stack}::tenancy::tenancy:index:Tenant${typ}::{name}", "type": typ, "name": name,
            "parent": f"urn:pulumi:{stack}::tenancy::pulumi:pulumi:Stack$tenancy:index:Tenant::ref",
            "custom": True, "provider": None, "inputs": inputs, "protect": protect, "retainOnDelete": protect}


BUCKET_NAME = "calypr-ref-prod-artifacts"
NS = "wf-calypr-ref"
REFERENCE = [
    _rec(rules.BUCKET, "ref-bucket", {"bucket": BUCKET_NAME}, protect=True),
    _rec(rules.PUBLIC_ACCESS_BLOCK, "ref-pab", {"bucket": BUCKET_NAME, **dict.fromkeys(rules.PUBLIC_ACCESS_FLAGS, True)}),
    _rec(rules.OWNERSHIP_CONTROLS, "ref-own", {"bucket": BUCKET_NAME, "rule": {"objectOwnership": "BucketOwnerEnforced"}}),
    _rec(rules.ENCRYPTION, "ref-sse", {"bucket": BUCKET_NAME, "rules": [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}),
    _rec(rules.BUCKET_POLICY, "ref-tls", {"bucket": BUCKET_NAME, "policy": json.dumps({"Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{BUCKET_NAME}", f"arn:aws:s3:::{BUCKET_NAME}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})}),
    _rec("aws:iam/policy:Policy", "ref-iam", {"policy": json.dumps({"Statement": [{
        "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{BUCKET_NAME}/ref/*"}]})}),
    _rec(rules.NAMESPACE, "ref-ns", {"metadata": {"name": NS, "labels": {
        rules.TENANT_LABEL: "ref", **{f"pod-security.kubernetes.io/{m}": "restricted" for m in rules.POD_SECURITY_MODES}}}},
         protect=True),
    _rec(rules.NETWORK_POLICY, "ref-deny", {"metadata": {"name": "default-deny", "namespace": NS},
                                            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
    _rec(rules.RESOURCE_QUOTA, "ref-quota", {"metadata": {"name": "tenant-quota", "namespace": NS},
                                              "spec": {"hard": {"pods": "50"}}}),
    _rec(rules.ROLE_BINDING, "ref-rb", {"metadata": {"name": "tenant-developer", "namespace": NS}, "subjects": [
        {"kind": "Group", "name": "ref-developers", "apiGroup": "rbac.authorization.k8s.io"}]}),
    _rec(rules.ADMISSION_POLICY, "ref-vap", {"metadata": {"name": "ref-rule"}, "spec": {"failurePolicy": "Fail"}}),
    _rec(rules.ADMISSION_BINDING, "ref-vapb", {"metadata": {"name": "ref-rule"}, "spec": {
        "policyName": "ref-rule", "validationActions": ["Deny"],
        "matchResources": {"namespaceSelector": {"matchExpressions": [
            {"key": rules.TENANT_LABEL, "operator": "Exists"}]}}}}),
]


def _records(result, typ: str) -> list[dict[str, Any]]:
    """Copies of the program's resources of `typ` with the rest of the stack, else the reference stack's."""
    if result.of_type(typ):
        return copy.deepcopy(result.resources)
    return copy.deepcopy(REFERENCE)


def _first(records: list[dict[str, Any]], typ: str) -> dict[str, Any]:
    return next(r for r in records if r["type"] == typ)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("policy", rules.ALL_POLICIES, ids=lambda p: p.name)
def test_shipped_stacks_pass_every_rule(policy, stack, request):
    result = request.getfixturevalue(stack)
    assert violations(policy, result.resources, pack_config(stack).get(policy.name)) == []


@pytest.mark.parametrize("policy", rules.ALL_POLICIES, ids=lambda p: p.name)
def test_reference_stack_passes_every_rule(policy):
    assert violations(policy, REFERENCE, {"protectData": True}) == []


def test_pack_config_matches_stack_settings():
    for stack in STACKS:
        stack_settings = settings.load_stack(PROJECT, stack)
        config = pack_config(stack)
        assert config["data-resources-protected"]["protectData"] is stack_settings.protect_data
        assert config["no-cluster-role-binding-to-tenant-subjects"]["platformGroups"] == \
            [stack_settings.cluster_admin_group]


@pytest.mark.parametrize("flag", rules.PUBLIC_ACCESS_FLAGS)
def test_public_access_flag_off_fires(prod, flag):
    records = _records(prod, rules.PUBLIC_ACCESS_BLOCK)
    _first(records, rules.PUBLIC_ACCESS_BLOCK)["inputs"][flag] = False
    (found,) = violations(rules.S3_PUBLIC_ACCESS_BLOCK, records)
    assert flag in found[0]


def test_object_writer_ownership_fires(prod):
    records = _records(prod, rules.OWNERSHIP_CONTROLS)
    _first(records, rules.OWNERSHIP_CONTROLS)["inputs"]["rule"] = {"objectOwnership": "ObjectWriter"}
    assert violations(rules.S3_OWNERSHIP_ENFORCED, records)


def test_missing_encryption_fires(prod):
    records = _records(prod, rules.ENCRYPTION)
    _first(records, rules.ENCRYPTION)["inputs"]["rules"] = []
    assert violations(rules.S3_ENCRYPTION, records)


def test_bucket_policy_without_tls_deny_or_with_public_allow_fires(prod):
    records = _records(prod, rules.BUCKET_POLICY)
    bucket_policy = _first(records, rules.BUCKET_POLICY)["inputs"]
    document = json.loads(bucket_policy["policy"])
    document["Statement"] = [s for s in document["Statement"] if s.get("Effect") != "Deny"]
    document["Statement"].append({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject",
                                  "Resource": "arn:aws:s3:::x/*"})
    bucket_policy["policy"] = json.dumps(document)
    messages = [m for m, _ in violations(rules.S3_TLS_ONLY, records)]
    assert any("aws:SecureTransport" in m for m in messages)
    assert any("public principal" in m for m in messages)


@pytest.mark.parametrize("statement", [
    {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::x"},
    {"Effect": "Allow", "Action": ["s3:*"], "Resource": "arn:aws:s3:::x"},
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
    {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::x"},
])
def test_iam_wildcards_fire(prod, statement):
    records = _records(prod, "aws:iam/policy:Policy")
    policy = _first(records, "aws:iam/policy:Policy")["inputs"]
    document = json.loads(policy["policy"])
    document["Statement"] = [*document["Statement"], statement]
    policy["policy"] = json.dumps(document)
    assert violations(rules.IAM_NO_WILDCARDS, records)


def test_wildcard_in_role_inline_policy_fires():
    role = _rec(rules.IAM_ROLE, "r", {"inlinePolicies": [{"name": "x", "policy": json.dumps(
        {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})}]})
    assert len(violations(rules.IAM_NO_WILDCARDS, [role])) == 2


def test_wildcard_in_deny_is_fine():
    deny = _rec("aws:iam/userPolicy:UserPolicy", "u", {"policy": json.dumps(
        {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})})
    assert violations(rules.IAM_NO_WILDCARDS, [deny]) == []


@pytest.mark.parametrize("companion", [rules.PUBLIC_ACCESS_BLOCK, rules.OWNERSHIP_CONTROLS, rules.ENCRYPTION,
                                       rules.BUCKET_POLICY])
def test_bucket_without_companion_fires(prod, companion):
    records = _records(prod, rules.BUCKET)
    bucket = _first(records, rules.BUCKET)
    records = [r for r in records if not (r["type"] == companion and r["inputs"].get("bucket") == bucket["inputs"]["bucket"])]
    assert [urn for _, urn in violations(rules.S3_BUCKET_GUARDRAILS, records)] == [bucket["urn"]]


def _tenant_namespace(records) -> str:
    return next(r["inputs"]["metadata"]["name"] for r in records
                if r["type"] == rules.NAMESPACE and rules.TENANT_LABEL in r["inputs"]["metadata"].get("labels", {}))


@pytest.mark.parametrize("drop", [rules.NETWORK_POLICY, rules.RESOURCE_QUOTA])
def test_namespace_without_default_deny_or_quota_fires(prod, drop):
    records = _records(prod, drop)
    namespace = _tenant_namespace(records)
    records = [r for r in records if not (r["type"] == drop and r["inputs"]["metadata"].get("namespace") == namespace)]
    messages = [m for m, _ in violations(rules.TENANT_NAMESPACE_GUARDRAILS, records)]
    assert messages and all(namespace in m for m in messages)


def test_default_deny_with_a_rule_is_not_default_deny(prod):
    records = _records(prod, rules.NETWORK_POLICY)
    namespace = _tenant_namespace(records)
    for record in records:
        if record["type"] == rules.NETWORK_POLICY and record["inputs"]["metadata"].get("namespace") == namespace:
            record["inputs"]["spec"]["ingress"] = [{"from": [{"namespaceSelector": {}}]}]
    assert any("default-deny" in m for m, _ in violations(rules.TENANT_NAMESPACE_GUARDRAILS, records))


def test_namespace_without_pod_security_label_fires(prod):
    records = _records(prod, rules.NAMESPACE)
    # A tenant's namespace: the platform's own (tenancy-system, the admission parameters) is not a tenant's.
    namespace = next(r for r in records if r["type"] == rules.NAMESPACE
                     and r["inputs"]["metadata"]["name"].startswith("wf-"))
    del namespace["inputs"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    messages = [m for m, _ in violations(rules.TENANT_NAMESPACE_GUARDRAILS, records)]
    assert any("Pod Security labels for enforce" in m for m in messages)


def _cluster_binding(subject: dict[str, str]) -> dict[str, Any]:
    return _rec(rules.CLUSTER_ROLE_BINDING, "escalate", {
        "metadata": {"name": "escalate"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [subject]})


def test_cluster_role_binding_to_tenant_group_fires(prod):
    records = _records(prod, rules.ROLE_BINDING)
    namespaces = {r["inputs"]["metadata"]["name"] for r in records if r["type"] == rules.NAMESPACE}
    group = next(s["name"] for r in records if r["type"] == rules.ROLE_BINDING
                 and r["inputs"]["metadata"].get("namespace") in namespaces
                 for s in r["inputs"]["subjects"] if s["kind"] == "Group" and s["name"] != "platform-admins")
    records.append(_cluster_binding({"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}))
    (found,) = violations(rules.NO_CLUSTER_BINDINGS_TO_TENANTS, records, {"platformGroups": ["platform-admins"]})
    assert group in found[0]


def test_cluster_role_binding_to_tenant_service_account_fires(prod):
    records = _records(prod, rules.NAMESPACE)
    namespace = _tenant_namespace(records)
    records.append(_cluster_binding({"kind": "ServiceAccount", "name": "wf-runner", "namespace": namespace}))
    assert violations(rules.NO_CLUSTER_BINDINGS_TO_TENANTS, records)


def test_cluster_role_binding_to_platform_group_is_allowed(prod):
    records = copy.deepcopy(prod.resources)
    records.append(_cluster_binding({"kind": "Group", "name": "platform-admins"}))
    assert violations(rules.NO_CLUSTER_BINDINGS_TO_TENANTS, records, pack_config("prod")[
        "no-cluster-role-binding-to-tenant-subjects"]) == []


def test_unprotected_bucket_in_prod_fires(prod):
    records = _records(prod, rules.BUCKET)
    bucket = _first(records, rules.BUCKET)
    bucket["protect"] = False
    config = pack_config("prod")["data-resources-protected"]
    assert [urn for _, urn in violations(rules.DATA_PROTECTED, records, config)] == [bucket["urn"]]
    # Without the config, the other protected data resources still give the stack away.
    others_protected = any(r["protect"] for r in records if r["type"] in rules.DATA_TYPES)
    assert bool(violations(rules.DATA_PROTECTED, records)) is others_protected


def test_unprotected_data_is_fine_in_dev(dev):
    records = _records(dev, rules.BUCKET)
    for record in records:
        record["protect"] = False
    assert violations(rules.DATA_PROTECTED, records, pack_config("dev")["data-resources-protected"]) == []


def test_pack_and_diff_agree_on_what_counts_as_data():
    # The pack runs in its own virtualenv without components/, so its list is kept apart. Everything it requires
    # protected must count as data for the diff; the diff also flags data that is retained rather than protected
    # (Vault KV values, generated passwords, registry rows), so its table is wider.
    from tenancy import diff

    assert set(rules.DATA_TYPES) <= set(diff.DATA_KINDS)


# --- Argo CD confinement --------------------------------------------------------------------------------------------

def _argocd(records: list[dict[str, Any]], typ: str) -> dict[str, Any]:
    return next(r for r in records if r["type"] == typ)


def test_shipped_stacks_render_the_argocd_kinds_the_rules_check(prod):
    assert prod.of_type(rules.APP_PROJECT) and prod.of_type(rules.APPLICATION_SET)


@pytest.mark.parametrize("project", ["default", "", " default "])
def test_default_project_in_an_application_set_fires(prod, project):
    records = copy.deepcopy(prod.resources)
    _argocd(records, rules.APPLICATION_SET)["inputs"]["spec"]["template"]["spec"]["project"] = project
    (found,) = violations(rules.ARGOCD_NO_DEFAULT_PROJECT, records)
    assert "'default' project" in found[0]


def test_default_project_in_an_application_fires():
    app = _rec(rules.APPLICATION, "app", {"metadata": {"name": "x", "namespace": "argocd"},
                                          "spec": {"project": "default", "destination": {"namespace": NS}}})
    assert violations(rules.ARGOCD_NO_DEFAULT_PROJECT, [app])


@pytest.mark.parametrize("field, value", [
    ("sourceRepos", ["*"]),
    ("sourceRepos", ["https://github.com/calypr/*"]),
    ("sourceRepos", ["https://github.com/calypr/research.git", "https://github.com/calypr/compliance.git"]),
    ("sourceRepos", ["!https://github.com/calypr/other.git"]),
    ("destinations", [{"server": "*", "namespace": "wf-calypr-research"}]),
    ("destinations", [{"server": "https://kubernetes.default.svc", "namespace": "wf-calypr-*"}]),
    ("destinations", [{"server": "https://kubernetes.default.svc", "namespace": "wf-calypr-research"},
                      {"server": "https://kubernetes.default.svc", "namespace": "wf-calypr-compliance"}]),
    ("destinations", [{"server": "https://kubernetes.default.svc", "namespace": "!kube-system"}]),
    ("destinations", []),
    ("clusterResourceWhitelist", [{"group": "*", "kind": "*"}]),
    ("sourceNamespaces", ["*"]),
    ("destinationServiceAccounts", [{"server": "https://kubernetes.default.svc", "namespace": "wf-calypr-research",
                                     "defaultServiceAccount": "argocd:argocd-application-controller"}]),
    ("destinationServiceAccounts", [{"server": "*", "namespace": "*", "defaultServiceAccount": "tenancy-deployer"}]),
])
def test_app_project_reaching_beyond_one_tenant_fires(prod, field, value):
    records = copy.deepcopy(prod.resources)
    project = _argocd(records, rules.APP_PROJECT)
    project["inputs"]["spec"][field] = value
    found = violations(rules.ARGOCD_PROJECT_CONFINED, records)
    assert found and all(urn == project["urn"] for _, urn in found)
    assert "reaches beyond one tenant" in found[0][0]


@pytest.mark.parametrize("mutate", [
    lambda spec: spec["syncPolicy"].pop("preserveResourcesOnDeletion"),
    lambda spec: spec.pop("syncPolicy"),
    lambda spec: spec["template"]["metadata"].update(finalizers=["resources-finalizer.argocd.argoproj.io"]),
])
def test_cascading_application_set_fires(prod, mutate):
    records = copy.deepcopy(prod.resources)
    mutate(_argocd(records, rules.APPLICATION_SET)["inputs"]["spec"])
    assert violations(rules.ARGOCD_NO_CASCADE, records)


def _admission(result) -> list[dict[str, Any]]:
    return _records(result, rules.ADMISSION_BINDING)


@pytest.mark.parametrize("break_it, needle", [
    (lambda b: b["spec"].update(validationActions=["Warn", "Audit"]), "only warns or audits"),
    (lambda b: b["spec"].update(policyName="nowhere"), "names no ValidatingAdmissionPolicy"),
    (lambda b: b["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"].append(
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["wf-calypr-compliance"]}),
     "'wf-calypr-compliance' is not held to the admission policies"),
])
def test_a_weakened_admission_binding_fires(prod, break_it, needle):
    records = _admission(prod)
    binding = next(r for r in records if r["type"] == rules.ADMISSION_BINDING
                   and r["inputs"]["spec"].get("paramRef"))
    break_it(binding["inputs"])
    messages = [m for m, _ in violations(rules.ADMISSION_GUARDRAILS, records)]
    assert any(needle in m for m in messages), messages


def test_missing_parameters_that_admit_fire(prod):
    records = _admission(prod)
    binding = next(r for r in records if r["type"] == rules.ADMISSION_BINDING and r["inputs"]["spec"].get("paramRef"))
    binding["inputs"]["spec"]["paramRef"]["parameterNotFoundAction"] = "Allow"
    assert any("parameterNotFoundAction must be Deny" in m for m, _ in violations(rules.ADMISSION_GUARDRAILS, records))


def test_fail_open_policy_and_a_stack_without_bindings_fire(prod):
    records = _admission(prod)
    _first(records, rules.ADMISSION_POLICY)["inputs"]["spec"]["failurePolicy"] = "Ignore"
    assert any("must fail closed" in m for m, _ in violations(rules.ADMISSION_GUARDRAILS, records))
    records = [r for r in _admission(prod) if r["type"] != rules.ADMISSION_BINDING]
    messages = [m for m, _ in violations(rules.ADMISSION_GUARDRAILS, records)]
    assert messages and all("no enforcing binding" in m for m in messages)
