"""Stack settings: everything that differs between dev, staging and prod, read once into a typed model.

Values live in `Pulumi.<stack>.yaml` (or an ESC environment) under the `tenancy:` namespace, plus
`aws:region`. `from_config` takes the flat config map Pulumi hands a program, so the Pulumi program and the
offline tooling read settings the same way. Components receive `StackSettings`, never config.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, Mapping, NamedTuple, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from . import certificates, images, naming, safe_yaml, sharding
from .problems import InvalidInput, Problem, did_you_mean, join_path, pydantic_message

AWS_REGIONS = frozenset({
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
    "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "cn-north-1", "cn-northwest-1",
    "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2",
    "eu-west-3", "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1",
    "us-east-2", "us-gov-east-1", "us-gov-west-1", "us-west-1", "us-west-2",
})

def check_cidrs(value: list[str]) -> list[str]:
    """Validator for CIDR lists, in stack settings and the catalogue alike: host bits set is a typo, not a range."""
    import ipaddress

    for cidr in value:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ValueError(f"{cidr!r} is not a CIDR block ({exc})") from None
    return value


# An allow-listed registry: a host (with a dot or port, or `localhost`) and optional repository path, matched
# against an image's fully qualified name up to a '/', so `ghcr.io/acme` admits `ghcr.io/acme/tool:1` but not
# `ghcr.io/acme-evil/tool` nor `ghcr.io.evil.example/x`.
_REGISTRY = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:[0-9]{1,5})?|localhost(:[0-9]{1,5})?"
                       r"|[a-z0-9]([a-z0-9-]*[a-z0-9])?:[0-9]{1,5})(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


def check_registries(value: Optional[list[str]]) -> Optional[list[str]]:
    """Validator for registry allow-lists, in stack settings and the catalogue alike."""
    for entry in value or []:
        if not _REGISTRY.match(entry):
            raise ValueError(f"{entry!r} is not a registry: give a host with a dot or a port (docker.io, "
                             "ghcr.io/org, registry.local:5000), optionally a repository path, no trailing '/'")
    return value


def check_object_names(value: Optional[list[str]]) -> Optional[list[str]]:
    """Validator for storage- and priority-class allow-lists: Kubernetes object names (DNS-1123 subdomains)."""
    for entry in value or []:
        if not naming.is_dns1123_subdomain(entry):
            raise ValueError(f"{entry!r} is not a Kubernetes object name (DNS-1123 subdomain)")
    return value


NAMESPACE = "tenancy"
SECRET_PLACEHOLDER = "[secret]"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class KubernetesSettings(_Model):
    context: Optional[str] = Field(None, description="kubeconfig context of the target cluster.")
    cluster_name: str = Field("in-cluster", description="Argo CD destination cluster name for tenant apps.")
    dns_namespace: str = "kube-system"
    api_server_cidrs: list[str] = Field(
        default_factory=list,
        description="Where the API server's endpoints live (EKS: the control-plane ENI subnets). Network policies "
                    "apply after the Service is translated, so the Argo executor's egress names these, not the Service IP.")
    api_server_port: int = Field(443, ge=1, le=65535)
    artifact_store_cidrs: list[str] = Field(
        default_factory=lambda: ["0.0.0.0/0"],
        description="HTTPS egress for workflow pods to the artifact store. S3 publishes no small stable range, so "
                    "the default is every public address on 443 (private ranges and metadata stay excluded).")

    _cidrs = field_validator("api_server_cidrs", "artifact_store_cidrs")(classmethod(lambda cls, v: check_cidrs(v)))


class VaultMountSettings(_Model):
    path: str = "kv"
    create: bool = Field(True, description="false adopts an existing mount at `path`.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        # The mount is part of every tenant policy's path: a glob here would widen all of them.
        problem = naming.vault_path_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class VaultKubernetesAuthSettings(_Model):
    path: str = "kubernetes"
    create: bool = True
    host: str = "https://kubernetes.default.svc"
    ca_cert_file: Optional[str] = None
    audience: str = "vault"


# Names of the API server that resolve only inside the cluster (the `kubernetes` Service in `default`).
IN_CLUSTER_API_HOSTS = frozenset({"kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                  "kubernetes.default.svc.cluster.local"})


class VaultSettings(_Model):
    address: str = Field(description="Vault (or OpenBao) address, e.g. https://vault.example.com:8200.")
    placement: Literal["in-cluster", "external"] = Field(
        "in-cluster", description="Where Vault runs: as pods of the tenants' cluster (it then calls the API server "
                                  "with its pod's service-account CA and token) or outside it.")
    ca_cert_file: Optional[str] = Field(
        None, description="PEM of the CA(s) that issued Vault's TLS certificate, relative to the project; External "
                          "Secrets trusts it (SecretStore caBundle) instead of only the system roots.")
    namespace: Optional[str] = None
    kv_mount: VaultMountSettings = Field(default_factory=VaultMountSettings)
    kubernetes_auth: VaultKubernetesAuthSettings = Field(default_factory=VaultKubernetesAuthSettings)
    token_ttl_seconds: int = Field(900, ge=60, le=86400)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https:// address (plain http only for loopback)")
        return value


class RegistryEndpointSettings(_Model):
    """A Cassandra-compatible registry other than Amazon Keyspaces (Apache Cassandra, ScyllaDB, ...)."""

    host: str = Field(description="DNS name or IP address the registry provider and the generator dial over TLS; "
                                  "the server's certificate is checked against it.")
    port: int = Field(9142, ge=1, le=65535)
    ca_cert_file: Optional[str] = Field(
        None, description="PEM of the CA(s) behind the endpoint's TLS certificate, relative to the project; "
                          "without it the system roots are trusted.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        import ipaddress

        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        if not naming.is_dns1123_subdomain(value):
            raise ValueError(f"{value!r} is not a host name or IP address: give the host alone, without scheme, "
                             "port or path (the port is endpoint.port)")
        return value


class RegistrySettings(_Model):
    enabled: bool = True
    keyspace: str = "tenant_ops"
    table: str = "tenant_configs"
    region: Optional[str] = Field(None, description="Keyspaces region; default aws:region. It is also the data "
                                                     "centre the driver routes to (Keyspaces names its one after the "
                                                     "region), so with `endpoint` it names the endpoint's local one.")
    auth: Literal["sigv4", "service-specific"] = "sigv4"
    username: Optional[str] = None
    target_cluster: str = "https://kubernetes.default.svc"
    endpoint: Optional[RegistryEndpointSettings] = Field(
        None, description="Another Cassandra-compatible endpoint than Amazon Keyspaces: its keyspace and table are "
                          "the platform's (tenancy creates no Keyspaces resources), reached with service-specific "
                          "credentials.")
    migrate_from: Optional[str] = Field(
        None, description="<keyspace>.<table> the rows live in now: confirms a change of keyspace or table (a new "
                          "table starts empty). Without it tenancy refuses to move the rows.")

    @field_validator("migrate_from")
    @classmethod
    def _migrate_from(cls, value: Optional[str]) -> Optional[str]:
        import re

        if value is not None and not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_]{0,47}\.[a-zA-Z][a-zA-Z0-9_]{0,47}", value):
            raise ValueError(f"{value!r} is not <keyspace>.<table>")
        return value

    @field_validator("keyspace", "table")
    @classmethod
    def _cql_identifier(cls, value: str) -> str:
        import re

        if not re.match(r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$", value):
            raise ValueError(f"{value!r} is not a Keyspaces name (letter first, letters, digits, '_', at most 48)")
        return value

    @property
    def in_keyspaces(self) -> bool:
        """tenancy creates the registry's keyspace and table in Amazon Keyspaces."""
        return self.enabled and self.endpoint is None


