"""The tenant's Namespace: its identity labels, Pod Security level and node-placement admission annotations."""

from __future__ import annotations

import json
from typing import Any

from . import naming
from .catalogue import TenantSpec
from .naming import TenantNames


def tenancy_labels(spec: TenantSpec, names: TenantNames, environment: str, org: str) -> dict[str, str]:
    """Labels that identify a tenant's objects; network policies select same-tenant namespaces by them."""
    return {
        "source": "repo-registration",
        "calypr.io/application": spec.name,
        naming.TENANT_LABEL: spec.name,
        naming.ENVIRONMENT_LABEL: environment,
        naming.ORG_LABEL: org,
        "app.kubernetes.io/managed-by": naming.MANAGED_BY,
    }


def dedicated_toleration(names: TenantNames) -> dict[str, str]:
    """The toleration for the taint on a tenant's dedicated nodes (`tenancy.io/tenant=<org>.<tenant>:NoSchedule`)."""
    return {"key": naming.TENANT_LABEL, "operator": "Equal", "value": names.node_owner, "effect": "NoSchedule"}


def node_placement(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    """Pod-spec fields that pin a dedicated tenant's pods to its own nodes; empty for shared tenants."""
    if spec.isolation.nodes != "dedicated":
        return {}
    return {"nodeSelector": {naming.TENANT_LABEL: names.node_owner}, "tolerations": [dedicated_toleration(names)]}


def namespace_manifest(spec: TenantSpec, names: TenantNames, environment: str, org: str) -> dict[str, Any]:
    labels = tenancy_labels(spec, names, environment, org)
    # Cost tools attribute every pod in the namespace by its labels (OpenCost pkg/costmodel/allocation_helpers.go
    # applyLabels: namespace labels, then pod labels over them), so the namespace carries the tenant's cost key.
    labels[naming.COST_ALLOCATION_KEY] = names.cost_allocation
    labels[naming.COST_ENVIRONMENT_LABEL] = environment
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = spec.pod_security
    annotations = {"tenancy.io/team": spec.team}
    if spec.display_name:
        annotations["tenancy.io/display-name"] = spec.display_name
    if spec.isolation.nodes == "dedicated":
        # PodNodeSelector and PodTolerationRestriction admission enforce placement for every pod in the
        # namespace, including ones a tenant creates by hand, not only the pods tenancy templates.
        annotations["scheduler.alpha.kubernetes.io/node-selector"] = f"{naming.TENANT_LABEL}={names.node_owner}"
        annotations["scheduler.alpha.kubernetes.io/defaultTolerations"] = json.dumps([dedicated_toleration(names)])
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": names.namespace, "labels": labels, "annotations": annotations},
    }
