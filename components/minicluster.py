"""The tenant's Flux Operator MiniCluster: one per tenant, on the tenant's nodes, credentials by reference.

The Flux Operator recommends separate MiniClusters for isolation; this one lives in the tenant namespace
and its RESTful credentials (user passwords, secret key) come from the Vault-synced Secret, so neither the
Pulumi state nor the MiniCluster object ever holds them.
"""

from __future__ import annotations

from typing import Any

from . import naming
from .catalogue import TenantSpec
from .namespace import node_placement
from .naming import TenantNames

MINICLUSTER_GROUP = "flux-framework.org"
FLUX_RESTFUL_PORT = 5000


def credential_refs(spec: TenantSpec, names: TenantNames) -> dict[str, dict[str, str]]:
    """Container `secrets`: environment variable -> {name, key} in the tenant's Flux credentials Secret."""
    refs = {naming.FLUX_SECRET_KEY_ENV: {"name": names.minicluster_secret, "key": naming.FLUX_SECRET_KEY_KEY}}
    for user in spec.minicluster.users:
        refs[naming.minicluster_password_env(user)] = {"name": names.minicluster_secret,
                                                      "key": naming.minicluster_password_key(user)}
    return refs


def _metadata(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    return {"name": names.minicluster, "namespace": names.namespace, "labels": {naming.TENANT_LABEL: spec.name}}


def minicluster_v1alpha2(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    container: dict[str, Any] = {"image": spec.minicluster.image, "secrets": credential_refs(spec, names)}
    if spec.minicluster.command:
        container["command"] = spec.minicluster.command
    pod: dict[str, Any] = {"labels": {naming.TENANT_LABEL: spec.name}, **node_placement(spec)}
    return {
        "apiVersion": f"{MINICLUSTER_GROUP}/v1alpha2",
        "kind": "MiniCluster",
        "metadata": _metadata(spec, names),
        "spec": {"size": spec.minicluster.size, "pod": pod, "containers": [container]},
    }


def minicluster_v1alpha1(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    """The 2023 multi-user shape for clusters still on that operator.

    v1alpha1 takes `users[].password` and `fluxRestful.secretKey` only as literal strings and has no way to
    reference a Secret, so both are left out rather than inlined: users are listed by name and the operator's
    own defaults apply to the empty password and secret key. The Vault-held values are then unused by this shape;
    moving the stack to v1alpha2 (`tenancy:minicluster.apiVersion`) makes them authoritative. That shape has
    no pod nodeSelector either: a dedicated tenant's pods are placed by its Namespace's annotations where the
    PodNodeSelector plugin runs, and refused by the `dedicated-nodes` admission policy elsewhere.
    """
    container: dict[str, Any] = {"image": spec.minicluster.image, "runFlux": True}
    if spec.minicluster.command:
        container["command"] = spec.minicluster.command
    body: dict[str, Any] = {
        "size": spec.minicluster.size,
        "containers": [container],
        "fluxRestful": {"port": FLUX_RESTFUL_PORT},
    }
    if spec.minicluster.users:
        body["users"] = [{"name": user} for user in spec.minicluster.users]
    return {
        "apiVersion": f"{MINICLUSTER_GROUP}/v1alpha1",
        "kind": "MiniCluster",
        "metadata": _metadata(spec, names),
        "spec": body,
    }


def minicluster(spec: TenantSpec, names: TenantNames, api_version: str) -> dict[str, Any] | None:
    """The MiniCluster in the stack's operator API version; None when the tenant runs none."""
    if not spec.minicluster.enabled:
        return None
    return minicluster_v1alpha1(spec, names) if api_version == "v1alpha1" else minicluster_v1alpha2(spec, names)