class ArtifactSettings(_Model):
    credentials: Literal["static", "irsa"] = "static"
    versioning: bool = True
    noncurrent_version_expire_days: int = Field(30, ge=1, le=3650)
    force_destroy: bool = Field(False, description="Lets `pulumi destroy` empty buckets; never in stacks that protect data.")


class IrsaSettings(_Model):
    oidc_provider_arn: str = Field(description="arn:aws:iam::<account>:oidc-provider/<issuer host/path>")

    @field_validator("oidc_provider_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not value.startswith("arn:aws") or ":oidc-provider/" not in value:
            raise ValueError("must be an IAM OIDC provider ARN")
        return value

    @property
    def issuer(self) -> str:
        """The issuer host/path, the prefix of the `:sub`/`:aud` condition keys."""
        return self.oidc_provider_arn.split(":oidc-provider/", 1)[1]


class MiniClusterSettings(_Model):
    api_version: Literal["v1alpha2", "v1alpha1"] = Field(
        "v1alpha2", description="The installed Flux Operator's API: v1alpha2 (0.2.x) or v1alpha1 (0.1.x).")
    pod_toleration_restriction: bool = Field(
        False, description="The API server runs the PodTolerationRestriction admission plugin, which gives pods the "
                           "toleration a dedicated tenant's Namespace annotation names; MiniCluster pods have no "
                           "tolerations field of their own.")


class WorkflowsSettings(_Model):
    executor_image: str = Field(
        "quay.io/argoproj/argoexec:v3.7.9",
        description="The image Argo's workflow controller runs as the init and wait containers of every workflow pod "
                    "(its `executor.image`, by default quay.io/argoproj/argoexec at the controller's version); tenant "
                    "registry allow-lists must admit it.")

    _image = field_validator("executor_image")(classmethod(lambda cls, v: images.check_reference(v)))


class GeneratorResources(_Model):
    cpu_request: str = "50m"
    memory_request: str = "128Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"


class ArgoCdSettings(_Model):
    enabled: bool = False
    namespace: str = "argocd"
    generator_image: str = "ghcr.io/calypr/tenancy-generator:0.1.0"
    generator_image_digest: Optional[str] = Field(
        None, description="sha256:<64 hex> pins the generator image by digest (the tag then only documents it).")
    requeue_after_seconds: int = Field(180, ge=10, le=86400)
    generator_replicas: int = Field(2, ge=1, le=10)
    await_rollout: bool = Field(
        True, description="`pulumi up` waits for the generator Deployment to be ready and its Service to have "
                          "endpoints (pulumi-kubernetes' await logic); false skips that wait, for clusters "
                          "without nodes or platforms that roll the image out separately.")
    generator_resources: GeneratorResources = Field(default_factory=GeneratorResources)
    cache_ttl_seconds: int = Field(30, ge=0, le=3600, description="How long the generator reuses a registry read.")
    request_timeout_seconds: int = Field(30, ge=1, le=300, description="Argo CD's timeout for one generator call.")
    prune: bool = Field(False, description="Let tenant Applications delete objects that left their repo path.")
    generator_role_arn: Optional[str] = Field(
        None, description="IAM role (IRSA) with cassandra:Select on the registry table, for SigV4 reads.")
    allow_empty: bool = Field(
        False, description="Let the generator answer with no tenant at all (a platform without tenants yet); "
                           "otherwise an empty registry is refused, so Argo CD keeps every Application.")
    application_set_controller_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "argocd-applicationset-controller"},
        description="Pod labels of the ApplicationSet controller: the only pods the generator accepts traffic from.")
    registry_egress_cidrs: list[str] = Field(
        default_factory=lambda: ["0.0.0.0/0"],
        description="Where the generator may connect on 9142 (Keyspaces) and, with SigV4, 443 (STS). Public "
                    "endpoints publish no small stable range, so the default is every public address; a VPC "
                    "endpoint's subnets narrow it.")

    _cidrs = field_validator("registry_egress_cidrs")(classmethod(lambda cls, v: check_cidrs(v)))

    @field_validator("generator_role_arn")
    @classmethod
    def _role_arn(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value.startswith("arn:aws") or ":role/" not in value):
            raise ValueError("must be an IAM role ARN")
        return value

    @field_validator("generator_image_digest")
    @classmethod
    def _digest(cls, value: Optional[str]) -> Optional[str]:
        import re

        if value is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
            raise ValueError("must be sha256: followed by 64 lowercase hex digits")
        return value

    @field_validator("generator_image")
    @classmethod
    def _image(cls, value: str) -> str:
        if "@" in value:
            raise ValueError("name the image by repository and tag; pin its digest with generatorImageDigest")
        return value

    @property
    def generator_image_ref(self) -> str:
        """The image as the pod pulls it: by digest when one is pinned."""
        return f"{self.generator_image}@{self.generator_image_digest}" if self.generator_image_digest else self.generator_image


