"""Tenant isolation enforced by the API server itself: ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1).

The namespace annotations of `namespace.py` only work where the PodNodeSelector and PodTolerationRestriction
admission plugins run (EKS enables neither), and nothing restricted what a tenant may run. These policies hold
on any Kubernetes >= 1.30 without a webhook:

- `node-isolation` (no parameters, every namespace but `tenancy:admission.exemptNamespaces`): a pod tolerates
  or selects the `tenancy.io/tenant` taint/label only with its own namespace's `<org>.<tenant>` as the value
  (both read from the namespace's labels, so a same-named tenant of another org on the cluster does not match);
  pods in tenant namespaces carry no wildcard toleration and no `spec.nodeName` (which skips the scheduler's
  taint check). Every stack on a cluster binds this rule to every namespace; the copies agree, since the
  expression reads nothing from its stack.
- `dedicated-nodes`: a dedicated tenant's pods select its nodes (nodeSelector or required node affinity).
- `allowed-registries`, `allowed-storage-classes`, `allowed-priority-classes`: the catalogue's allow-lists.

One policy per rule and one binding each for the whole stack: the binding selects tenant namespaces by
tenancy's labels, and per-tenant values come from one parameter ConfigMap in the platform's admission namespace
(keys `<tenant>.<field>`), which tenants cannot write (their roles may write ConfigMaps in their own namespaces,
so a parameter there would let them widen their own limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pulumi

from . import kube, naming
from .catalogue import TenantSpec
from .providers import Providers, child
from .settings import StackSettings

API_VERSION = "admissionregistration.k8s.io/v1"
_KEY = naming.TENANT_LABEL

# Rules, each one policy and one binding; the names appear in the refusal messages.
NODE_ISOLATION = "node-isolation"
DEDICATED_NODES = "dedicated-nodes"
REGISTRIES = "allowed-registries"
STORAGE_CLASSES = "allowed-storage-classes"
PRIORITY_CLASSES = "allowed-priority-classes"
RULES = (NODE_ISOLATION, DEDICATED_NODES, REGISTRIES, STORAGE_CLASSES, PRIORITY_CLASSES)
PARAMS = "params"

# Parameter keys per tenant: "<tenant>.<suffix>". Lists are comma-joined (no registry or object name has a comma).
NODES_PARAM = "nodes"
# Parameter suffix -> field of `catalogue.Allowed`.
LIST_PARAMS = {"registries": "registries", "storageClasses": "storage_classes", "priorityClasses": "priority_classes"}

# --------------------------------------------------------------------------------------------------- CEL pieces
# Written with has() rather than optional types so they read the same in every CEL implementation.
_TENANT = (
    f"has(namespaceObject.metadata.labels) && '{_KEY}' in namespaceObject.metadata.labels"
    f" ? namespaceObject.metadata.labels['{_KEY}'] : ''"
)
# The value of the tenant's dedicated nodes' taint and label (`TenantNames.node_owner`): '<org>.<tenant>', or ''
# outside tenant namespaces (a namespace without the org label owns no nodes either).
_ORG_KEY = naming.ORG_LABEL
_OWNER = (
    f"variables.tenant != '' && '{_ORG_KEY}' in namespaceObject.metadata.labels"
    f" ? namespaceObject.metadata.labels['{_ORG_KEY}'] + '.' + variables.tenant : ''"
)
_AFFINITY = "has(object.spec.affinity) && has(object.spec.affinity.nodeAffinity)"
_REQUIRED = "object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "object.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
_REQUIRED_TERMS = f"{_AFFINITY} && has({_REQUIRED}) ? {_REQUIRED}.nodeSelectorTerms : []"
_SELECTS_OWN_NODES = (
    f"(has(object.spec.nodeSelector) && '{_KEY}' in object.spec.nodeSelector"
    f" && object.spec.nodeSelector['{_KEY}'] == variables.owner)"
    f" || (variables.required.size() > 0 && variables.required.all(term, has(term.matchExpressions)"
    f" && term.matchExpressions.exists(e, e.key == '{_KEY}' && e.operator == 'In' && has(e.values)"
    f" && e.values.all(v, v == variables.owner))))"
)
# Image references as the container runtime resolves them: no '/' is an official Docker Hub image, and a first
# path component without '.', ':' or 'localhost' is a Docker Hub repository (distribution/reference).
_IMAGES = (
    "object.spec.containers.map(c, c.image)"
    " + (has(object.spec.initContainers) ? object.spec.initContainers.map(c, c.image) : [])"
    " + (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers.map(c, c.image) : [])"
)
_QUALIFIED = (
    "variables.images.map(i, !i.contains('/') ? 'docker.io/library/' + i"
    " : (i.split('/')[0].contains('.') || i.split('/')[0].contains(':') || i.split('/')[0] == 'localhost'"
    " ? i : 'docker.io/' + i))"
)
_CLAIM_CLASSES = (
    "request.resource.resource == 'persistentvolumeclaims'"
    " ? [has(object.spec.storageClassName) ? object.spec.storageClassName : '']"
    " : (has(object.spec.volumes) ? object.spec.volumes.filter(v, has(v.ephemeral)"
    " && has(v.ephemeral.volumeClaimTemplate.spec.storageClassName))"
    ".map(v, v.ephemeral.volumeClaimTemplate.spec.storageClassName) : [])"
)
# A pod update is checked again only when its spec changed (an added toleration or ephemeral container, a new
# image): label, annotation and finalizer edits of pods admitted before the policy existed stay possible.
_SPEC_CHANGED = {"name": "spec-changed", "expression": "request.operation == 'CREATE' || object.spec != oldObject.spec"}


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": naming.MANAGED_BY}


def _param_list(suffix: str) -> str:
    key = f"variables.tenant + '.{suffix}'"
    return f"has(params.data) && ({key}) in params.data ? params.data[{key}].split(',') : []"


def _message(rule: str, text: str) -> str:
    """messageExpression naming the tenant (or the tenant-less namespace) and the rule."""
    who = "(variables.tenant != '' ? 'tenant ' + variables.tenant : 'namespace ' + namespaceObject.metadata.name)"
    return f"{who} + ': ' + {text} + ' (tenancy rule {rule})'"


def _validation(expression: str, rule: str, text: str) -> dict[str, str]:
    return {"expression": expression, "messageExpression": _message(rule, text), "reason": "Forbidden"}


def _rules(resources: Sequence[str], operations: Sequence[str]) -> list[dict[str, Any]]:
    return [{"apiGroups": [""], "apiVersions": ["v1"], "operations": list(operations), "resources": list(resources)}]


def _policy(
    name: str,
    resources: Sequence[str],
    operations: Sequence[str],
    variables: dict[str, str],
    validations: list[dict[str, str]],
    params: bool,
    match_conditions: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": _rules(resources, operations)},
        "variables": [{"name": "tenant", "expression": _TENANT}, {"name": "owner", "expression": _OWNER}]
        + [{"name": k, "expression": v} for k, v in variables.items()],
        "validations": validations,
    }
    if params:
        spec["paramKind"] = {"apiVersion": "v1", "kind": "ConfigMap"}
    if match_conditions:
        spec["matchConditions"] = list(match_conditions)
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": _labels()},
        "spec": spec,
    }


# ------------------------------------------------------------------------------------------------------ builders


def policies(org: str, environment: str) -> dict[str, dict[str, Any]]:
    """The stack's ValidatingAdmissionPolicies, by rule."""
    name = lambda rule: naming.admission_object(org, environment, rule)  # noqa: E731
    own_taint = f"'only the taint {_KEY}=' + variables.owner + ' of its own nodes may be tolerated'"
    return {
        NODE_ISOLATION: _policy(
            name(NODE_ISOLATION),
            ["pods"],
            ["CREATE", "UPDATE"],
            {
                "tolerations": "has(object.spec.tolerations) ? object.spec.tolerations : []",
                "nodeTerms": f"({_REQUIRED_TERMS}) + ({_AFFINITY} && has({_PREFERRED})"
                f" ? {_PREFERRED}.map(p, p.preference) : [])",
            },
            [
                _validation(
                    f"variables.tolerations.all(t, !has(t.key) || t.key != '{_KEY}' || (variables.owner != ''"
                    f" && (!has(t.operator) || t.operator == 'Equal') && has(t.value)"
                    f" && t.value == variables.owner))",
                    NODE_ISOLATION,
                    f"(variables.owner != '' ? {own_taint} : 'pods outside tenant namespaces may not "
                    f"tolerate the {_KEY} taint of tenant nodes')",
                ),
                _validation(
                    "variables.tenant == '' || variables.tolerations.all(t, (has(t.key) && t.key != '')"
                    " || !has(t.operator) || t.operator != 'Exists')",
                    NODE_ISOLATION,
                    "'a toleration without a key tolerates the nodes of every tenant'",
                ),
                _validation(
                    f"!has(object.spec.nodeSelector) || !('{_KEY}' in object.spec.nodeSelector)"
                    f" || (variables.owner != '' && object.spec.nodeSelector['{_KEY}'] == variables.owner)",
                    NODE_ISOLATION,
                    f"'nodeSelector {_KEY}=' + object.spec.nodeSelector['{_KEY}']"
                    f" + ' selects the nodes of another tenant'",
                ),
                _validation(
                    f"variables.nodeTerms.all(term, !has(term.matchExpressions)"
                    f" || term.matchExpressions.all(e, e.key != '{_KEY}' || e.operator == 'DoesNotExist'"
                    f" || (variables.owner != '' && e.operator == 'In' && has(e.values)"
                    f" && e.values.all(v, v == variables.owner))))",
                    NODE_ISOLATION,
                    f"'node affinity on {_KEY} may only name the own tenant of the namespace'",
                ),
                _validation(
                    "variables.tenant == '' || request.operation != 'CREATE' || !has(object.spec.nodeName)"
                    " || object.spec.nodeName == ''",
                    NODE_ISOLATION,
                    "'spec.nodeName bypasses the scheduler and the taints of tenant nodes'",
                ),
            ],
            params=False,
            match_conditions=[_SPEC_CHANGED],
        ),
        DEDICATED_NODES: _policy(
            name(DEDICATED_NODES),
            ["pods"],
            ["CREATE"],
            {
                "dedicated": f"has(params.data) && (variables.tenant + '.{NODES_PARAM}') in params.data"
                f" && params.data[variables.tenant + '.{NODES_PARAM}'] == 'dedicated'",
                "required": _REQUIRED_TERMS,
            },
            [
                _validation(
                    f"!variables.dedicated || {_SELECTS_OWN_NODES}",
                    DEDICATED_NODES,
                    f"'pods must select the dedicated nodes of the tenant with nodeSelector {_KEY}='"
                    f" + variables.owner + ' or a required node affinity on that label'",
                )
            ],
            params=True,
        ),
        REGISTRIES: _policy(
            name(REGISTRIES),
            ["pods", "pods/ephemeralcontainers"],
            ["CREATE", "UPDATE"],
            {
                "allowed": _param_list("registries"),
                "images": _IMAGES,
                "qualified": _QUALIFIED,
                "denied": "variables.qualified.filter(i, !variables.allowed.exists(r, i.startsWith(r + '/')))",
            },
            [
                _validation(
                    "variables.allowed.size() == 0 || variables.denied.size() == 0",
                    REGISTRIES,
                    "'image ' + variables.denied[0] + ' is not from an allowed registry ('"
                    " + variables.allowed.join(', ') + ')'",
                )
            ],
            params=True,
            match_conditions=[_SPEC_CHANGED],
        ),
        STORAGE_CLASSES: _policy(
            name(STORAGE_CLASSES),
            ["persistentvolumeclaims", "pods"],
            ["CREATE"],
            {
                "allowed": _param_list("storageClasses"),
                "classes": _CLAIM_CLASSES,
                "denied": "variables.classes.filter(c, !(c in variables.allowed))",
            },
            [
                _validation(
                    "variables.allowed.size() == 0 || variables.denied.size() == 0",
                    STORAGE_CLASSES,
                    "(variables.denied[0] == '' ? 'a volume claim without a storage class'"
                    " : 'storage class ' + variables.denied[0]) + ' is not allowed ('"
                    " + variables.allowed.join(', ') + ')'",
                )
            ],
            params=True,
        ),
        PRIORITY_CLASSES: _policy(
            name(PRIORITY_CLASSES),
            ["pods"],
            ["CREATE"],
            {"allowed": _param_list("priorityClasses")},
            [
                _validation(
                    "variables.allowed.size() == 0 || !has(object.spec.priorityClassName)"
                    " || object.spec.priorityClassName in variables.allowed",
                    PRIORITY_CLASSES,
                    "'priority class ' + object.spec.priorityClassName + ' is not allowed ('"
                    " + variables.allowed.join(', ') + ')'",
                )
            ],
            params=True,
        ),
    }


