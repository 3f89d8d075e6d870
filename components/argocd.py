"""Argo CD integration: the ApplicationSet plugin generator (see generator/), the ApplicationSet using it, and
each tenant's confinement (AppProject, impersonated deployer).

The generator reads the Keyspaces registry that the Registry component writes, so every active or suspended
tenant row becomes one Argo CD Application deploying the tenant's repository path into the tenant's namespace,
in the tenant's own AppProject, synced as the tenant's deployer ServiceAccount. Read against argo-cd v3.5.7:
`applicationset/controllers/applicationset_controller.go` (a successful answer deletes every Application it
lacks), `applicationset/utils/utils.go` (`RenderTemplateParams` adds the resources finalizer, i.e. cascading
deletion, unless `preserveResourcesOnDeletion`), `applicationset/controllers/template/patch.go` (templatePatch
may not change `project`), `pkg/apis/application/v1alpha1/app_project_types.go` (an empty
clusterResourceWhitelist permits no cluster-scoped kind) and `util/settings/impersonation.go`.
Credentials for the registry: SigV4 through IRSA, with a role tenancy creates (trusted only for
`system:serviceaccount:<argocd ns>:tenancy-generator`, allowed only `cassandra:Select` on the registry table and
the system keyspaces) or an existing one named by `tenancy:argocd.generatorRoleArn`;
or with `tenancy:registry.auth: service-specific` the username from settings and the password from
`tenancy:registryPassword`, handed to the pod through a Secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import json

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from . import iam_policies, kube, naming, rbac, sdk
from .catalogue import TenantSpec
from .naming import TenantNames
from .network import NAMESPACE_NAME_LABEL, _public
from .providers import Providers, child
from .registry import registry_region
from .registry_provider import PORT as REGISTRY_PORT
from .settings import StackSettings

ARGO_API = "argoproj.io/v1alpha1"
PORT = 4355
# Matches the image's numeric USER (generator/Dockerfile).
UID = 10001
TOKEN_DIR = "/var/run/secrets/tenancy-generator"
EXPECTED_DIR = "/etc/tenancy-generator/expected"
REGISTRY_CA_DIR = "/etc/tenancy-generator/registry-ca"
# Argo CD only resolves `$<secret>:<key>` references to Secrets carrying this label.
ARGOCD_SECRET_LABEL = {"app.kubernetes.io/part-of": "argocd"}


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": naming.GENERATOR, "app.kubernetes.io/managed-by": naming.MANAGED_BY}


def _metadata(name: str, namespace: str, labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {**_labels(), **(labels or {})}}


# pulumi-kubernetes (v4.25.0: provider/pkg/metadata/overrides.go `SkipAwaitLogic`, provider/pkg/await/await.go)
# reports a Deployment or Service as created without waiting for its rollout or endpoints when this is "true".
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


def _rollout_metadata(settings: StackSettings) -> dict[str, Any]:
    """Metadata of the objects whose readiness `pulumi up` awaits: the Deployment and its Service."""
    meta = _metadata(naming.GENERATOR, settings.argocd.namespace)
    if not settings.argocd.await_rollout:
        meta["annotations"] = dict(SKIP_AWAIT)
    return meta


def service_account(settings: StackSettings, role_arn: Any = None) -> dict[str, Any]:
    """`role_arn` (IRSA) is an Output in the program, a string in tests; None with service-specific credentials."""
    meta = _metadata(naming.GENERATOR, settings.argocd.namespace)
    if role_arn is not None:
        meta["annotations"] = {"eks.amazonaws.com/role-arn": role_arn}
    # The generator never calls the Kubernetes API; IRSA's web-identity token is projected by the EKS webhook
    # regardless of this setting.
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}


def token_secret(namespace: str, token: Any) -> dict[str, Any]:
    """The shared bearer token; `token` is a secret Output in the program, a string in tests."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(naming.GENERATOR_TOKEN_SECRET, namespace, ARGOCD_SECRET_LABEL),
            "stringData": {naming.GENERATOR_TOKEN_KEY: token}}


def registry_secret(namespace: str, password: Any) -> dict[str, Any]:
    """The service-specific Keyspaces password, for stacks that do not use SigV4."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(naming.GENERATOR_REGISTRY_SECRET, namespace),
            "stringData": {naming.GENERATOR_REGISTRY_PASSWORD_KEY: password}}


def registry_ca_configmap(namespace: str, pem: str) -> dict[str, Any]:
    """The CA behind `tenancy:registry.endpoint`'s certificate (public: a ConfigMap, not a Secret)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(naming.GENERATOR_REGISTRY_CA_CONFIGMAP, namespace),
            "data": {naming.GENERATOR_REGISTRY_CA_KEY: pem}}