class AllowedDefaults(_Model):
    """Platform-wide allow-lists, for tenants whose catalogue entry names none; empty = no restriction."""

    registries: list[str] = Field(default_factory=list, description="Image registries tenant pods may use.")
    storage_classes: list[str] = Field(default_factory=list, description="Storage classes tenant PVCs may use.")
    priority_classes: list[str] = Field(default_factory=list, description="Priority classes tenant pods may use.")

    _registries = field_validator("registries")(classmethod(lambda cls, v: check_registries(v)))
    _names = field_validator("storage_classes", "priority_classes")(classmethod(lambda cls, v: check_object_names(v)))


class AdmissionSettings(_Model):
    """The ValidatingAdmissionPolicies that enforce node isolation and the allow-lists (components/admission.py)."""

    namespace: str = Field("tenancy-system", description="Namespace tenancy creates for the policies' parameters; "
                                                           "only platform admins may write in it.")
    exempt_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-system"],
        description="Namespaces outside tenancy whose pods may tolerate or select tenant nodes by key "
                    "(node agents, CNI). Every other namespace is held to the node-isolation rule.")
    allowed: AllowedDefaults = Field(default_factory=AllowedDefaults)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not naming.is_dns1123_label(value):
            raise ValueError(f"{value!r} is not a namespace name (DNS-1123 label)")
        return value

    @field_validator("exempt_namespaces")
    @classmethod
    def _exempt(cls, value: list[str]) -> list[str]:
        for name in value:
            if not naming.is_dns1123_label(name) or name.startswith(naming.NAMESPACE_PREFIX):
                raise ValueError(f"{name!r} must be a namespace name outside tenancy's "
                                 f"{naming.NAMESPACE_PREFIX}* namespaces")
        return value


