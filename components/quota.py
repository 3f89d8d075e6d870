"""The tenant's ResourceQuota and LimitRange: how much the namespace may use, and per-container defaults."""

from __future__ import annotations

from typing import Any

from . import naming, quantity
from .catalogue import TenantSpec, is_object_count
from .naming import TenantNames

# Object counts every namespace is capped at even when the catalogue names none: an uncapped count lets one
# tenant exhaust etcd or the API server for everyone. LoadBalancer and NodePort Services default to none
# because either would expose tenant pods around the namespace's ingress network policy.
DEFAULT_OBJECT_COUNTS = {
    "pods": "50",
    "services": "10",
    "secrets": "50",
    "configmaps": "50",
    "persistentvolumeclaims": "10",
    "services.loadbalancers": "0",
    "services.nodeports": "0",
}


def quota_hard(spec: TenantSpec, scale: float) -> dict[str, str]:
    """spec.hard: compute quantities scaled by the stack's factor; object counts as written, defaults filled."""
    hard = dict(DEFAULT_OBJECT_COUNTS)
    for key, value in spec.quota.items():
        hard[key] = value if is_object_count(key) else quantity.scale(value, scale)
    if not spec.is_active:
        # Suspended and offboarded namespaces keep their objects but may run nothing.
        hard["pods"] = "0"
    return dict(sorted(hard.items()))


def resource_quota(spec: TenantSpec, names: TenantNames, scale: float) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": naming.QUOTA, "namespace": names.namespace},
        "spec": {"hard": quota_hard(spec, scale)},
    }


def limit_range(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    """Container defaults, so pods that state no requests or limits still pass a compute quota."""
    limit: dict[str, Any] = {"type": "Container", "default": dict(spec.limits.default),
                             "defaultRequest": dict(spec.limits.default_request)}
    if spec.limits.max:
        limit["max"] = dict(spec.limits.max)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": naming.LIMIT_RANGE, "namespace": names.namespace},
        "spec": {"limits": [limit]},
    }
