"""The tenant's Flux Operator MiniCluster: one per tenant, on the tenant's nodes, credentials by reference.

The Flux Operator recommends separate MiniClusters for isolation; this one lives in the tenant namespace.
Every field rendered exists in the operator release the API version stands for (flux-framework/flux-operator,
api/<version>/minicluster_types.go): v1alpha1 is Flux Operator 0.1.x (checked at tag 0.1.1), v1alpha2 is 0.2.x
(checked at tag 0.2.1). Neither release gives the pod tolerations, so what placement and login each can
honour is decided in the catalogue (`minicluster_problems` in components/catalogue.py), not silently dropped.
"""

from __future__ import annotations

from typing import Any

from . import naming
from .catalogue import TenantSpec
from .naming import TenantNames

MINICLUSTER_GROUP = "flux-framework.org"
FLUX_RESTFUL_PORT = 5000
# What flux-restful-api reads from its environment (app/core/config.py): the one account it creates at start
# (app/db/init_db.py `init`), whether login is required, and the key that signs its access tokens.
FLUX_USER_ENV = "FLUX_USER"
FLUX_TOKEN_ENV = "FLUX_TOKEN"
FLUX_REQUIRE_AUTH_ENV = "FLUX_REQUIRE_AUTH"


def credential_refs(spec: TenantSpec, names: TenantNames) -> dict[str, dict[str, str]]:
    """Container `secrets` (environment variable -> {name, key} of the Vault-synced Secret) of v1alpha2.

    The catalogue allows at most one user here: its password is flux-restful-api's FLUX_TOKEN.
    """
    refs = {naming.FLUX_SECRET_KEY_ENV: {"name": names.minicluster_secret, "key": naming.FLUX_SECRET_KEY_KEY}}
    for user in spec.minicluster.users:
        refs[FLUX_TOKEN_ENV] = {"name": names.minicluster_secret, "key": naming.minicluster_password_key(user)}
    return refs


def _metadata(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    return {"name": names.minicluster, "namespace": names.namespace, "labels": {naming.TENANT_LABEL: spec.name}}


def _pod(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    """Pod labels and, for a dedicated tenant, its node selector: the placement both operator releases carry.

    The toleration of the dedicated nodes' taint has no field in either release; the catalogue only lets such a
    tenant run a MiniCluster where PodTolerationRestriction admission adds it from the Namespace annotation.
    """
    pod: dict[str, Any] = {
        "labels": {naming.TENANT_LABEL: spec.name},
        "serviceAccountName": naming.MINICLUSTER_SERVICE_ACCOUNT,
    }
    if spec.isolation.nodes == "dedicated":
        pod["nodeSelector"] = {naming.TENANT_LABEL: names.node_owner}
    return pod


def minicluster_v1alpha2(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    container: dict[str, Any] = {"image": spec.minicluster.image, "secrets": credential_refs(spec, names)}
    if spec.minicluster.users:
        container["environment"] = {FLUX_USER_ENV: spec.minicluster.users[0], FLUX_REQUIRE_AUTH_ENV: "true"}
    if spec.minicluster.command:
        container["command"] = spec.minicluster.command
    return {
        "apiVersion": f"{MINICLUSTER_GROUP}/v1alpha2",
        "kind": "MiniCluster",
        "metadata": _metadata(spec, names),
        "spec": {"size": spec.minicluster.size, "pod": _pod(spec, names), "containers": [container]},
    }


def minicluster_v1alpha1(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    """The 2023 shape for clusters still on Flux Operator 0.1.x.

    That operator writes `users[].password` and `fluxRestful.secretKey` into the entrypoint ConfigMap and prints
    each user's password to the pod log, generating one when empty (controllers/flux/configmap.go,
    templates/wait.sh at 0.1.1), so `users` is never rendered: the catalogue refuses it for this shape.
    """
    container: dict[str, Any] = {"image": spec.minicluster.image, "runFlux": True, "command": spec.minicluster.command}
    return {
        "apiVersion": f"{MINICLUSTER_GROUP}/v1alpha1",
        "kind": "MiniCluster",
        "metadata": _metadata(spec, names),
        "spec": {
            "size": spec.minicluster.size,
            "pod": _pod(spec, names),
            "containers": [container],
            "fluxRestful": {"port": FLUX_RESTFUL_PORT},
        },
    }


def service_account(names: TenantNames) -> dict[str, Any]:
    """The MiniCluster pods' own ServiceAccount, without an API token.

    Flux brokers never call the Kubernetes API, and in the namespace's `default` account every pod would carry a
    token. Flux Operator 0.2.1 has `pod.automountServiceAccountToken`, but 0.2.0 (whose SDK schema tenancy
    validates v1alpha2 against, tests/test_minicluster_crd.py) and 0.1.x do not. Both take `pod.serviceAccountName`;
    where the operator leaves the pod's own automount unset, the account's `automountServiceAccountToken: false`
    decides (read for 0.1.x: controllers/flux/job.go sets ServiceAccountName and no automount; the 0.2.0 pod
    builder was not available to read here).
    """
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": naming.MINICLUSTER_SERVICE_ACCOUNT, "namespace": names.namespace},
        "automountServiceAccountToken": False,
    }


def minicluster(spec: TenantSpec, names: TenantNames, api_version: str) -> dict[str, Any] | None:
    """The MiniCluster in the stack's operator API version; None when the tenant runs none."""
    if not spec.minicluster.enabled:
        return None
    return minicluster_v1alpha1(spec, names) if api_version == "v1alpha1" else minicluster_v1alpha2(spec, names)
