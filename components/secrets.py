"""Tenant secrets: KV entries in Vault readable only by the tenant, delivered into its namespace by External Secrets.

Vault holds the tenant's S3 key pair (static mode) and its MiniCluster passwords under `argo/apps/<tenant>/`;
a policy grants read on that subtree only; a Kubernetes auth role gives it to the namespace's External Secrets
service account; a SecretStore and ExternalSecrets in the namespace turn the entries into the Secrets the
artifact ConfigMap and the MiniCluster reference. Values exist only as Pulumi secrets and in Vault.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_random as random
import pulumi_vault as vault

from . import kube, naming, sdk
from .catalogue import TenantSpec
from .namespace import tenancy_labels
from .naming import TenantNames
from .providers import Providers, child
from .settings import StackSettings, VaultSettings
from .storage import ArtifactAccess
from .vault_platform import VaultPlatform
from .vault_policy import tenant_policy

ESO_API_VERSION = "external-secrets.io/v1"
# How soon a rotated value in Vault reaches the namespace; each refresh is one Vault login and read.
REFRESH_INTERVAL = "1h"
PASSWORD_LENGTH = 32
# Exactly the keys the artifact ConfigMap references in `s3-credentials-<tenant>`.
S3_KEYS = [naming.S3_ACCESS_KEY_ID_KEY, naming.S3_SECRET_ACCESS_KEY_KEY]


def _metadata(name: str, names: TenantNames, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": names.namespace, "labels": labels}


def service_account_manifest(names: TenantNames, labels: dict[str, str]) -> dict[str, Any]:
    """The identity External Secrets logs in to Vault as; no pod mounts its token (ESO requests its own)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(naming.SECRETS_SERVICE_ACCOUNT, names, labels),
        "automountServiceAccountToken": False,
    }


def secret_store_manifest(
    names: TenantNames,
    labels: dict[str, str],
    vault_settings: VaultSettings,
    kv_mount: pulumi.Input[str],
    auth_path: pulumi.Input[str],
    server_ca_cert: Optional[str] = None,
) -> dict[str, Any]:
    """A namespaced SecretStore: tenants cannot point it at another tenant's role, unlike a ClusterSecretStore.

    `server_ca_cert` (PEM) becomes `caBundle`, which External Secrets' Vault client uses as its only root CAs
    (external-secrets `providers/v1/vault/client.go`, `newConfig`; `VaultProvider.CABundle []byte` in
    `apis/externalsecrets/v1/secretstore_vault_types.go`, base64 in JSON), v0.17 through v2.x. Inline rather than
    `caProvider`: a CA certificate is public, and one field needs no extra Secret or ConfigMap per namespace.
    """
    provider: dict[str, Any] = {
        "server": vault_settings.address,
        "path": kv_mount,
        "version": "v2",
        "auth": {
            "kubernetes": {
                "mountPath": auth_path,
                "role": names.vault_role,
                "serviceAccountRef": {
                    "name": naming.SECRETS_SERVICE_ACCOUNT,
                    "audiences": [vault_settings.kubernetes_auth.audience],
                },
            }
        },
    }
    if vault_settings.namespace:
        provider["namespace"] = vault_settings.namespace
    if server_ca_cert is not None:
        provider["caBundle"] = base64.b64encode(server_ca_cert.encode()).decode()
    return {
        "apiVersion": ESO_API_VERSION,
        "kind": "SecretStore",
        "metadata": _metadata(naming.SECRET_STORE, names, labels),
        "spec": {"provider": {"vault": provider}},
    }


def external_secret_manifest(
    names: TenantNames, labels: dict[str, str], target: str, vault_path: str, keys: list[str]
) -> dict[str, Any]:
    """An ExternalSecret copying `keys` of the KV entry at `vault_path` into the Secret `target`, same key names."""
    return {
        "apiVersion": ESO_API_VERSION,
        "kind": "ExternalSecret",
        "metadata": _metadata(target, names, labels),
        "spec": {
            "refreshInterval": REFRESH_INTERVAL,
            "secretStoreRef": {"name": naming.SECRET_STORE, "kind": "SecretStore"},
            # Owner: the Secret goes with its ExternalSecret (offboarding). Retain: an entry that vanishes from
            # Vault (a mistaken delete, a restore) leaves the last Secret in place instead of breaking workflows.
            "target": {"name": target, "creationPolicy": "Owner", "deletionPolicy": "Retain"},
            "data": [{"secretKey": key, "remoteRef": {"key": vault_path, "property": key}} for key in keys],
        },
    }


def minicluster_keys(users: list[str]) -> list[str]:
    """Keys of the MiniCluster credentials: one password per user, then the Flux RESTful secret key."""
    return [naming.minicluster_password_key(user) for user in users] + [naming.FLUX_SECRET_KEY_KEY]


