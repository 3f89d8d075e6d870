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
# Local disk (writable layers, logs, emptyDir volumes) is a node's shared resource like CPU and memory: without a
# quota and per-container limits one tenant fills a shared node's disk and the kubelet evicts other tenants' pods
# under DiskPressure. With limits set, the kubelet evicts the pod that passes its own limit instead. Used when the
# catalogue's quota names no ephemeral storage, and scaled by tenancy:quotaScale like the compute quota (the
# sample's 32Gi/64Gi memory quota, in the same proportions to the container defaults below).
DEFAULT_EPHEMERAL_QUOTA = {"requests.ephemeral-storage": "32Gi", "limits.ephemeral-storage": "128Gi"}
# Per container, for containers that state none (Argo's init and wait containers too): the LimitRange's
# defaultRequest and default, never above the tenant's `limits.max`.
DEFAULT_EPHEMERAL_REQUEST, DEFAULT_EPHEMERAL_LIMIT = "256Mi", "2Gi"
EPHEMERAL = "ephemeral-storage"


def quota_hard(spec: TenantSpec, scale: float) -> dict[str, str]:
    """spec.hard: compute quantities scaled by the stack's factor; object counts as written, defaults filled."""
    wanted = dict(spec.quota)
    if not any(key in wanted for key in (EPHEMERAL, *DEFAULT_EPHEMERAL_QUOTA)):
        wanted.update(DEFAULT_EPHEMERAL_QUOTA)
    hard = dict(DEFAULT_OBJECT_COUNTS)
    for key, value in wanted.items():
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


def ephemeral_defaults(spec: TenantSpec) -> tuple[str, str]:
    """The ephemeral-storage (defaultRequest, default) of a container that states none: the catalogue's, else
    tenancy's defaults kept within the catalogue's own values, since the API server refuses a LimitRange whose
    default exceeds its max or is below its defaultRequest (kubernetes pkg/apis/core/validation ValidateLimitRange;
    the catalogue holds its own values to the same order)."""
    limits = spec.limits
    asked_request = limits.default_request.get(EPHEMERAL)
    limit = limits.default.get(EPHEMERAL) or max(
        filter(None, (_smallest(DEFAULT_EPHEMERAL_LIMIT, limits.max.get(EPHEMERAL)), asked_request)), key=quantity.parse
    )
    return asked_request or _smallest(DEFAULT_EPHEMERAL_REQUEST, limit), limit


def _smallest(*values: str | None) -> str:
    return min(filter(None, values), key=quantity.parse)


def limit_range(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    """Container defaults, so pods that state no requests or limits still pass a compute quota."""
    request, limit = ephemeral_defaults(spec)
    limit_item: dict[str, Any] = {
        "type": "Container",
        "default": {**spec.limits.default, EPHEMERAL: limit},
        "defaultRequest": {**spec.limits.default_request, EPHEMERAL: request},
    }
    if spec.limits.max:
        limit_item["max"] = dict(spec.limits.max)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": naming.LIMIT_RANGE, "namespace": names.namespace},
        "spec": {"limits": [limit_item]},
    }
