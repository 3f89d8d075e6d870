"""Tenant: everything one catalogue entry becomes in one stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from . import kube
from .catalogue import TenantSpec
from .naming import TenantNames
from .namespace import namespace_manifest
from .platform import Platform
from .providers import Providers, child
from .settings import StackSettings


@dataclass(frozen=True)
class TenantArgs:
    spec: TenantSpec
    names: TenantNames
    settings: StackSettings
    providers: Providers
    platform: Platform


class Tenant(pulumi.ComponentResource):
    def __init__(self, name: str, args: TenantArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tenancy:index:Tenant", name, None, opts)
        spec, names, settings, providers = args.spec, args.names, args.settings, args.providers
        k8s_opts = child(self, providers.kubernetes)

        self.namespace = kube.apply(
            name, namespace_manifest(spec, names, settings.environment, settings.org), k8s_opts)

        self.register_outputs({"namespace": names.namespace})