def tenant_namespace_selector(org: str, environment: str) -> dict[str, Any]:
    """This stack's tenant namespaces, by the labels `namespace.tenancy_labels` sets (tenants cannot edit them)."""
    return {
        "matchLabels": {
            naming.ORG_LABEL: org,
            naming.ENVIRONMENT_LABEL: environment,
            "app.kubernetes.io/managed-by": naming.MANAGED_BY,
        },
        "matchExpressions": [{"key": _KEY, "operator": "Exists"}],
    }


def binding(policy: dict[str, Any], settings: StackSettings) -> dict[str, Any]:
    """The one binding of a policy: node isolation everywhere but the exempt namespaces, the rest per tenant."""
    name = policy["metadata"]["name"]
    spec: dict[str, Any] = {"policyName": name, "validationActions": ["Deny"]}
    if "paramKind" in policy["spec"]:
        spec["paramRef"] = {
            "name": naming.admission_object(settings.org, settings.environment, PARAMS),
            "namespace": settings.admission.namespace,
            # Without its parameters a tenant's pods are refused, not waved through.
            "parameterNotFoundAction": "Deny",
        }
        spec["matchResources"] = {"namespaceSelector": tenant_namespace_selector(settings.org, settings.environment)}
    elif settings.admission.exempt_namespaces:
        spec["matchResources"] = {
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": list(settings.admission.exempt_namespaces),
                    }
                ]
            }
        }
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": _labels()},
        "spec": spec,
    }