def _registry_port(settings: StackSettings) -> int:
    endpoint = settings.registry.endpoint
    return endpoint.port if endpoint else REGISTRY_PORT


def _environment(settings: StackSettings) -> list[dict[str, Any]]:
    registry = settings.registry
    env = [
        {"name": "PORT", "value": str(PORT)},
        {"name": "AWS_REGION", "value": registry_region(settings)},
        {"name": "KEYSPACE", "value": registry.keyspace},
        {"name": "TABLE", "value": registry.table},
        {"name": "CACHE_TTL_SECONDS", "value": str(settings.argocd.cache_ttl_seconds)},
        {"name": "PLUGIN_TOKEN_FILE", "value": f"{TOKEN_DIR}/{naming.GENERATOR_TOKEN_KEY}"},
        {"name": "EXPECTED_TENANTS_FILE", "value": f"{EXPECTED_DIR}/{naming.GENERATOR_EXPECTED_KEY}"},
        {"name": "ALLOW_EMPTY", "value": "true" if settings.argocd.allow_empty else "false"},
    ]
    if registry.endpoint is not None:
        env += [{"name": "KEYSPACES_ENDPOINT", "value": registry.endpoint.host},
                {"name": "KEYSPACES_PORT", "value": str(registry.endpoint.port)}]
        if registry.endpoint.ca_cert_file is not None:
            env.append({"name": "KEYSPACES_ROOT_CERT", "value": f"{REGISTRY_CA_DIR}/{naming.GENERATOR_REGISTRY_CA_KEY}"})
    if registry.auth == "service-specific":
        env += [
            {"name": "KEYSPACES_USERNAME", "value": registry.username},
            {"name": "KEYSPACES_PASSWORD", "valueFrom": {"secretKeyRef": {
                "name": naming.GENERATOR_REGISTRY_SECRET, "key": naming.GENERATOR_REGISTRY_PASSWORD_KEY}}},
        ]
    return env


