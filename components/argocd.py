"""Argo CD integration: the ApplicationSet plugin generator (see generator/) and the ApplicationSet using it.

The generator reads the Keyspaces registry that the Registry component writes, so every enabled tenant row
becomes one Argo CD Application deploying the tenant's repository path into the tenant's namespace.
Credentials for the registry: SigV4 through IRSA, with a role tenancy creates (trusted only for
`system:serviceaccount:<argocd ns>:tenancy-generator`, allowed only `cassandra:Select` on the registry table and
the system keyspaces) or an existing one named by `tenancy:argocd.generatorRoleArn`;
or with `tenancy:registry.auth: service-specific` the username from settings and the password from
`tenancy:registryPassword`, handed to the pod through a Secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import json

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from . import iam_policies, kube, naming
from .providers import Providers, child
from .registry import registry_region
from .settings import StackSettings

ARGO_API = "argoproj.io/v1alpha1"
PORT = 4355
# Matches the image's numeric USER (generator/Dockerfile).
UID = 10001
TOKEN_DIR = "/var/run/secrets/tenancy-generator"
# Argo CD only resolves `$<secret>:<key>` references to Secrets carrying this label.
ARGOCD_SECRET_LABEL = {"app.kubernetes.io/part-of": "argocd"}


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": naming.GENERATOR, "app.kubernetes.io/managed-by": naming.MANAGED_BY}


def _metadata(name: str, namespace: str, labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {**_labels(), **(labels or {})}}


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


def _environment(settings: StackSettings) -> list[dict[str, Any]]:
    registry = settings.registry
    env = [
        {"name": "PORT", "value": str(PORT)},
        {"name": "AWS_REGION", "value": registry_region(settings)},
        {"name": "KEYSPACE", "value": registry.keyspace},
        {"name": "TABLE", "value": registry.table},
        {"name": "CACHE_TTL_SECONDS", "value": str(settings.argocd.cache_ttl_seconds)},
        {"name": "PLUGIN_TOKEN_FILE", "value": f"{TOKEN_DIR}/{naming.GENERATOR_TOKEN_KEY}"},
    ]
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
        "image": argocd.generator_image,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": _environment(settings),
        "resources": {
            "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
            "limits": {"cpu": resources.cpu_limit, "memory": resources.memory_limit},
        },
        "livenessProbe": {**probe, "httpGet": {**probe["httpGet"], "path": "/healthz"}},
        # Not ready while the registry is unreachable: Argo then gets no answer from this replica rather than a 503.
        "readinessProbe": {**probe, "httpGet": {**probe["httpGet"], "path": "/readyz"}},
        "volumeMounts": [{"name": "token", "mountPath": TOKEN_DIR, "readOnly": True}],
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
        # Mounted as a directory (not subPath) so a rotated token reaches the running pod.
        "volumes": [{"name": "token", "secret": {
            "secretName": naming.GENERATOR_TOKEN_SECRET, "defaultMode": 0o440,
            "items": [{"key": naming.GENERATOR_TOKEN_KEY, "path": naming.GENERATOR_TOKEN_KEY}]}}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _metadata(naming.GENERATOR, argocd.namespace),
        "spec": {
            "replicas": argocd.generator_replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": naming.GENERATOR}},
            "template": {"metadata": {"labels": _labels()}, "spec": pod},
        },
    }


def service(settings: StackSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _metadata(naming.GENERATOR, settings.argocd.namespace),
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


def application_set(settings: StackSettings) -> dict[str, Any]:
    """One Application per parameter map the generator returns, i.e. per enabled tenant row."""
    argocd = settings.argocd
    return {
        "apiVersion": ARGO_API, "kind": "ApplicationSet",
        "metadata": {"name": naming.APPLICATION_SET, "namespace": argocd.namespace,
                     "labels": {"app.kubernetes.io/managed-by": naming.MANAGED_BY}},
        "spec": {
            "generators": [{"plugin": {
                "configMapRef": {"name": naming.GENERATOR},
                "input": {"parameters": {}},
                "requeueAfterSeconds": argocd.requeue_after_seconds,
            }}],
            "template": {
                "metadata": {"name": "{{tenantId}}",
                             "labels": {"app.kubernetes.io/managed-by": naming.MANAGED_BY}},
                "spec": {
                    "project": argocd.project,
                    # The row holds no revision: the repository's default branch (HEAD) is what tenants deploy.
                    "source": {"repoURL": "{{repoURL}}", "path": "{{path}}", "targetRevision": "HEAD"},
                    # tenancy creates and labels the namespace (Pod Security, quotas); Argo must not.
                    "destination": {"server": "{{cluster}}", "namespace": "{{namespace}}"},
                    "syncPolicy": {
                        # Prune is off unless the stack opts in: a bad commit or a wrong path that drops
                        # manifests should show as OutOfSync for a human, not delete a tenant's running workloads.
                        "automated": {"prune": argocd.prune, "selfHeal": True},
                        "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
                    },
                },
            },
        },
    }


@dataclass(frozen=True)
class ArgoCdGeneratorArgs:
    settings: StackSettings
    providers: Providers
    # Service-specific registry password (secret config), only with `tenancy:registry.auth: service-specific`.
    registry_password: Optional[pulumi.Output[str]] = None
    # The registry table, for the read policy of the generator's own role (SigV4 without generatorRoleArn).
    registry_table_arn: Optional[pulumi.Output[str]] = None


class ArgoCdGenerator(pulumi.ComponentResource):
    """The plugin generator service and the ApplicationSet that calls it, in the Argo CD namespace."""

    def __init__(self, name: str, args: ArgoCdGeneratorArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:argocd:ArgoCdGenerator", name, None, opts)
        settings, providers = args.settings, args.providers
        k8s_opts = child(self, providers.kubernetes)
        namespace = settings.argocd.namespace

        token = random.RandomPassword(f"{name}-token", length=48, special=False,
                                      opts=child(self, providers.random))
        objects = [service_account(settings, self._registry_identity(name, args)), token_secret(namespace, pulumi.Output.secret(token.result))]
        if settings.registry.auth == "service-specific":
            objects.append(registry_secret(namespace, pulumi.Output.secret(args.registry_password)))
        configmap = plugin_configmap(settings)
        objects += [deployment(settings), service(settings), configmap]
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
        role = aws.iam.Role(f"{name}-role", name=naming.generator_iam_role(settings.org, settings.environment),
                            assume_role_policy=json.dumps(trust), opts=opts)
        policy = aws.iam.Policy(
            f"{name}-registry-read", name=naming.generator_iam_policy(settings.org, settings.environment),
            policy=args.registry_table_arn.apply(lambda arn: json.dumps(iam_policies.registry_read_policy(arn))),
            opts=opts)
        aws.iam.RolePolicyAttachment(f"{name}-registry-read", role=role.name, policy_arn=policy.arn, opts=opts)
        return role.arn
