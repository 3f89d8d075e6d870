"""Tenant: everything one catalogue entry becomes in one stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from . import kube
from .argocd import TenantArgoCd, TenantArgoCdArgs
from .catalogue import TenantSpec
from .cluster import TenantCluster, TenantClusterArgs
from .namespace import namespace_manifest
from .naming import TenantNames
from .platform import Platform
from .platform_ref import PlatformReference
from .providers import Providers, child
from .registry import RegistryRecord, record_row
from .secrets import TenantSecrets, TenantSecretsArgs
from .settings import StackSettings
from .storage import TenantStorage, TenantStorageArgs


@dataclass(frozen=True)
class TenantArgs:
    spec: TenantSpec
    names: TenantNames
    settings: StackSettings
    providers: Providers
    platform: "Platform | PlatformReference"  # the Platform, or its outputs in a shard stack


class Tenant(pulumi.ComponentResource):
    def __init__(self, name: str, args: TenantArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tenancy:index:Tenant", name, None, opts)
        spec, names, settings, providers = args.spec, args.names, args.settings, args.providers

        # Deleting a namespace deletes every volume and object in it, so it counts as data: stacks that protect
        # data refuse to delete it and leave it in the cluster if tenancy ever stops managing it.
        self.namespace = kube.apply(
            name,
            namespace_manifest(spec, names, settings.environment, settings.org),
            child(self, providers.kubernetes, protect=settings.protect_data, retain_on_delete=settings.protect_data),
        )
        self.storage = TenantStorage(
            f"{name}-storage",
            TenantStorageArgs(spec, names, settings, providers, args.platform.access_logs_ready.get(spec.region)),
            child(self),
        )
        if spec.keeps_identities:
            TenantSecrets(
                f"{name}-secrets",
                TenantSecretsArgs(
                    spec, names, settings, providers, args.platform.vault, self.storage.access, self.namespace
                ),
                child(self),
            )
        self.cluster = TenantCluster(
            f"{name}-cluster",
            TenantClusterArgs(spec, names, settings, providers, self.storage.access, self.namespace),
            child(self),
        )
        if settings.argocd.enabled and spec.keeps_identities:
            TenantArgoCd(
                f"{name}-argocd", TenantArgoCdArgs(spec, names, settings, providers, self.namespace), child(self)
            )
        if settings.registry.enabled:
            RegistryRecord(
                f"{name}-registry-record",
                args.platform.registry,
                record_row(spec, names, settings),
                disable_on_delete=settings.protect_data,
                opts=child(self),
            )

        self.register_outputs({"namespace": names.namespace})