class StackSettings(_Model):
    """The typed form of one stack's configuration."""

    stack: str
    environment: str
    org: str
    region: str = Field(description="aws:region: the default region for tenants and platform resources.")
    protect_data: bool = False
    quota_scale: float = Field(1.0, gt=0, le=100)
    cluster_admin_group: str = "platform-admins"
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    vault: VaultSettings
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    irsa: Optional[IrsaSettings] = None
    minicluster: MiniClusterSettings = Field(default_factory=MiniClusterSettings)
    workflows: WorkflowsSettings = Field(default_factory=WorkflowsSettings)
    argocd: ArgoCdSettings = Field(default_factory=ArgoCdSettings)
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    catalogue: str = Field("tenants.yaml", description="Catalogue path, relative to the project.")
    allow_no_tenants: bool = Field(
        False, description="Accept a catalogue that puts no tenant in this stack. Off, such a catalogue is refused: "
                           "an emptied list or misspelt environments would otherwise remove every tenant.")
    shards: int = Field(1, ge=1, le=256, description="Tenant stacks of this environment: 1 keeps platform and "
                                                     "tenants in one stack; N puts the tenants in <env>-shard-0..N-1.")
    stack_budget: int = Field(5000, ge=1, description="Most resources one stack of this environment may hold.")
    secret_keys: frozenset[str] = Field(frozenset(), description="Config keys Pulumi holds as secrets.")

    @field_validator("org")
    @classmethod
    def _org(cls, value: str) -> str:
        if not naming.is_dns1123_label(value) or len(value) > 20:
            raise ValueError("must be a DNS-1123 label of at most 20 characters")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value not in AWS_REGIONS:
            raise ValueError(f"{value!r} is not an AWS region")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "StackSettings":
        if self.environment != self.stack:
            raise ValueError(f"tenancy:environment {self.environment!r} must equal the stack name {self.stack!r}")
        if self.protect_data and self.artifacts.force_destroy:
            raise ValueError("tenancy:artifacts.forceDestroy cannot be on in a stack with tenancy:protectData")
        if self.registry.auth == "service-specific" and not self.registry.username:
            raise ValueError("tenancy:registry.username is required with service-specific credentials")
        if self.registry.endpoint is not None and self.registry.auth == "sigv4":
            raise ValueError("tenancy:registry.endpoint needs tenancy:registry.auth: service-specific (SigV4 "
                             "authenticates to Amazon Keyspaces only)")
        if self.argocd.enabled and not self.registry.enabled:
            raise ValueError("tenancy:argocd.enabled needs tenancy:registry.enabled: the generator reads the registry")
        if self.argocd.enabled and self.registry.auth == "sigv4" and not (self.irsa or self.argocd.generator_role_arn):
            raise ValueError("the generator reads the registry with SigV4 and needs an AWS identity: set tenancy:irsa "
                             "(tenancy creates its role) or tenancy:argocd.generatorRoleArn")
        return self