def params_data(tenants: Sequence[TenantSpec]) -> dict[str, str]:
    """Per-tenant parameters: node mode always, each allow-list only when it restricts anything."""
    data: dict[str, str] = {}
    for spec in tenants:
        data[f"{spec.name}.{NODES_PARAM}"] = spec.isolation.nodes
        for suffix, field in LIST_PARAMS.items():
            values = getattr(spec.allowed, field)
            if values:
                data[f"{spec.name}.{suffix}"] = ",".join(values)
    return data


def params_namespace(settings: StackSettings) -> dict[str, Any]:
    labels = {**_labels(), **{f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")}}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": settings.admission.namespace, "labels": labels},
    }


def params_configmap(settings: StackSettings, tenants: Sequence[TenantSpec]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": naming.admission_object(settings.org, settings.environment, PARAMS),
            "namespace": settings.admission.namespace,
            "labels": _labels(),
        },
        "data": params_data(tenants),
    }


def admission_manifests(settings: StackSettings, tenants: Sequence[TenantSpec]) -> list[dict[str, Any]]:
    """Everything the component registers, in order: namespace, parameters, policies, bindings."""
    built = policies(settings.org, settings.environment)
    return [
        params_namespace(settings),
        params_configmap(settings, tenants),
        *built.values(),
        *(binding(policy, settings) for policy in built.values()),
    ]


@dataclass(frozen=True)
class AdmissionArgs:
    settings: StackSettings
    providers: Providers
    tenants: Sequence[TenantSpec]


class Admission(pulumi.ComponentResource):
    def __init__(self, name: str, args: AdmissionArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:admission:Admission", name, None, opts)
        settings, k8s = args.settings, args.providers.kubernetes
        # Deleting this namespace deletes the parameters, and every tenant pod is refused from then on: stacks
        # that protect data protect it like the tenant namespaces.
        protect = settings.protect_data
        namespace = kube.apply(
            name, params_namespace(settings), child(self, k8s, protect=protect, retain_on_delete=protect)
        )
        params = kube.apply(name, params_configmap(settings, args.tenants), child(self, k8s, depends_on=[namespace]))
        built = policies(settings.org, settings.environment)
        registered = [kube.apply(name, policy, child(self, k8s)) for policy in built.values()]
        # A binding before its policy or parameters would refuse every tenant pod in between.
        for policy in built.values():
            kube.apply(name, binding(policy, settings), child(self, k8s, depends_on=[params, *registered]))
        self.register_outputs({"policies": len(registered)})
