"""The platform as a tenant shard sees it: the platform stack's outputs, read through a StackReference.

With `tenancy:shards` > 1 the environment's own stack holds the Platform and exports `platform` (and, with
service-specific registry credentials, the secret `platformRegistryPassword`: a shard stack cannot decrypt the
environment's `secure:` config, so the secret travels as a secret stack output). Each shard builds a
PlatformReference in its place, which offers tenants what a Platform does: `vault` and `registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi

from .providers import child
from .registry import registry_target
from .settings import StackSettings

PLATFORM_OUTPUT = "platform"
REGISTRY_PASSWORD_OUTPUT = "platformRegistryPassword"


def platform_outputs(platform: Any) -> dict[str, Any]:
    """The stack outputs a shard needs from the platform stack (never a secret: see REGISTRY_PASSWORD_OUTPUT)."""
    return {
        "kvMountPath": platform.vault.kv_mount_path,
        "kubernetesAuthPath": platform.vault.kubernetes_auth_path,
    }


def export_platform(platform: Any) -> None:
    pulumi.export(PLATFORM_OUTPUT, platform_outputs(platform))
    if platform.registry is not None and "password" in platform.registry.target:
        pulumi.export(REGISTRY_PASSWORD_OUTPUT, platform.registry.target["password"])


def platform_stack_name(environment: str) -> str:
    """Fully qualified, as Pulumi Cloud and self-managed backends both accept (`organization` on the latter)."""
    return f"{pulumi.get_organization() or 'organization'}/{pulumi.get_project()}/{environment}"


@dataclass(frozen=True)
class VaultView:
    kv_mount_path: pulumi.Output[str]
    kubernetes_auth_path: pulumi.Output[str]
    server_ca_cert: Optional[str]


class RegistryView(pulumi.ComponentResource):
    """The registry table the platform stack manages, and this stack's own provider for the tenants' records."""

    def __init__(self, name: str, settings: StackSettings, password: Optional[pulumi.Output[str]],
                 ca_cert: Optional[str], opts: pulumi.ResourceOptions):
        # The Registry's type and name: the records' provider then has the URN it had in the environment's stack,
        # and records moved here by `pulumi state move` (which keeps type chains) keep their provider.
        super().__init__("tenancy:registry:Registry", name, None, opts)
        # The shard reads the environment's settings, so the table is named as the platform stack names it.
        self.target = registry_target(settings, password, ca_cert)
        # The table lives in the platform stack, which every pipeline updates before the shards.
        self.records_depend_on: list[pulumi.Resource] = []
        self.record_provider = pulumi.ProviderResource("pulumi-python", f"{name}-records", {}, child(self))
        self.register_outputs({})


@dataclass(frozen=True)
class PlatformReferenceArgs:
    settings: StackSettings
    # The environment's stack, e.g. `organization/tenancy/dev`.
    platform_stack: str
    # PEM named by `tenancy:vault.caCertFile`, read by the composition root from the environment's settings.
    vault_server_ca_cert: Optional[str] = None
    # PEM named by `tenancy:registry.endpoint.caCertFile`, likewise.
    registry_ca_cert: Optional[str] = None


class PlatformReference(pulumi.ComponentResource):
    """Registered as `tenancy:index:Platform` named like the Platform, for the URN continuity RegistryView needs."""

    def __init__(self, name: str, args: PlatformReferenceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:index:Platform", name, None, opts)
        reference = pulumi.StackReference(f"{name}-stack", args.platform_stack, opts=child(self))
        outputs = reference.require_output(PLATFORM_OUTPUT)
        self.vault = VaultView(kv_mount_path=outputs.apply(lambda o: o["kvMountPath"]),
                               kubernetes_auth_path=outputs.apply(lambda o: o["kubernetesAuthPath"]),
                               server_ca_cert=args.vault_server_ca_cert)
        self.registry = None
        if args.settings.registry.enabled:
            password = (reference.require_output(REGISTRY_PASSWORD_OUTPUT)
                        if args.settings.registry.auth == "service-specific" else None)
            self.registry = RegistryView(f"{name}-registry", args.settings, password, args.registry_ca_cert,
                                         child(self))
        self.register_outputs({})