def role_fields(names: TenantNames, vault_settings: VaultSettings) -> dict[str, Any]:
    """The tenant's Kubernetes auth role, in the field names Vault's API and `AuthBackendRole` share."""
    return {
        # Only the namespace's External Secrets account, so no other pod can use the tenant's role.
        "bound_service_account_names": [naming.SECRETS_SERVICE_ACCOUNT],
        "bound_service_account_namespaces": [names.namespace],
        "audience": vault_settings.kubernetes_auth.audience,
        "token_policies": [names.vault_policy],
        # Without this Vault adds its `default` policy, which grants more than reading this subtree.
        "token_no_default_policy": True,
        "token_ttl": vault_settings.token_ttl_seconds,
        # External Secrets logs in again for every refresh, so no token needs to outlive its first TTL.
        "token_max_ttl": vault_settings.token_ttl_seconds,
    }


@dataclass(frozen=True)
class TenantSecretsArgs:
    spec: TenantSpec
    names: TenantNames
    settings: StackSettings
    providers: Providers
    vault: VaultPlatform
    access: ArtifactAccess
    namespace: pulumi.Resource


class TenantSecrets(pulumi.ComponentResource):
    def __init__(self, name: str, args: TenantSecretsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:secrets:TenantSecrets", name, None, opts)
        spec, names, settings, providers = args.spec, args.names, args.settings, args.providers
        kv_mount = args.vault.kv_mount_path
        labels = tenancy_labels(spec, names, settings.environment, settings.org)
        # Generated values exist nowhere else, so stacks that protect data leave them in Vault when tenancy stops
        # managing them. Not `protect`: offboarding must be able to remove them from the program, and once the
        # tenant's policy and role are gone nobody but Vault's operators can read what is left.
        keep = {"retain_on_delete": settings.protect_data}

        def kv_secret(
            suffix: str, path: str, values: dict[str, pulumi.Output[str]], opts: pulumi.ResourceOptions
        ) -> vault.kv.SecretV2:
            return sdk.register(
                vault.kv.SecretV2,
                f"{name}-kv-{suffix}",
                opts,
                mount=kv_mount,
                name=path,
                data_json=pulumi.Output.secret(pulumi.Output.all(**values).apply(json.dumps)),
            )

        deliveries: list[tuple[str, str, list[str]]] = []
        access = args.access
        if access.access_key_id is not None and access.secret_access_key is not None:
            # A copy of the IAM key, which TenantStorage owns (and protects); absent in IRSA mode.
            kv_secret(
                "s3",
                names.vault_s3_path,
                {
                    naming.S3_ACCESS_KEY_ID_KEY: access.access_key_id,
                    naming.S3_SECRET_ACCESS_KEY_KEY: access.secret_access_key,
                },
                child(self, providers.vault),
            )
            deliveries.append((names.s3_credentials_secret, names.vault_s3_path, S3_KEYS))

        if spec.minicluster.enabled:
            keys = minicluster_keys(spec.minicluster.users)
            # Fixed logical names and no keepers: the same values on every run, new ones only for new users.
            values = {
                key: sdk.register(
                    random.RandomPassword,
                    f"{name}-{key}",
                    child(self, providers.random, **keep),
                    ["result"],
                    length=PASSWORD_LENGTH,
                    special=False,
                ).result
                for key in keys
            }
            kv_secret("minicluster", names.vault_minicluster_path, values, child(self, providers.vault, **keep))
            deliveries.append((names.minicluster_secret, names.vault_minicluster_path, keys))

        policy = sdk.register(
            vault.Policy,
            f"{name}-policy",
            child(self, providers.vault),
            name=names.vault_policy,
            policy=kv_mount.apply(lambda mount: tenant_policy(mount, names.vault_base_path)),
        )
        if spec.is_active:
            # Removing the role is what suspension revokes: External Secrets can no longer log in, while the
            # paths, values and delivery objects stay for resuming.
            sdk.register(
                vault.kubernetes.AuthBackendRole,
                f"{name}-role",
                child(self, providers.vault, depends_on=[policy]),
                backend=args.vault.kubernetes_auth_path,
                role_name=names.vault_role,
                **role_fields(names, settings.vault),
            )

        # The objects live in the tenant's namespace, so they must wait for it.
        k8s_opts = child(self, providers.kubernetes, depends_on=[args.namespace])
        kube.apply(name, service_account_manifest(names, labels), k8s_opts)
        kube.apply(
            name,
            secret_store_manifest(
                names, labels, settings.vault, kv_mount, args.vault.kubernetes_auth_path, args.vault.server_ca_cert
            ),
            k8s_opts,
        )
        for target, path, keys in deliveries:
            kube.apply(name, external_secret_manifest(names, labels, target, path, keys), k8s_opts)

        self.secret_names = [target for target, _, _ in deliveries]
        self.register_outputs(
            {"vault_policy": names.vault_policy, "vault_role": names.vault_role, "secrets": self.secret_names}
        )