def deployment(settings: StackSettings) -> dict[str, Any]:
    argocd = settings.argocd
    resources = argocd.generator_resources
    probe = {"httpGet": {"port": "http"}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    container = {
        "name": "generator",
        "image": argocd.generator_image_ref,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": _environment(settings),
        "resources": {
            "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
            "limits": {"cpu": resources.cpu_limit, "memory": resources.memory_limit},
        },
        "livenessProbe": {**probe, "httpGet": {**probe["httpGet"], "path": "/healthz"}},
        # Not ready whenever the plugin endpoint would refuse (registry unreadable, a tenant missing): a rollout
        # to a wrong or empty table stalls on the new pods while the old ones keep answering.
        "readinessProbe": {**probe, "httpGet": {**probe["httpGet"], "path": "/readyz"}},
        "volumeMounts": [{"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
                         {"name": "expected", "mountPath": EXPECTED_DIR, "readOnly": True}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod = {
        "serviceAccountName": naming.GENERATOR,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        # Mounted as directories (not subPath) so a rotated token or a new expected set reaches the running pod.
        "volumes": [
            {"name": "token", "secret": {
                "secretName": naming.GENERATOR_TOKEN_SECRET, "defaultMode": 0o440,
                "items": [{"key": naming.GENERATOR_TOKEN_KEY, "path": naming.GENERATOR_TOKEN_KEY}]}},
            {"name": "expected", "configMap": {
                "name": naming.GENERATOR_EXPECTED_CONFIGMAP, "defaultMode": 0o444,
                "items": [{"key": naming.GENERATOR_EXPECTED_KEY, "path": naming.GENERATOR_EXPECTED_KEY}]}},
        ],
    }
    if settings.registry.endpoint is not None and settings.registry.endpoint.ca_cert_file is not None:
        container["volumeMounts"].append({"name": "registry-ca", "mountPath": REGISTRY_CA_DIR, "readOnly": True})
        pod["volumes"].append({"name": "registry-ca", "configMap": {
            "name": naming.GENERATOR_REGISTRY_CA_CONFIGMAP, "defaultMode": 0o444,
            "items": [{"key": naming.GENERATOR_REGISTRY_CA_KEY, "path": naming.GENERATOR_REGISTRY_CA_KEY}]}})
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _rollout_metadata(settings),
        "spec": {
            "replicas": argocd.generator_replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": naming.GENERATOR}},
            "template": {"metadata": {"labels": _labels()}, "spec": pod},
        },
    }


def service(settings: StackSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _rollout_metadata(settings),
        "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": naming.GENERATOR},
                 "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]},
    }


def plugin_configmap(settings: StackSettings) -> dict[str, Any]:
    namespace = settings.argocd.namespace
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _metadata(naming.GENERATOR, namespace),
        "data": {
            "baseUrl": f"http://{naming.service_host(naming.GENERATOR, namespace)}:{PORT}",
            "token": f"${naming.GENERATOR_TOKEN_SECRET}:{naming.GENERATOR_TOKEN_KEY}",
            "requestTimeout": str(settings.argocd.request_timeout_seconds),
        },
    }


def expected_tenants(tenants: Sequence[tuple[TenantSpec, TenantNames]]) -> dict[str, str]:
    """Registry key -> lifecycle of every tenant whose Application must exist (active and suspended)."""
    return {names.registry_key: spec.lifecycle for spec, names in sorted(tenants, key=lambda t: t[1].registry_key)
            if spec.keeps_identities}


def expected_configmap(settings: StackSettings, expected: Mapping[str, str]) -> dict[str, Any]:
    """What every generator answer must contain; the generator refuses to answer without all of these.

    An object keyed by tenant rather than a list, so that adding or removing one tenant changes one key in a
    diff instead of shifting every entry after it."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _metadata(naming.GENERATOR_EXPECTED_CONFIGMAP, settings.argocd.namespace),
        "data": {naming.GENERATOR_EXPECTED_KEY: json.dumps(dict(sorted(expected.items())))},
    }


def network_policy(settings: StackSettings) -> dict[str, Any]:
    """Ingress only from the ApplicationSet controller; egress only to cluster DNS and the registry endpoint
    (Keyspaces on 9142 or `tenancy:registry.endpoint`'s port, and STS on 443 where SigV4 exchanges the IRSA token)."""
    argocd = settings.argocd
    registry_ports = [{"protocol": "TCP", "port": _registry_port(settings)}]
    if settings.registry.auth == "sigv4":
        registry_ports.append({"protocol": "TCP", "port": 443})
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _metadata(naming.GENERATOR, argocd.namespace),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": naming.GENERATOR}},
            "policyTypes": ["Ingress", "Egress"],
            # A podSelector without a namespaceSelector matches pods of this (the Argo CD) namespace only.
            "ingress": [{"from": [{"podSelector": {"matchLabels": dict(argocd.application_set_controller_labels)}}],
                         "ports": [{"protocol": "TCP", "port": PORT}]}],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {
                    NAMESPACE_NAME_LABEL: settings.kubernetes.dns_namespace}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"to": [_public(cidr) for cidr in argocd.registry_egress_cidrs], "ports": registry_ports},
            ],
        },
    }


# Argo CD's ApplicationSet renders `templatePatch` with the same Go template data as the template, then merges
# it into the Application (applicationset/controllers/template/patch.go). Only a patch can set a boolean from a
# parameter: the template's own fields are substituted as strings.
AUTO_SYNC_PATCH = """spec:
  syncPolicy:
    automated:
      enabled: {{ .autoSync }}
"""


def application_set(settings: StackSettings) -> dict[str, Any]:
    """One Application per parameter map the generator returns, i.e. per active or suspended tenant row."""
    argocd = settings.argocd
    return {
        "apiVersion": ARGO_API, "kind": "ApplicationSet",
        "metadata": {"name": naming.APPLICATION_SET, "namespace": argocd.namespace,
                     "labels": {"app.kubernetes.io/managed-by": naming.MANAGED_BY}},
        "spec": {
            # Go templates with missingkey=error: a placeholder the generator does not return fails the
            # generation (nothing changes) instead of rendering literally into every Application.
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"plugin": {
                "configMapRef": {"name": naming.GENERATOR},
                "input": {"parameters": {}},
                "requeueAfterSeconds": argocd.requeue_after_seconds,
            }}],
            "syncPolicy": {
                # No resources finalizer on the Applications: deleting one (offboarding, or the ApplicationSet
                # itself going) leaves everything it deployed in place.
                "preserveResourcesOnDeletion": True,
                # Create, update (suspension toggles auto-sync) and delete (offboarding). Honoured only where the
                # controller allows overrides; the generator's refusals are what stop unintended deletions.
                "applicationsSync": "sync",
            },
            "template": {
                "metadata": {"name": "{{ .tenantId }}",
                             "labels": {"app.kubernetes.io/managed-by": naming.MANAGED_BY}},
                "spec": {
                    # Each tenant's own AppProject, named after its registry key (TenantNames.argocd_project).
                    "project": "{{ .tenantId }}",
                    # The row holds no revision: the repository's default branch (HEAD) is what tenants deploy.
                    "source": {"repoURL": "{{ .repoURL }}", "path": "{{ .path }}", "targetRevision": "HEAD"},
                    # tenancy creates and labels the namespace (Pod Security, quotas); Argo must not.
                    "destination": {"server": "{{ .cluster }}", "namespace": "{{ .namespace }}"},
                    "syncPolicy": {
                        # Prune is off unless the stack opts in: a bad commit or a wrong path that drops
                        # manifests should show as OutOfSync for a human, not delete a tenant's running workloads.
                        "automated": {"prune": argocd.prune, "selfHeal": True},
                        "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
                    },
                },
            },
            "templatePatch": AUTO_SYNC_PATCH,
        },
    }


