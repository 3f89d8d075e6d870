"""Stack settings: everything that differs between dev, staging and prod, read once into a typed model.

Values live in `Pulumi.<stack>.yaml` (or an ESC environment) under the `tenancy:` namespace, plus
`aws:region`. `from_config` takes the flat config map Pulumi hands a program, so the Pulumi program and the
offline tooling read settings the same way. Components receive `StackSettings`, never config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from . import naming, safe_yaml, sharding
from .problems import InvalidInput, Problem, join_path

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


class VaultSettings(_Model):
    address: str = Field(description="Vault (or OpenBao) address, e.g. https://vault.example.com:8200.")
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


class RegistrySettings(_Model):
    enabled: bool = True
    keyspace: str = "tenant_ops"
    table: str = "tenant_configs"
    region: Optional[str] = Field(None, description="Keyspaces region; default aws:region.")
    auth: Literal["sigv4", "service-specific"] = "sigv4"
    username: Optional[str] = None
    target_cluster: str = "https://kubernetes.default.svc"

    @field_validator("keyspace", "table")
    @classmethod
    def _cql_identifier(cls, value: str) -> str:
        import re

        if not re.match(r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$", value):
            raise ValueError(f"{value!r} is not a Keyspaces name (letter first, letters, digits, '_', at most 48)")
        return value


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


class GeneratorResources(_Model):
    cpu_request: str = "50m"
    memory_request: str = "128Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"


class ArgoCdSettings(_Model):
    enabled: bool = False
    namespace: str = "argocd"
    generator_image: str = "ghcr.io/calypr/tenancy-generator:0.1.0"
    requeue_after_seconds: int = Field(180, ge=10, le=86400)
    project: str = "default"
    generator_replicas: int = Field(2, ge=1, le=10)
    generator_resources: GeneratorResources = Field(default_factory=GeneratorResources)
    cache_ttl_seconds: int = Field(30, ge=0, le=3600, description="How long the generator reuses a registry read.")
    request_timeout_seconds: int = Field(30, ge=1, le=300, description="Argo CD's timeout for one generator call.")
    prune: bool = Field(False, description="Let tenant Applications delete objects that left their repo path.")
    generator_role_arn: Optional[str] = Field(
        None, description="IAM role (IRSA) with cassandra:Select on the registry table, for SigV4 reads.")

    @field_validator("generator_role_arn")
    @classmethod
    def _role_arn(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value.startswith("arn:aws") or ":role/" not in value):
            raise ValueError("must be an IAM role ARN")
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
    argocd: ArgoCdSettings = Field(default_factory=ArgoCdSettings)
    catalogue: str = Field("tenants.yaml", description="Catalogue path, relative to the project.")
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
                problems.append(Problem(source, key, "unknown config key"))
            continue
        if field in ("stack", "secretKeys", "region"):
            problems.append(Problem(source, key, "unknown config key"))
            continue
        data[field] = _decode(value)
    try:
        settings = StackSettings.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = error["loc"]
            key = ("aws:region" if loc and loc[0] == "region" else f"{NAMESPACE}:{loc[0]}") if loc else ""
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown config key" if len(loc) == 1 else "unknown field"
            problems.append(Problem(source, join_path(key, *loc[1:]), message))
        raise InvalidInput(problems) from None
    if settings.registry.enabled and settings.registry.auth == "service-specific" and REGISTRY_PASSWORD_KEY not in config:
        problems.append(Problem(source, REGISTRY_PASSWORD_KEY, "required with service-specific registry credentials"))
    if problems:
        raise InvalidInput(problems)
    return settings


def _decode(value: Any) -> Any:
    # Pulumi hands object and list config values to programs as JSON strings.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def read_stack_file(project_dir: Path, stack: str) -> tuple[dict[str, str], frozenset[str]]:
    """The flat config map of `Pulumi.<stack>.yaml`, as Pulumi would give it to the program.

    Encrypted `secure:` values cannot be read offline; they become "[secret]" and their keys are secret.
    """
    path = project_dir / f"Pulumi.{stack}.yaml"
    try:
        doc = safe_yaml.load(path)
    except FileNotFoundError:
        raise InvalidInput([Problem(path.name, "", f"no stack {stack!r}: {path.name} does not exist")]) from None
    except safe_yaml.YamlRefused as exc:
        raise InvalidInput([Problem(path.name, "", str(exc))]) from None
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
        pem = (project_dir / name).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput([Problem(*where, f"cannot read {name!r}: {exc.strerror}")]) from None
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise InvalidInput([Problem(*where, f"{name!r} is not a PEM certificate ({exc})")]) from None
    return pem


def read_vault_ca_cert(project_dir: Path, settings: StackSettings) -> Optional[str]:
    """The PEM named by `tenancy:vault.kubernetesAuth.caCertFile` (the cluster's CA, for Vault to call it)."""
    return _read_pem(project_dir, settings, settings.vault.kubernetes_auth.ca_cert_file,
                     "tenancy:vault.kubernetesAuth.caCertFile")


def read_vault_server_ca(project_dir: Path, settings: StackSettings) -> Optional[str]:
    """The PEM named by `tenancy:vault.caCertFile` (the CA of Vault's own TLS certificate)."""
    return _read_pem(project_dir, settings, settings.vault.ca_cert_file, "tenancy:vault.caCertFile")


def read_vault_pems(project_dir: Path, settings: StackSettings) -> tuple[Optional[str], Optional[str]]:
    """(cluster CA for Vault, Vault's server CA), InvalidInput listing the problems of both files together."""
    pems: list[Optional[str]] = []
    problems: list[Problem] = []
    for read in (read_vault_ca_cert, read_vault_server_ca):
        try:
            pems.append(read(project_dir, settings))
        except InvalidInput as invalid:
            problems.extend(invalid.problems)
    if problems:
        raise InvalidInput(problems)
    return pems[0], pems[1]


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
    if index is not None:
        shard_config(project_dir, stack)
    config, secret_keys = read_stack_file(project_dir, environment)
    settings = from_config(config, stack=environment, secret_keys=secret_keys)
    check_shard(settings, stack)
    return settings
