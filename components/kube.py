"""Registering Kubernetes manifests built by the pure builders.

Builders return plain manifest dicts (testable without Pulumi, checkable against schemas); this module is the
single place that turns one into a Pulumi resource: the typed class for core kinds, `CustomResource`
for everything else.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import pulumi
import pulumi_kubernetes as k8s

_TYPED = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def resource_name(prefix: str, manifest: Mapping[str, Any]) -> str:
    """Logical name: the owning component's name, then kind and object name (unique within a tenant)."""
    return f"{prefix}-{manifest['kind'].lower()}-{manifest['metadata']['name']}"


def apply(prefix: str, manifest: Mapping[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register one manifest as a resource named after `prefix`; `opts` carries parent and provider."""
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    typed = _TYPED.get((manifest["apiVersion"], manifest["kind"]))
    name = resource_name(prefix, manifest)
    if typed is not None:
        # Typed constructors take top-level fields in snake_case; nested dicts pass through as written.
        return typed(name, opts=opts, **{_snake(k): v for k, v in body.items()})
    return k8s.apiextensions.CustomResource(
        name, api_version=manifest["apiVersion"], kind=manifest["kind"], opts=opts, **body)
