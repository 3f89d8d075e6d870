"""Platform: the per-stack resources every tenant shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from .admission import Admission, AdmissionArgs
from .argocd import ArgoCdGenerator, ArgoCdGeneratorArgs, expected_tenants
from .catalogue import TenantSpec
from .naming import TenantNames
from .providers import Providers, child
from .registry import Registry, RegistryArgs
from .settings import StackSettings
from .vault_platform import VaultPlatform, VaultPlatformArgs


@dataclass(frozen=True)
class PlatformArgs:
    settings: StackSettings
    providers: Providers
    # PEM named by `tenancy:vault.kubernetesAuth.caCertFile`, read by the composition root.
    vault_kubernetes_ca_cert: Optional[str] = None
    # PEM named by `tenancy:vault.caCertFile` (Vault's server CA), read by the composition root.
    vault_server_ca_cert: Optional[str] = None
    # Secret `tenancy:registryPassword`, read by the composition root (service-specific registry credentials).
    registry_password: Optional[pulumi.Output[str]] = None
    # PEM named by `tenancy:registry.endpoint.caCertFile`, read by the composition root.
    registry_ca_cert: Optional[str] = None
    # The stack's tenants: the generator is told which of them every answer must contain; their node mode and
    # allow-lists are the admission policies' parameters.
    tenants: Sequence[tuple[TenantSpec, TenantNames]] = ()


class Platform(pulumi.ComponentResource):
    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tenancy:index:Platform", name, None, opts)
        self.settings = args.settings
        self.vault = VaultPlatform(
            f"{name}-vault",
            VaultPlatformArgs(args.settings.vault, args.providers, args.settings.protect_data,
                              args.vault_kubernetes_ca_cert, args.vault_server_ca_cert),
            child(self),
        )
        # A disabled registry has no table, no rows and no record provider (tenants write no row).
        self.registry = Registry(f"{name}-registry", RegistryArgs(args.settings, args.providers, args.registry_password,
                                                                  args.registry_ca_cert),
                                 child(self)) if args.settings.registry.enabled else None
        if args.settings.argocd.enabled:  # only with a registry: settings refuse Argo CD without one
            ArgoCdGenerator(f"{name}-argocd", ArgoCdGeneratorArgs(args.settings, args.providers, args.registry_password,
                                                                self.registry.table_arn,
                                                                expected_tenants(args.tenants),
                                                                args.registry_ca_cert),
                            child(self, depends_on=[self.registry]))
        Admission(f"{name}-admission", AdmissionArgs(args.settings, args.providers, [spec for spec, _ in args.tenants]), child(self))
        self.register_outputs({})