# Kinds in a tenant namespace that tenancy owns (the tenant's fences and identities) or that must never come
# from a tenant's repository: a sync may not create or change any of them. Kinds tenants legitimately create
# too (ConfigMap, WorkflowTemplate, MiniCluster) cannot be blacklisted by name; the deployer's RBAC (the
# tenant-admin Role) is what limits those.
NAMESPACE_RESOURCE_BLACKLIST = (
    ("", "ResourceQuota"), ("", "LimitRange"), ("", "ServiceAccount"), ("", "Secret"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding"),
    ("external-secrets.io", "SecretStore"), ("external-secrets.io", "ExternalSecret"),
    ("config.ratify.deislabs.io", "NamespacedKeyManagementProvider"),
    ("config.ratify.deislabs.io", "NamespacedVerifier"), ("config.ratify.deislabs.io", "NamespacedStore"),
    ("config.ratify.deislabs.io", "NamespacedPolicy"),
    # Argo CD's own kinds: with apps-in-any-namespace a tenant could otherwise mint Applications or projects.
    ("argoproj.io", "Application"), ("argoproj.io", "ApplicationSet"), ("argoproj.io", "AppProject"),
)


def app_project(spec: TenantSpec, names: TenantNames, settings: StackSettings) -> dict[str, Any]:
    """The tenant's AppProject: its repository only, its namespace on its target cluster only, no
    cluster-scoped kind, none of tenancy's kinds, synced as the tenant's deployer (sync impersonation)."""
    cluster = settings.registry.target_cluster
    return {
        "apiVersion": ARGO_API, "kind": "AppProject",
        "metadata": {"name": names.argocd_project, "namespace": settings.argocd.namespace,
                     "labels": {"app.kubernetes.io/managed-by": naming.MANAGED_BY, naming.TENANT_LABEL: spec.name}},
        "spec": {
            "description": f"tenancy tenant {spec.name}",  # the CRD caps it at 255 characters
            "sourceRepos": [spec.repo.url],
            "destinations": [{"server": cluster, "namespace": names.namespace}],
            "clusterResourceWhitelist": [],
            "namespaceResourceBlacklist": [{"group": g, "kind": k} for g, k in NAMESPACE_RESOURCE_BLACKLIST],
            # Argo CD (application.sync.impersonation.enabled) syncs as this account rather than as itself.
            "destinationServiceAccounts": [{"server": cluster, "namespace": names.namespace,
                                            "defaultServiceAccount": naming.ARGOCD_DEPLOYER}],
        },
    }


def deployer_manifests(names: TenantNames, settings: StackSettings) -> list[dict[str, Any]]:
    """The ServiceAccount Argo CD impersonates in the tenant namespace, bound to exactly the tenant-admin Role a
    team admin has there (rbac.py); it never gets a token of its own."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": naming.ARGOCD_DEPLOYER, "namespace": names.namespace},
               "automountServiceAccountToken": False}
    # The application controller impersonates with its own credentials; the binding is what the sync may do.
    subject = [{"kind": "ServiceAccount", "name": naming.ARGOCD_DEPLOYER, "namespace": names.namespace}]
    return [account, rbac.role_binding(names, naming.ARGOCD_DEPLOYER, "Role", naming.TENANT_ADMIN_ROLE, subject)]


@dataclass(frozen=True)
class TenantArgoCdArgs:
    spec: TenantSpec
    names: TenantNames
    settings: StackSettings
    providers: Providers
    namespace: pulumi.Resource


class TenantArgoCd(pulumi.ComponentResource):
    """A tenant's Argo CD confinement: its AppProject in the Argo CD namespace and its deployer identity."""

    def __init__(self, name: str, args: TenantArgoCdArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:argocd:TenantArgoCd", name, None, opts)
        in_namespace = child(self, args.providers.kubernetes, depends_on=[args.namespace])
        deployer = [kube.apply(name, m, in_namespace) for m in deployer_manifests(args.names, args.settings)]
        # The project names the deployer; it exists before Argo CD can sync anything as it.
        kube.apply(name, app_project(args.spec, args.names, args.settings),
                   child(self, args.providers.kubernetes, depends_on=deployer))
        self.register_outputs({"project": args.names.argocd_project})


@dataclass(frozen=True)
class ArgoCdGeneratorArgs:
    settings: StackSettings
    providers: Providers
    # Service-specific registry password (secret config), only with `tenancy:registry.auth: service-specific`.
    registry_password: Optional[pulumi.Output[str]] = None
    # The registry table, for the read policy of the generator's own role (SigV4 without generatorRoleArn).
    registry_table_arn: Optional[pulumi.Output[str]] = None
    # Registry keys (with their lifecycle) every answer must contain: expected_tenants().
    expected: Mapping[str, str] = field(default_factory=dict)
    # PEM named by `tenancy:registry.endpoint.caCertFile`, read by the composition root.
    registry_ca_cert: Optional[str] = None


class ArgoCdGenerator(pulumi.ComponentResource):
    """The plugin generator service and the ApplicationSet that calls it, in the Argo CD namespace."""

    def __init__(self, name: str, args: ArgoCdGeneratorArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:argocd:ArgoCdGenerator", name, None, opts)
        settings, providers = args.settings, args.providers
        k8s_opts = child(self, providers.kubernetes)
        namespace = settings.argocd.namespace

        token = sdk.register(random.RandomPassword, f"{name}-token", child(self, providers.random), ["result"],
                             length=48, special=False)
        objects = [service_account(settings, self._registry_identity(name, args)), token_secret(namespace, pulumi.Output.secret(token.result))]
        if settings.registry.auth == "service-specific":
            objects.append(registry_secret(namespace, pulumi.Output.secret(args.registry_password)))
        if args.registry_ca_cert is not None:
            objects.append(registry_ca_configmap(namespace, args.registry_ca_cert))
        configmap = plugin_configmap(settings)
        objects += [expected_configmap(settings, args.expected), network_policy(settings), deployment(settings),
                    service(settings), configmap]
        applied = [kube.apply(name, m, k8s_opts) for m in objects]
        # The ApplicationSet calls the generator as soon as it exists; create it after the service is in place.
        kube.apply(name, application_set(settings), child(self, providers.kubernetes, depends_on=applied))
        self.register_outputs({"baseUrl": configmap["data"]["baseUrl"]})

    def _registry_identity(self, name: str, args: ArgoCdGeneratorArgs) -> Any:
        """The IRSA role the generator reads Keyspaces with: the configured one, or one made for it here."""
        settings = args.settings
        if settings.registry.auth != "sigv4":
            return None
        if settings.argocd.generator_role_arn:
            return settings.argocd.generator_role_arn
        irsa = settings.irsa
        if irsa is None or args.registry_table_arn is None:
            raise ValueError("SigV4 registry reads need tenancy:irsa; settings validation should have refused this")
        opts = child(self, args.providers.aws(registry_region(settings)))
        trust = iam_policies.irsa_trust_policy(irsa.oidc_provider_arn, irsa.issuer, settings.argocd.namespace,
                                               naming.GENERATOR)
        role = sdk.register(aws.iam.Role, f"{name}-role", opts, ["arn"],
                            name=naming.generator_iam_role(settings.org, settings.environment),
                            assume_role_policy=json.dumps(trust))
        policy = sdk.register(
            aws.iam.Policy, f"{name}-registry-read", opts, ["arn"],
            name=naming.generator_iam_policy(settings.org, settings.environment),
            policy=args.registry_table_arn.apply(lambda arn: json.dumps(iam_policies.registry_read_policy(arn))))
        sdk.register(aws.iam.RolePolicyAttachment, f"{name}-registry-read", opts, role=role.name, policy_arn=policy.arn)
        return role.arn
