"""Explicit providers, created once per stack and passed down.

Default providers are disabled in Pulumi.yaml, so a resource created without one of these fails instead of
silently deploying with whatever kubeconfig context or AWS profile is ambient on the laptop or runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_vault as vault

from . import naming, secrecy
from .settings import StackSettings


@dataclass(frozen=True)
class Providers:
    aws_by_region: Mapping[str, aws.Provider]
    kubernetes: k8s.Provider
    vault: vault.Provider
    random: random.Provider

    def aws(self, region: str) -> aws.Provider:
        return self.aws_by_region[region]


def build(settings: StackSettings, regions: Iterable[str]) -> Providers:
    """One AWS provider per region in use (the stack's own region always), and one of each other kind."""
    # Every resource the provider creates carries these; tenant resources override the cost-allocation value with
    # their own (a resource's tags win over default tags), so platform resources need no tags of their own.
    tags = {
        "managed-by": naming.MANAGED_BY,
        "environment": settings.environment,
        "org": settings.org,
        naming.COST_ALLOCATION_KEY: naming.cost_allocation(settings.org, settings.environment),
    }
    aws_by_region = {
        region: aws.Provider(f"aws-{region}", region=region, default_tags=aws.ProviderDefaultTagsArgs(tags=tags))
        for region in sorted({settings.region, *regions})
    }
    kubernetes = k8s.Provider(
        "kubernetes",
        context=secrecy.mask(settings.kubernetes.context),
        # With an identifier the provider is replaced only when the identifier changes; without one, whenever the
        # context resolves to another kubeconfig cluster entry (pulumi-kubernetes provider.go DiffConfig).
        cluster_identifier=secrecy.mask(settings.kubernetes.cluster_identifier),
        # Server-side apply lets the platform's other controllers own fields of shared objects without fights.
        enable_server_side_apply=True,
    )
    vault_provider = vault.Provider(
        "vault",
        address=secrecy.mask(settings.vault.address),
        namespace=secrecy.mask(settings.vault.namespace),
        # The runner's token comes from VAULT_TOKEN (or an auth method set outside the program), never config.
        skip_child_token=True,
    )
    return Providers(aws_by_region, kubernetes, vault_provider, random.Provider("random"))


def child(parent: pulumi.Resource, provider: pulumi.ProviderResource | None = None, **extra) -> pulumi.ResourceOptions:
    """Options for a child resource: parented, with its explicit provider."""
    return pulumi.ResourceOptions(parent=parent, provider=provider, **extra)
