"""Tenancy guardrails as CrossGuard policies, importable without starting the policy pack's gRPC server.

Resource policies check one resource's inputs; stack policies check that the resources which only make sense
together (a bucket and its public-access block, a tenant namespace and its default-deny policy) all exist.
Bucket children are tied to their bucket by the bucket name in their `bucket` property or, when that is
still unknown during a preview, by the engine's dependency on the bucket.

Which stacks must protect data is policy configuration, `protectData` (one JSON file per stack under
`policy/config.<stack>.json`, passed with `--policy-pack-config`), so a forgotten `protect` in prod cannot pass
just because the program forgot it everywhere. Without that config, a stack in which any data resource is
protected is held to protecting all of them.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP_CONTROLS = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
IAM_DOCUMENT_TYPES = {
    "aws:iam/policy:Policy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}
IAM_ROLE = "aws:iam/role:Role"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
ADMISSION_POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
ADMISSION_BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
DATA_TYPES = (BUCKET, "aws:kms/key:Key", "aws:keyspaces/table:Table", "kubernetes:core/v1:Namespace")
APPLICATION = "kubernetes:argoproj.io/v1alpha1:Application"
APPLICATION_SET = "kubernetes:argoproj.io/v1alpha1:ApplicationSet"
APP_PROJECT = "kubernetes:argoproj.io/v1alpha1:AppProject"
# Argo CD matches AppProject sources and destinations as globs, and `!` negates (app_project_types.go): any of
# these characters makes a pattern that can match more than one tenant's repository or namespace.
GLOB_CHARACTERS = set("*?[]{}!")

TENANT_LABEL = "tenancy.io/tenant"
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS = {"AES256", "aws:kms", "aws:kms:dsse"}
POD_SECURITY_MODES = ("enforce", "audit", "warn")
POD_SECURITY_LEVELS = {"privileged", "baseline", "restricted"}


def _list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _document(value: Any) -> Optional[Mapping[str, Any]]:
    """A policy document from a JSON string or an already-decoded dict; None while it is still unknown."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return None
        return decoded if isinstance(decoded, Mapping) else None
    return None


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in _list(document.get("Statement")) if isinstance(s, Mapping)]


# ---------------------------------------------------------------------------------------------- S3, per resource

def _public_access_block(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != PUBLIC_ACCESS_BLOCK:
        return
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if args.props.get(flag) is not True]
    if off:
        report_violation(f"public access block of bucket {args.props.get('bucket')!r} must set {', '.join(off)} "
                         "to true", None)