# Config keys outside the tenancy namespace that the program reads.
_FOREIGN_KEYS = {"aws:region": "region"}
# Config keys of other namespaces that are allowed and ignored (provider plugins read them themselves).
_IGNORED_NAMESPACES = ("aws:", "kubernetes:", "vault:", "random:", "pulumi:")
# Secret config the composition root reads as an Output secret; it never enters the settings model.
REGISTRY_PASSWORD_KEY = f"{NAMESPACE}:registryPassword"


def from_config(config: Mapping[str, Any], *, stack: str, secret_keys: frozenset[str] = frozenset(),
                source: Optional[str] = None) -> StackSettings:
    """Settings from a flat Pulumi config map ({"tenancy:org": "calypr", ...}); InvalidInput on any problem."""
    source = source or f"Pulumi.{stack}.yaml"
    data: dict[str, Any] = {"stack": stack, "secretKeys": secret_keys}
    problems: list[Problem] = []
    for key, value in config.items():
        if key in _FOREIGN_KEYS:
            data[_FOREIGN_KEYS[key]] = value
            continue
        if key == REGISTRY_PASSWORD_KEY:
            if key not in secret_keys:
                problems.append(Problem(source, key, "must be set with `pulumi config set --secret`"))
            continue
        namespace, _, field = key.partition(":")
        if namespace != NAMESPACE:
            if not key.startswith(_IGNORED_NAMESPACES):
                problems.append(Problem(source, key, "unknown config key" + did_you_mean(key, _config_keys())))
            continue
        if field in ("stack", "secretKeys", "region"):
            problems.append(Problem(source, key, "unknown config key" + did_you_mean(key, _config_keys())))
            continue
        data[field] = _decode(value)
    try:
        settings = StackSettings.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = error["loc"]
            key = ("aws:region" if loc and loc[0] == "region" else f"{NAMESPACE}:{loc[0]}") if loc else ""
            message = pydantic_message(error, StackSettings)
            if error["type"] == "extra_forbidden" and len(loc) == 1:
                message = "unknown config key" + did_you_mean(key, _config_keys())
            problems.append(Problem(source, join_path(key, *loc[1:]), message))
        raise InvalidInput(problems) from None
    problems += _vault_placement_problems(settings, source)
    if settings.registry.enabled and settings.registry.auth == "service-specific" and REGISTRY_PASSWORD_KEY not in config:
        problems.append(Problem(source, REGISTRY_PASSWORD_KEY, "required with service-specific registry credentials"))
    if problems:
        raise InvalidInput(problems)
    return settings


