"""The Vault side every tenant shares: the kv-v2 mount holding tenant secrets and the Kubernetes auth backend.

Many platforms already run both, so each is either created here or adopted by path (`create: false`): an
adopted mount or backend is referenced, never managed, and `pulumi destroy` leaves it alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_vault as vault

from . import sdk
from .providers import Providers, child
from .settings import VaultSettings


@dataclass(frozen=True)
class VaultPlatformArgs:
    vault: VaultSettings
    providers: Providers
    protect_data: bool
    # PEM of the cluster CA, read by the composition root from `kubernetesAuth.caCertFile`; None lets Vault
    # use the CA of the service-account token it runs with (Vault inside the cluster).
    kubernetes_ca_cert: Optional[str] = None
    # PEM of the CA behind Vault's TLS certificate (`tenancy:vault.caCertFile`); None: the system roots.
    server_ca_cert: Optional[str] = None


class VaultPlatform(pulumi.ComponentResource):
    kv_mount_path: pulumi.Output[str]
    kubernetes_auth_path: pulumi.Output[str]
    server_ca_cert: Optional[str]

    def __init__(self, name: str, args: VaultPlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:vault:VaultPlatform", name, None, opts)
        settings, provider = args.vault, args.providers.vault
        # Handed to every tenant's SecretStore, whose External Secrets client calls Vault with it.
        self.server_ca_cert = args.server_ca_cert

        mount_settings = settings.kv_mount
        if mount_settings.create:
            mount = sdk.register(
                vault.Mount,
                f"{name}-kv",
                # Deleting a kv mount deletes every secret in it.
                child(self, provider, protect=args.protect_data, retain_on_delete=args.protect_data),
                path=mount_settings.path,
                type="kv",
                options={"version": "2"},
                description="tenancy: per-tenant secrets delivered by External Secrets",
            )
            # Tenant secrets take the path from the resource, so they wait for the mount to exist.
            self.kv_mount_path = mount.path
        else:
            self.kv_mount_path = pulumi.Output.from_input(mount_settings.path)

        auth_settings = settings.kubernetes_auth
        if auth_settings.create:
            backend = sdk.register(
                vault.AuthBackend,
                f"{name}-kubernetes",
                child(self, provider),
                type="kubernetes",
                path=auth_settings.path,
                description="tenancy: External Secrets service accounts of tenant namespaces",
            )
            sdk.register(
                vault.kubernetes.AuthBackendConfig,
                f"{name}-kubernetes-config",
                child(self, provider),
                backend=backend.path,
                kubernetes_host=auth_settings.host,
                kubernetes_ca_cert=args.kubernetes_ca_cert,
            )
            self.kubernetes_auth_path = backend.path
        else:
            self.kubernetes_auth_path = pulumi.Output.from_input(auth_settings.path)

        self.register_outputs({"kv_mount_path": self.kv_mount_path, "kubernetes_auth_path": self.kubernetes_auth_path})