def _ownership_enforced(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != OWNERSHIP_CONTROLS:
        return
    ownership = (args.props.get("rule") or {}).get("objectOwnership")
    if ownership != "BucketOwnerEnforced":
        report_violation(f"object ownership is {ownership!r}; only BucketOwnerEnforced disables ACLs", None)


def _encryption(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != ENCRYPTION:
        return
    rules = _list(args.props.get("rules"))
    algorithms = [((r or {}).get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for r in rules]
    if not algorithms or any(a not in SSE_ALGORITHMS for a in algorithms):
        report_violation(f"default encryption must be one of {sorted(SSE_ALGORITHMS)}, got {algorithms}", None)


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    condition = (statement.get("Condition") or {}).get("Bool") or {}
    actions = set(_list(statement.get("Action")))
    return (statement.get("Effect") == "Deny" and str(condition.get("aws:SecureTransport")).lower() == "false"
            and bool(actions & {"s3:*", "*"}))


def _public_principal(statement: Mapping[str, Any]) -> bool:
    principal = statement.get("Principal")
    return principal == "*" or (isinstance(principal, Mapping) and "*" in _list(principal.get("AWS")))


def _bucket_policy(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != BUCKET_POLICY:
        return
    document = _document(args.props.get("policy"))
    if document is None:
        return  # unknown until the bucket exists; checked again on update
    statements = _statements(document)
    if not any(_denies_insecure_transport(s) for s in statements):
        report_violation("bucket policy must deny every s3 action when aws:SecureTransport is false", None)
    if any(s.get("Effect") == "Allow" and _public_principal(s) for s in statements):
        report_violation("bucket policy must not allow the public principal \"*\"", None)


# -------------------------------------------------------------------------------------------------------- IAM

def _wildcards(document: Mapping[str, Any]) -> list[str]:
    found = []
    for statement in _statements(document):
        if statement.get("Effect") != "Allow":
            continue  # a wildcard in a Deny only narrows access
        if "NotAction" in statement or "NotResource" in statement:
            found.append("NotAction/NotResource in an Allow grants everything not listed")
        found += [f"Action {a!r}" for a in _list(statement.get("Action")) if a == "*" or str(a).endswith(":*")]
        found += [f"Resource {r!r}" for r in _list(statement.get("Resource")) if r == "*"]
    return found


def _iam_no_wildcards(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type in IAM_DOCUMENT_TYPES:
        documents = [args.props.get(IAM_DOCUMENT_TYPES[args.resource_type])]
    elif args.resource_type == IAM_ROLE:
        documents = [(p or {}).get("policy") for p in _list(args.props.get("inlinePolicies"))]
    else:
        return
    for document in filter(None, map(_document, documents)):
        for wildcard in _wildcards(document):
            report_violation(f"IAM policy allows {wildcard}; scope it to the tenant's actions and ARNs", None)


# ------------------------------------------------------------------------------------------------------ stack

def _of(resources: Iterable[Any], *types: str) -> list[Any]:
    return [r for r in resources if r.resource_type in types]


def _meta(resource: Any) -> Mapping[str, Any]:
    return resource.props.get("metadata") or {}


def _depends_on(resource: Any, target: Any) -> bool:
    return any(d.urn == target.urn for d in list(resource.dependencies or [])
               + list((resource.property_dependencies or {}).get("bucket", [])))


def _bucket_guardrails(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    companions = {
        PUBLIC_ACCESS_BLOCK: "a public access block", OWNERSHIP_CONTROLS: "ownership controls",
        ENCRYPTION: "a default encryption configuration", BUCKET_POLICY: "a TLS-only bucket policy",
    }
    for bucket in _of(args.resources, BUCKET):
        name = bucket.props.get("bucket")
        for kind, what in companions.items():
            if not any(r.props.get("bucket") == name or _depends_on(r, bucket) for r in _of(args.resources, kind)):
                report_violation(f"bucket {name!r} has no {what}", bucket.urn)


def _tenant_namespaces(resources: Iterable[Any]) -> dict[str, Any]:
    return {_meta(ns).get("name"): ns for ns in _of(resources, NAMESPACE)
            if TENANT_LABEL in (_meta(ns).get("labels") or {})}


def _is_default_deny(policy: Any) -> bool:
    spec = policy.props.get("spec") or {}
    selector = spec.get("podSelector") or {}
    return (not selector.get("matchLabels") and not selector.get("matchExpressions")
            and {"Ingress", "Egress"} <= set(_list(spec.get("policyTypes")))
            and not spec.get("ingress") and not spec.get("egress"))


def _namespace_guardrails(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for name, ns in sorted(_tenant_namespaces(args.resources).items()):
        inside = [r for r in args.resources if _meta(r).get("namespace") == name]
        if not any(_is_default_deny(p) for p in _of(inside, NETWORK_POLICY)):
            report_violation(f"tenant namespace {name!r} has no default-deny NetworkPolicy "
                             "(podSelector {}, policyTypes Ingress and Egress, no rules)", ns.urn)
        if not _of(inside, RESOURCE_QUOTA):
            report_violation(f"tenant namespace {name!r} has no ResourceQuota", ns.urn)
        labels = _meta(ns).get("labels") or {}
        missing = [m for m in POD_SECURITY_MODES
                   if labels.get(f"pod-security.kubernetes.io/{m}") not in POD_SECURITY_LEVELS]
        if missing:
            report_violation(f"tenant namespace {name!r} lacks Pod Security labels for {', '.join(missing)}", ns.urn)


def _selects(selector: Optional[Mapping[str, Any]], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an absent selector selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in _list(selector.get("matchExpressions")):
        key, values = expression.get("key"), _list(expression.get("values"))
        present = key in labels
        matched = {"In": present and labels.get(key) in values, "NotIn": not present or labels.get(key) not in values,
                   "Exists": present, "DoesNotExist": not present}.get(expression.get("operator"), False)
        if not matched:
            return False
    return True


def _admission_guardrails(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    policies = {_meta(p).get("name"): p for p in _of(args.resources, ADMISSION_POLICY)}
    bindings = _of(args.resources, ADMISSION_BINDING)
    for name, policy in sorted(policies.items()):
        if (policy.props.get("spec") or {}).get("failurePolicy", "Fail") != "Fail":
            report_violation(f"ValidatingAdmissionPolicy {name!r} must fail closed (failurePolicy Fail)", policy.urn)
    enforcing = []
    for binding in bindings:
        spec, name = binding.props.get("spec") or {}, _meta(binding).get("name")
        if spec.get("policyName") not in policies:
            report_violation(f"binding {name!r} names no ValidatingAdmissionPolicy of this stack", binding.urn)
        elif "Deny" not in _list(spec.get("validationActions")):
            report_violation(f"binding {name!r} only warns or audits; tenant isolation needs Deny", binding.urn)
        elif spec.get("paramRef") and spec["paramRef"].get("parameterNotFoundAction") != "Deny":
            report_violation(f"binding {name!r} admits every request when its parameters are missing "
                             "(parameterNotFoundAction must be Deny)", binding.urn)
        else:
            enforcing.append(binding)
    for ns_name, ns in sorted(_tenant_namespaces(args.resources).items()):
        labels = {**(_meta(ns).get("labels") or {}), "kubernetes.io/metadata.name": ns_name}
        skipped = [_meta(b).get("name") for b in enforcing if not _selects(
            ((b.props.get("spec") or {}).get("matchResources") or {}).get("namespaceSelector"), labels)]
        if not enforcing or skipped:
            report_violation(f"tenant namespace {ns_name!r} is not held to the admission policies "
                             f"({', '.join(skipped) or 'no enforcing binding'})", ns.urn)


def _subject_key(subject: Mapping[str, Any]) -> tuple[str, str, str]:
    return subject.get("kind", ""), subject.get("namespace") or "", subject.get("name", "")


def _no_cluster_bindings_to_tenants(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    namespaces = set(_tenant_namespaces(args.resources))
    exempt = set(args.get_config().get("platformGroups") or [])
    tenant_subjects = {
        _subject_key(s) for rb in _of(args.resources, ROLE_BINDING) if _meta(rb).get("namespace") in namespaces
        for s in _list(rb.props.get("subjects")) if s.get("kind") in ("Group", "User") and s.get("name") not in exempt
    }
    for binding in _of(args.resources, CLUSTER_ROLE_BINDING):
        for subject in _list(binding.props.get("subjects")):
            tenant_service_account = subject.get("kind") == "ServiceAccount" and subject.get("namespace") in namespaces
            if tenant_service_account or _subject_key(subject) in tenant_subjects:
                report_violation(f"ClusterRoleBinding {_meta(binding).get('name')!r} grants cluster-wide access to "
                                 f"tenant subject {subject.get('kind')} {subject.get('name')!r}", binding.urn)


def _data_protected(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    data = _of(args.resources, *DATA_TYPES)
    required = bool(args.get_config().get("protectData")) or any(r.opts.protect for r in data)
    if not required:
        return
    for resource in data:
        if not resource.opts.protect:
            report_violation(f"{resource.resource_type} {resource.name!r} must be protected in a stack that "
                             "protects data", resource.urn)


# ---------------------------------------------------------------------------------------------------- Argo CD

def _no_default_project(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The stock `default` project lets an Application write any namespace and any cluster-scoped kind."""
    if args.resource_type == APPLICATION_SET:
        spec = ((args.props.get("spec") or {}).get("template") or {}).get("spec") or {}
        what = "ApplicationSet template"
    elif args.resource_type == APPLICATION:
        spec, what = args.props.get("spec") or {}, "Application"
    else:
        return
    project = spec.get("project")
    if isinstance(project, str) and project.strip() in ("", "default"):
        report_violation(f"{what} uses Argo CD's 'default' project; put each tenant's Application in its own "
                         "AppProject", None)


def _literal(value: Any) -> bool:
    return isinstance(value, str) and value != "" and not (set(value) & GLOB_CHARACTERS)


def _project_confined(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != APP_PROJECT:
        return
    spec = args.props.get("spec") or {}
    name = _meta(args).get("name")
    problems = []
    repos = _list(spec.get("sourceRepos"))
    if len(repos) != 1 or not _literal(repos[0]):
        problems.append(f"sourceRepos must be exactly one repository without glob characters, got {repos}")
    destinations = [d for d in _list(spec.get("destinations")) if isinstance(d, Mapping)]
    namespaces = {d.get("namespace") for d in destinations}
    if not destinations or len(namespaces) != 1 or not all(
            _literal(d.get("namespace")) and (_literal(d.get("server")) or _literal(d.get("name")))
            for d in destinations):
        problems.append("destinations must name one namespace on named clusters, without glob characters")
    if _list(spec.get("clusterResourceWhitelist")):
        problems.append("clusterResourceWhitelist must be empty (no cluster-scoped kinds)")
    if _list(spec.get("sourceNamespaces")):
        problems.append("sourceNamespaces must be empty (Applications from other namespaces could use it)")
    for account in _list(spec.get("destinationServiceAccounts")):
        # "<namespace>:<name>" names an account in any namespace (util/settings/impersonation.go), e.g. Argo's own.
        if not isinstance(account, Mapping) or account.get("namespace") not in namespaces or not all(
                _literal(account.get(k)) for k in ("server", "namespace", "defaultServiceAccount")) \
                or ":" in account["defaultServiceAccount"]:
            problems.append("destinationServiceAccounts must impersonate an account in the project's own namespace")
    for problem in problems:
        report_violation(f"AppProject {name!r} reaches beyond one tenant: {problem}", None)


def _no_cascading_deletion(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Without preserveResourcesOnDeletion every generated Application carries the resources finalizer, so
    one missing parameter set deletes everything that tenant deployed (applicationset/utils/utils.go)."""
    if args.resource_type != APPLICATION_SET:
        return
    spec = args.props.get("spec") or {}
    if (spec.get("syncPolicy") or {}).get("preserveResourcesOnDeletion") is not True:
        report_violation("ApplicationSet must set syncPolicy.preserveResourcesOnDeletion: true", None)
    finalizers = _list(((spec.get("template") or {}).get("metadata") or {}).get("finalizers"))
    if any(str(f).startswith("resources-finalizer.argocd.argoproj.io") for f in finalizers):
        report_violation("ApplicationSet template must not add the resources finalizer", None)


def _resource(name: str, description: str, validate) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY)


def _stack(name: str, description: str, validate, config_schema=None) -> StackValidationPolicy:
    return StackValidationPolicy(name=name, description=description, validate=validate,
                                 enforcement_level=EnforcementLevel.MANDATORY, config_schema=config_schema)


S3_PUBLIC_ACCESS_BLOCK = _resource("s3-public-access-block", "All four S3 Block Public Access flags are true.",
                                   _public_access_block)
S3_OWNERSHIP_ENFORCED = _resource("s3-ownership-enforced", "Object Ownership is BucketOwnerEnforced (no ACLs).",
                                  _ownership_enforced)
S3_ENCRYPTION = _resource("s3-encryption", "Default encryption is SSE-S3 or SSE-KMS.", _encryption)
S3_TLS_ONLY = _resource("s3-tls-only", "Bucket policies deny non-TLS access and never allow the public.",
                        _bucket_policy)
IAM_NO_WILDCARDS = _resource("iam-no-wildcards", "IAM policies allow no '*' action or resource.", _iam_no_wildcards)
S3_BUCKET_GUARDRAILS = _stack("s3-bucket-guardrails", "Every bucket has a public access block, ownership controls, "
                              "default encryption and a TLS-only policy.", _bucket_guardrails)
TENANT_NAMESPACE_GUARDRAILS = _stack("tenant-namespace-guardrails", "Every tenant namespace has a default-deny "
                                     "NetworkPolicy, a ResourceQuota and Pod Security labels.", _namespace_guardrails)
NO_CLUSTER_BINDINGS_TO_TENANTS = _stack(
    "no-cluster-role-binding-to-tenant-subjects",
    "No ClusterRoleBinding names a tenant's groups, users or service accounts.", _no_cluster_bindings_to_tenants,
    PolicyConfigSchema({"platformGroups": {"type": "array", "items": {"type": "string"}, "default": [],
                                           "description": "Groups bound in tenant namespaces that are platform "
                                                          "operators, not tenants."}}))
ADMISSION_GUARDRAILS = _stack(
    "tenant-admission-policies", "Every tenant namespace is selected by every admission binding; bindings deny, "
    "name a policy of the stack and refuse when their parameters are missing; policies fail closed.",
    _admission_guardrails)
DATA_PROTECTED = _stack(
    "data-resources-protected", "Buckets, KMS keys and Keyspaces tables are protected in stacks that protect data.",
    _data_protected,
    PolicyConfigSchema({"protectData": {"type": "boolean", "default": False,
                                        "description": "The stack's tenancy:protectData."}}))

ARGOCD_NO_DEFAULT_PROJECT = _resource("argocd-no-default-project", "No Application or ApplicationSet template "
                                      "uses Argo CD's 'default' project.", _no_default_project)
ARGOCD_PROJECT_CONFINED = _resource(
    "argocd-project-one-tenant", "Every AppProject allows one repository and one namespace, literally (no globs), "
    "no cluster-scoped kind, and impersonates only inside that namespace.", _project_confined)
ARGOCD_NO_CASCADE = _resource("argocd-applicationset-never-cascades", "ApplicationSets preserve what their "
                              "Applications deployed when an Application is deleted.", _no_cascading_deletion)

ALL_POLICIES = [S3_PUBLIC_ACCESS_BLOCK, S3_OWNERSHIP_ENFORCED, S3_ENCRYPTION, S3_TLS_ONLY, IAM_NO_WILDCARDS,
                S3_BUCKET_GUARDRAILS, TENANT_NAMESPACE_GUARDRAILS, NO_CLUSTER_BINDINGS_TO_TENANTS, ADMISSION_GUARDRAILS,
                DATA_PROTECTED, ARGOCD_NO_DEFAULT_PROJECT, ARGOCD_PROJECT_CONFINED, ARGOCD_NO_CASCADE]