def _vault_placement_problems(settings: StackSettings, source: str) -> list[Problem]:
    """A Kubernetes auth config a Vault outside the cluster cannot use.

    With `kubernetes_ca_cert` empty (and `disable_local_ca_jwt` false, its default, which tenancy keeps), Vault
    reads the API server's CA from its own pod's /var/run/secrets/kubernetes.io/serviceaccount/ca.crt when the
    config is written (hashicorp/vault-plugin-auth-kubernetes v0.24.1 path_config.go `pathConfigWrite` ->
    backend.go `updateTLSConfig`; OpenBao's builtin copy alike), so outside a pod the write fails; and the
    in-cluster Service name resolves only inside the cluster. Only a backend tenancy creates is configured here.
    """
    vault = settings.vault
    auth = vault.kubernetes_auth
    if vault.placement != "external" or not auth.create:
        return []
    problems = []
    key = f"{NAMESPACE}:vault.kubernetesAuth"
    if auth.ca_cert_file is None:
        problems.append(Problem(source, f"{key}.caCertFile", "required with tenancy:vault.placement: external: "
                                "without the API server's CA Vault reads its pod's service-account CA file, which "
                                "a Vault outside the cluster does not have"))
    # kubernetes_host is a URL, a host:port pair or a host (path_config.go's field description).
    host = (urlsplit(auth.host if "://" in auth.host else f"//{auth.host}").hostname or "").rstrip(".")
    if host in IN_CLUSTER_API_HOSTS:
        problems.append(Problem(source, f"{key}.host", f"{auth.host!r} resolves only inside the cluster; with "
                                "tenancy:vault.placement: external give the API server's address Vault reaches"))
    return problems


def _config_keys() -> list[str]:
    """Every config key the program reads, to suggest the nearest one for a misspelt key."""
    own = [f.alias or n for n, f in StackSettings.model_fields.items() if n not in ("stack", "secret_keys", "region")]
    return [*_FOREIGN_KEYS, REGISTRY_PASSWORD_KEY, *(f"{NAMESPACE}:{k}" for k in own)]


def _decode(value: Any) -> Any:
    # Pulumi hands object and list config values to programs as JSON strings.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested or sized past what Python decodes: the model says
            return value
    return value


