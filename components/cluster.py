"""TenantCluster: everything a tenant gets inside the Kubernetes cluster besides its Namespace.

Quota and limits, RBAC, network isolation, the Argo artifact repository and template, Ratify verification
and the Flux MiniCluster: each built by its pure module, registered here in the tenant namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi

from . import argo, kube, minicluster, network, quota, ratify, rbac
from .catalogue import TenantSpec
from .naming import TenantNames
from .providers import Providers, child
from .settings import StackSettings
from .storage import ArtifactAccess


@dataclass(frozen=True)
class TenantClusterArgs:
    spec: TenantSpec
    names: TenantNames
    settings: StackSettings
    providers: Providers
    access: ArtifactAccess
    namespace: pulumi.Resource


def _repository_yaml(spec: TenantSpec, names: TenantNames, access: ArtifactAccess) -> pulumi.Output[str]:
    def render(values: list[Optional[str]]) -> str:
        bucket, kms_key_arn = values
        return argo.repository_yaml(argo.artifact_repository(spec, names, bucket, access.region, kms_key_arn))

    return pulumi.Output.all(access.bucket, access.kms_key_arn).apply(render)


def tenant_manifests(args: TenantClusterArgs) -> list[dict[str, Any]]:
    """Every in-namespace object of the tenant, in the order they are registered."""
    spec, names, settings, access = args.spec, args.names, args.settings, args.access
    fences = [
        quota.resource_quota(spec, names, settings.quota_scale),
        quota.limit_range(spec, names),
        *network.network_policies(spec, names, settings.org, settings.kubernetes),
    ]
    if not spec.keeps_identities:
        # Offboarded: no one may act in the namespace any more, but it stays fenced while its data is kept.
        return fences
    manifests = [
        *fences,
        *rbac.rbac_manifests(
            names,
            spec.owners.admins,
            spec.owners.developers,
            settings.cluster_admin_group,
            access.role_arn if spec.artifacts.credentials == "irsa" else None,
        ),
        argo.artifact_repositories_configmap(names, _repository_yaml(spec, names, access)),
        argo.workflow_template(spec, names),
        *ratify.ratify_manifests(spec, names),
    ]
    flux = minicluster.minicluster(spec, names, settings.minicluster.api_version)
    if flux is not None:
        manifests += [minicluster.service_account(names), flux]
    return manifests


class TenantCluster(pulumi.ComponentResource):
    def __init__(self, name: str, args: TenantClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:cluster:TenantCluster", name, None, opts)
        k8s_opts = child(self, args.providers.kubernetes, depends_on=[args.namespace])
        self.objects = [kube.apply(name, manifest, k8s_opts) for manifest in tenant_manifests(args)]
        self.register_outputs({"objects": len(self.objects)})