def read_stack_file(project_dir: Path, stack: str) -> tuple[dict[str, str], frozenset[str]]:
    """The flat config map of `Pulumi.<stack>.yaml`, as Pulumi would give it to the program.

    Encrypted `secure:` values cannot be read offline; they become "[secret]" and their keys are secret.
    """
    path = project_dir / f"Pulumi.{stack}.yaml"
    try:
        doc = safe_yaml.load(path)
    except safe_yaml.YamlRefused as refused:
        raise InvalidInput([Problem(path.name, where, why) for where, why in refused.problems]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise InvalidInput([Problem(path.name, "config", "must be a mapping of config keys")])
    config: dict[str, str] = {}
    secret: set[str] = set()
    for key, value in (doc.get("config") or {}).items():
        full_key = key if ":" in key else f"{NAMESPACE}:{key}"
        masked, is_secret = _mask_secure(value)
        if is_secret:
            secret.add(full_key)
        config[full_key] = masked if isinstance(masked, str) else json.dumps(masked)
    return config, frozenset(secret)


def _mask_secure(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER, True
        items = {k: _mask_secure(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(s for _, s in items.values())
    if isinstance(value, list):
        items = [_mask_secure(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _read_pem(project_dir: Path, settings: StackSettings, name: Optional[str], key: str) -> Optional[str]:
    """The PEM certificate(s) in `name` (relative to the project), checked like any other input."""
    if name is None:
        return None
    where = (f"Pulumi.{settings.stack}.yaml", key)
    try:
        return certificates.read_confined(project_dir, name)
    except ValueError as exc:
        raise InvalidInput([Problem(*where, str(exc))]) from None


def read_vault_ca_cert(project_dir: Path, settings: StackSettings) -> Optional[str]:
    """The PEM named by `tenancy:vault.kubernetesAuth.caCertFile` (the cluster's CA, for Vault to call it)."""
    return _read_pem(project_dir, settings, settings.vault.kubernetes_auth.ca_cert_file,
                     "tenancy:vault.kubernetesAuth.caCertFile")


def read_vault_server_ca(project_dir: Path, settings: StackSettings) -> Optional[str]:
    """The PEM named by `tenancy:vault.caCertFile` (the CA of Vault's own TLS certificate)."""
    return _read_pem(project_dir, settings, settings.vault.ca_cert_file, "tenancy:vault.caCertFile")


def read_registry_ca(project_dir: Path, settings: StackSettings) -> Optional[str]:
    """The PEM named by `tenancy:registry.endpoint.caCertFile` (the CA of the registry endpoint's certificate)."""
    endpoint = settings.registry.endpoint
    return _read_pem(project_dir, settings, endpoint.ca_cert_file if endpoint else None,
                     "tenancy:registry.endpoint.caCertFile")


class StackPems(NamedTuple):
    """The PEM files the settings name, read at the edge so components never read files."""

    vault_kubernetes_ca: Optional[str]
    vault_server_ca: Optional[str]
    registry_ca: Optional[str]


def read_pems(project_dir: Path, settings: StackSettings) -> StackPems:
    """Every PEM the settings name; InvalidInput listing the problems of all the files together."""
    pems: list[Optional[str]] = []
    problems: list[Problem] = []
    for read in (read_vault_ca_cert, read_vault_server_ca, read_registry_ca):
        try:
            pems.append(read(project_dir, settings))
        except InvalidInput as invalid:
            problems.extend(invalid.problems)
    if problems:
        raise InvalidInput(problems)
    return StackPems(*pems)


def known_stacks(project_dir: Path) -> tuple[str, ...]:
    """The environments of this project: one `Pulumi.<stack>.yaml` each (shard stacks are not environments)."""
    names = (p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
    return tuple(sorted(n for n in names if not sharding.is_shard_stack(n)))


def shard_config(project_dir: Path, stack: str) -> tuple[dict[str, str], frozenset[str]]:
    """A shard stack's own config: its file may exist (a passphrase backend keeps its salt there) but never
    repeats a setting; those are read from the environment's file, so they are written once."""
    if not (project_dir / f"Pulumi.{stack}.yaml").exists():
        return {}, frozenset()
    config, secret_keys = read_stack_file(project_dir, stack)
    check_shard_config(stack, config)
    return config, secret_keys


def check_shard_config(stack: str, config: Mapping[str, Any], allowed: frozenset[str] = frozenset()) -> None:
    """InvalidInput for every setting a shard stack's own config holds (`allowed`: keys the offline tooling sets)."""
    settings_keys = sorted(k for k in config if k.startswith((f"{NAMESPACE}:", *_FOREIGN_KEYS)) and k not in allowed)
    if settings_keys:
        environment = sharding.parse_stack(stack)[0]
        raise InvalidInput([Problem(f"Pulumi.{stack}.yaml", key, f"a shard stack takes its settings from "
                                                                  f"Pulumi.{environment}.yaml; set it there")
                            for key in settings_keys])


def check_shard(settings: StackSettings, stack: str) -> None:
    """A shard stack must be one of its environment's `tenancy:shards`."""
    index = sharding.parse_stack(stack)[1]
    if index is not None and (settings.shards == 1 or index >= settings.shards):
        raise InvalidInput([Problem(f"Pulumi.{settings.environment}.yaml", f"{NAMESPACE}:shards",
                                    f"stack {stack!r} is not a shard of this environment, which has "
                                    f"{settings.shards} shard(s): {', '.join(sharding.stacks_of(settings.environment, settings.shards))}")])


def load_stack(project_dir: Path, stack: str) -> StackSettings:
    """The settings of a stack; a shard stack (`<env>-shard-<i>`) has its environment's."""
    environment, index = sharding.parse_stack(stack)
    stacks = known_stacks(project_dir)
    if environment not in stacks:
        raise InvalidInput([Problem(f"Pulumi.{environment}.yaml", "", f"no stack {stack!r}; the stacks of this project "
                                    f"are {', '.join(stacks) or 'none'}{did_you_mean(environment, stacks)}")])
    if index is not None:
        shard_config(project_dir, stack)
    config, secret_keys = read_stack_file(project_dir, environment)
    settings = from_config(config, stack=environment, secret_keys=secret_keys)
    check_shard(settings, stack)
    return settings
