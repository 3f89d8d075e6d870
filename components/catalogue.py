"""The tenant catalogue, `tenants.yaml`: its typed model, its loading, and every rule it must satisfy.

Loading is the edge: the file is read once, every tenant is merged per environment
(defaults < defaults.overrides[env] < tenant < tenant.overrides[env]) and validated for every environment
it names, and the derived names are checked for the stack being deployed. All problems are collected and
raised together as `InvalidInput` before the program registers a single resource.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Optional

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from . import naming, quantity, safe_yaml
from .problems import InvalidInput, Problem, join_path
from .settings import AWS_REGIONS, StackSettings, check_cidrs, check_object_names, check_registries


# ResourceQuota keys that count objects: they stay integers and are never scaled per stack.
_OBJECT_COUNT_KEYS = frozenset({"pods", "services", "secrets", "configmaps", "persistentvolumeclaims",
                                "replicationcontrollers", "resourcequotas", "services.loadbalancers",
                                "services.nodeports"})
_COMPUTE_QUOTA_KEY = re.compile(
    r"^((requests|limits)\.)?(cpu|memory|ephemeral-storage|storage)$"
    r"|^requests\.[a-z0-9.-]+/[a-z0-9.-]+$"
    r"|^[a-z0-9.-]+\.storageclass\.storage\.k8s\.io/(requests\.storage|persistentvolumeclaims)$")
_PARAM_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_RESERVED_PARAMS = frozenset({"tenantId", "namespace", "cluster", "repoURL", "path", "labels", "params"})
_GROUP = re.compile(r"^[^\s:][^\s]{0,255}$")
_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_IMAGE = re.compile(r"^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
                    r"|^[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$")
_KEY_PREFIX = re.compile(r"^([A-Za-z0-9!_.*'()-]+/)*$")


def is_object_count(key: str) -> bool:
    return key in _OBJECT_COUNT_KEYS or key.startswith("count/")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


def _quantities_as_text(value: Any) -> Any:
    # YAML reads `pods: 10` as a number; quantities are strings to Kubernetes, so accept both spellings.
    if isinstance(value, dict):
        return {k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in value.items()}
    return value


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        why = naming.label_key_problem(key) or naming.label_value_problem(item)
        if why:
            raise ValueError(why)
    return value


class Repo(_Model):
    url: str = Field(description="Git URL of the tenant's workflow repository (https:// or git@).")
    default_branch: str = Field("main", min_length=1, max_length=255)
    path: str = Field(".", description="Path inside the repository that Argo CD deploys.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^(https://[^\s/@]+/\S+|git@[^\s:]+:\S+|ssh://\S+)$", value):
            raise ValueError("must be an https://, ssh:// or git@host:path repository URL without credentials")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be a relative path inside the repository, without '..'")
        return value


class Owners(_Model):
    admins: list[str] = Field(default_factory=list, description="Kubernetes groups bound to tenant-admin.")
    developers: list[str] = Field(default_factory=list, description="Kubernetes groups bound to tenant-developer.")

    @field_validator("admins", "developers")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not _GROUP.match(group) or group.startswith("system:"):
                raise ValueError(f"{group!r} is not a usable group name (no spaces, not a system: group)")
        return value


class Artifacts(_Model):
    bucket: Optional[str] = Field(None, description="Explicit bucket name; default <org>-<tenant>-<env>-artifacts.")
    key_prefix: str = Field("workflows/", description="Prefix under which the tenant's artifacts live; ends with '/'.")
    storage_class: Literal["standard", "archive", "temporary"] = "standard"
    archive_after_days: int = Field(30, ge=1, le=3650)
    expire_after_days: int = Field(14, ge=1, le=3650)
    encryption: Literal["aes256", "kms"] = "aes256"
    versioning: Optional[bool] = Field(None, description="Default: the stack's tenancy:artifacts.versioning.")
    credentials: Optional[Literal["static", "irsa"]] = Field(
        None, description="Default: the stack's tenancy:artifacts.credentials.")
    archive_logs: bool = True
    garbage_collection: bool = Field(False, description="Grants s3:DeleteObject so Argo can collect artifacts.")

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.endswith("/") or value.startswith("/") or not _KEY_PREFIX.match(value) or len(value) > 256:
            raise ValueError("must be a relative S3 key prefix of safe characters ending with '/', "
                             "without '*' wildcards that would widen the IAM policy")
        if "*" in value or any(part in ("", ".", "..") for part in value[:-1].split("/")):
            raise ValueError("must not contain '*', empty, '.' or '..' segments")
        return value


class Limits(_Model):
    default_request: dict[str, str] = Field(default_factory=lambda: {"cpu": "100m", "memory": "128Mi"})
    default: dict[str, str] = Field(default_factory=lambda: {"cpu": "1", "memory": "1Gi"})
    max: dict[str, str] = Field(default_factory=dict)

    _as_text = field_validator("default_request", "default", "max", mode="before")(_quantities_as_text)

    @field_validator("default_request", "default", "max")
    @classmethod
    def _quantities(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if key not in ("cpu", "memory", "ephemeral-storage"):
                raise ValueError(f"{key!r}: only cpu, memory and ephemeral-storage are limited per container")
            if quantity.parse(str(item)) < 0:
                raise ValueError(f"{key}: {item!r} is negative")
        return {k: str(v) for k, v in value.items()}


class Ingress(_Model):
    pod_labels: dict[str, str] = Field(default_factory=dict, description="Labels of ingress-controller pods.")
    namespace_labels: dict[str, str] = Field(default_factory=dict, description="Labels of their namespace.")

    @field_validator("pod_labels", "namespace_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value)


class Network(_Model):
    ingress: Ingress = Field(default_factory=Ingress)
    load_balancer_cidrs: list[str] = Field(default_factory=list)
    allow_egress_to_internet: bool = False

    _cidrs = field_validator("load_balancer_cidrs")(classmethod(lambda cls, v: check_cidrs(v)))


class Isolation(_Model):
    nodes: Literal["shared", "dedicated"] = "shared"


class Allowed(_Model):
    """What the tenant's pods may use, enforced by admission policies. Absent: the stack's
    `tenancy:admission.allowed`; an empty list: no restriction."""

    registries: Optional[list[str]] = Field(
        None, description="Image registries (host and optional path, e.g. ghcr.io/calypr) of every container.")
    storage_classes: Optional[list[str]] = Field(None, description="Storage classes of PVCs and ephemeral volumes.")
    priority_classes: Optional[list[str]] = Field(None, description="Priority classes of pods.")

    _registries = field_validator("registries")(classmethod(lambda cls, v: check_registries(v)))
    _names = field_validator("storage_classes", "priority_classes")(classmethod(lambda cls, v: check_object_names(v)))


class MiniClusterSpec(_Model):
    enabled: bool = False
    size: int = Field(2, ge=1, le=1024)
    image: str = "ghcr.io/flux-framework/flux-restful-api:latest"
    command: str = ""
    users: list[str] = Field(default_factory=list, description="Flux RESTful users; each gets a generated password.")

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(f"{value!r} is not a container image reference")
        return value

    @field_validator("users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("user names must be unique")
        for user in value:
            if not _USERNAME.match(user):
                raise ValueError(f"{user!r} is not a valid user name (lowercase, digits, '_' or '-', at most 32)")
        return value


class SupplyChain(_Model):
    enabled: bool = False
    certificate: Optional[str] = Field(None, description="PEM certificate that signs the tenant's images.")
    certificate_file: Optional[str] = Field(None, description="Path to that PEM, relative to tenants.yaml.")

    @model_validator(mode="after")
    def _certificate(self) -> "SupplyChain":
        if self.certificate and self.certificate_file:
            raise ValueError("give certificate or certificateFile, not both")
        if self.enabled and not (self.certificate or self.certificate_file):
            raise ValueError("enabled supply-chain verification needs a certificate or certificateFile")
        if self.certificate:
            try:
                x509.load_pem_x509_certificate(self.certificate.encode())
            except ValueError as exc:
                raise ValueError(f"certificate is not a PEM X.509 certificate ({exc})") from None
        return self


class TenantSpec(_Model):
    """One tenant as deployed in one environment: defaults and overrides already merged."""

    name: str = Field(description="DNS-1123 label; every derived name starts from it.")
    display_name: str = ""
    team: str = Field(min_length=1, max_length=128, description="Owning team (RepoRegistration tenant).")
    lifecycle: Literal["active", "suspended", "offboarded"] = "active"
    repo: Repo
    owners: Owners = Field(default_factory=Owners)
    region: Optional[str] = Field(None, description="AWS region of the tenant's data; default the stack's aws:region.")
    labels: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    quota: dict[str, str] = Field(default_factory=dict, description="ResourceQuota spec.hard.")
    limits: Limits = Field(default_factory=Limits)
    pod_security: Literal["restricted", "baseline", "privileged"] = "restricted"
    network: Network = Field(default_factory=Network)
    isolation: Isolation = Field(default_factory=Isolation)
    allowed: Allowed = Field(default_factory=Allowed)
    minicluster: MiniClusterSpec = Field(default_factory=MiniClusterSpec)
    supply_chain: SupplyChain = Field(default_factory=SupplyChain)
    environments: Optional[list[str]] = Field(None, description="Stacks the tenant exists in; default all.")
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Per-environment values.")

    @model_validator(mode="before")
    @classmethod
    def _minicluster_pod_security(cls, data: Any) -> Any:
        # The Flux Operator's MiniCluster pods start as root (the entrypoint sets up the flux user, munge and
        # curve keys) and set no restricted securityContext, so `restricted` would reject every pod. Such a
        # namespace is raised to `baseline`: still no privileged pods, host namespaces, hostPath or added caps.
        if not isinstance(data, dict):
            return data
        key = "pod_security" if "pod_security" in data else "podSecurity"
        minicluster = data.get("minicluster")
        if isinstance(minicluster, dict) and minicluster.get("enabled") is True \
                and data.get(key, "restricted") == "restricted":
            return {**data, key: "baseline"}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not naming.is_dns1123_label(value):
            raise ValueError(f"{value!r} is not a DNS-1123 label (lowercase letters, digits and '-', "
                             "starting and ending with a letter or digit, at most 63 characters)")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and value not in AWS_REGIONS:
            raise ValueError(f"{value!r} is not an AWS region")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value)

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _PARAM_KEY.match(key):
                raise ValueError(f"param key {key!r} must be an identifier (letters, digits, '_')")
            if key in _RESERVED_PARAMS:
                raise ValueError(f"param key {key!r} is reserved by the Argo CD generator")
        return value

    _quota_as_text = field_validator("quota", mode="before")(_quantities_as_text)

    @field_validator("quota")
    @classmethod
    def _quota(cls, value: dict[str, Any]) -> dict[str, str]:
        for key, item in value.items():
            if not (is_object_count(key) or _COMPUTE_QUOTA_KEY.match(key)):
                raise ValueError(f"{key!r} is not a ResourceQuota resource name")
            amount = quantity.parse(str(item))
            if amount < 0:
                raise ValueError(f"{key}: {item!r} is negative")
            if is_object_count(key) and amount != amount.to_integral_value():
                raise ValueError(f"{key}: object counts must be whole numbers, got {item!r}")
        return {k: str(v) for k, v in value.items()}

    @property
    def uses_kms(self) -> bool:
        return self.artifacts.encryption == "kms"

    # Lifecycle, decided here once so every component reads the same rule:
    # active     - everything exists and works;
    # suspended  - credentials revoked, no pods; identities, namespace objects, data and secrets kept for resuming;
    # offboarded - identities and access objects removed; data, the namespace and its fences kept.
    @property
    def is_active(self) -> bool:
        return self.lifecycle == "active"

    @property
    def keeps_identities(self) -> bool:
        return self.lifecycle != "offboarded"


_TOP_LEVEL_KEYS = ("defaults", "tenants")
# Field names the catalogue accepts anywhere a tenant field may stand (defaults, tenant, overrides).
_TENANT_KEYS = frozenset(f.alias or n for n, f in TenantSpec.model_fields.items())


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; lists and scalars in `top` replace those in `base`."""
    merged = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _has_path(data: Any, loc: tuple) -> bool:
    for part in loc:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


class Catalogue:
    """A parsed, schema-checked catalogue. `for_stack` gives the tenants of one stack, names checked."""

    def __init__(self, source: str, base_dir: Path, defaults: dict[str, Any], entries: list[dict[str, Any]],
                 stacks: tuple[str, ...]):
        self.source = source
        self.base_dir = base_dir
        self.defaults = defaults
        self.entries = entries
        self.stacks = stacks
        # Each (tenant, environment) is merged and validated once: loading checks every environment, and
        # `for_stack` then reuses the result instead of merging and validating the same tenant again.
        self._specs: dict[tuple[int, str], tuple[Optional[TenantSpec], list[Problem]]] = {}

    @staticmethod
    def _where(index: int, entry: Mapping[str, Any]) -> str:
        name = entry.get("name")
        return f"tenants[{index}] (name={name})" if isinstance(name, str) else f"tenants[{index}]"

    def environments_of(self, entry: Mapping[str, Any]) -> list[str]:
        envs = entry.get("environments", self.defaults.get("environments"))
        return list(envs) if isinstance(envs, list) else list(self.stacks)

    def _merged(self, entry: Mapping[str, Any], env: str) -> dict[str, Any]:
        layers = [
            {k: v for k, v in self.defaults.items() if k != "overrides"},
            (self.defaults.get("overrides") or {}).get(env) or {},
            {k: v for k, v in entry.items() if k != "overrides"},
            (entry.get("overrides") or {}).get(env) or {},
        ]
        merged: dict[str, Any] = {}
        for layer in layers:
            merged = deep_merge(merged, layer)
        merged["overrides"] = entry.get("overrides") or {}
        return merged

    def _locate(self, index: int, entry: Mapping[str, Any], env: str, loc: tuple) -> str:
        """The place in the file a user must edit for a problem at `loc` of the merged tenant."""
        where = self._where(index, entry)
        if _has_path((entry.get("overrides") or {}).get(env) or {}, loc):
            return join_path(where, "overrides", env, *loc)
        if _has_path(entry, loc) or not loc:
            return join_path(where, *loc)
        if _has_path((self.defaults.get("overrides") or {}).get(env) or {}, loc):
            return join_path("defaults", "overrides", env, *loc)
        if _has_path(self.defaults, loc):
            return join_path("defaults", *loc)
        return join_path(where, *loc)

    def _spec(self, index: int, entry: Mapping[str, Any], env: str) -> tuple[Optional[TenantSpec], list[Problem]]:
        if (index, env) not in self._specs:
            self._specs[index, env] = self._validate(index, entry, env)
        return self._specs[index, env]

    def _validate(self, index: int, entry: Mapping[str, Any], env: str) -> tuple[Optional[TenantSpec], list[Problem]]:
        merged = self._merged(entry, env)
        supply = merged.get("supplyChain")
        problems: list[Problem] = []
        if isinstance(supply, dict) and isinstance(supply.get("certificateFile"), str):
            # The model checks the PEM itself, so the file is read here and handed over as `certificate`.
            cert_path = (self.base_dir / supply["certificateFile"]).resolve()
            try:
                merged["supplyChain"] = {**{k: v for k, v in supply.items() if k != "certificateFile"},
                                         "certificate": cert_path.read_text(encoding="utf-8")[:65536]}
            except OSError as exc:
                loc = ("supplyChain", "certificateFile")
                problems.append(Problem(self.source, self._locate(index, entry, env, loc),
                                        f"cannot read {supply['certificateFile']!r}: {exc.strerror}"))
        try:
            return TenantSpec.model_validate(merged), problems
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(p for p in error["loc"] if p not in ("function-after",) and not str(p).startswith("function"))
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    message = "unknown field"
                problems.append(Problem(self.source, self._locate(index, entry, env, loc), message))
            return None, problems

    def validate_all_environments(self) -> list[Problem]:
        """Field rules for every tenant in every environment it names, so a bad prod override fails in dev CI."""
        problems: list[Problem] = []
        for index, entry in enumerate(self.entries):
            for env in self.environments_of(entry):
                if env in self.stacks:
                    problems.extend(self._spec(index, entry, env)[1])
        return problems

    def for_stack(self, settings: StackSettings) -> list[tuple[TenantSpec, naming.TenantNames]]:
        """The tenants of one stack, stack defaults filled in, with their names; InvalidInput otherwise."""
        org, environment = settings.org, settings.environment
        problems = self.validate_all_environments()
        tenants: list[tuple[int, TenantSpec, naming.TenantNames]] = []
        for index, entry in enumerate(self.entries):
            if environment not in self.environments_of(entry):
                continue
            spec, _ = self._spec(index, entry, environment)
            if spec is None:
                continue
            spec = _with_stack_defaults(spec, settings)
            if spec.artifacts.credentials == "irsa" and settings.irsa is None:
                problems.append(Problem(self.source, self._locate(index, entry, environment, ("artifacts", "credentials")),
                                        f"irsa credentials need tenancy:irsa.oidcProviderArn in stack {environment!r}"))
            names = naming.derive(org, environment, spec.name, spec.artifacts.bucket)
            for field, why in names.problems().items():
                loc = ("artifacts", "bucket") if field == "bucket" and spec.artifacts.bucket else ("name",)
                problems.append(Problem(self.source, self._locate(index, entry, environment, loc),
                                        f"{why} (derived {field.replace('_', ' ')} in stack {environment!r})"))
            tenants.append((index, spec, names))
        problems.extend(self._collisions(tenants, environment))
        if problems:
            raise InvalidInput(problems)
        return [(spec, names) for _, spec, names in tenants]

    def _collisions(self, tenants: list[tuple[int, TenantSpec, naming.TenantNames]], environment: str) -> list[Problem]:
        problems: list[Problem] = []
        seen: dict[tuple[str, str], tuple[int, str]] = {}
        for index, spec, names in tenants:
            where = self._where(index, self.entries[index])
            for field, value in names.comparable().items():
                owner = seen.setdefault((field, value), (index, spec.name))
                if owner[0] != index:
                    loc = "artifacts.bucket" if field == "bucket" and spec.artifacts.bucket else "name"
                    problems.append(Problem(self.source, f"{where}.{loc}",
                                            f"derived {field.replace('_', ' ')} {value!r} collides with "
                                            f"tenants[{owner[0]}] (name={owner[1]}) in stack {environment!r}"))
        return problems


def _with_stack_defaults(spec: TenantSpec, settings: StackSettings) -> TenantSpec:
    """Fill the fields whose default is a stack setting, so components never look in two places."""
    artifacts = spec.artifacts.model_copy(update={
        "credentials": spec.artifacts.credentials or settings.artifacts.credentials,
        "versioning": settings.artifacts.versioning if spec.artifacts.versioning is None else spec.artifacts.versioning,
    })
    platform = settings.admission.allowed
    allowed = spec.allowed.model_copy(update={
        field: getattr(platform, field) for field in Allowed.model_fields if getattr(spec.allowed, field) is None})
    return spec.model_copy(update={"region": spec.region or settings.region, "artifacts": artifacts,
                                   "allowed": allowed})


def _structure_problems(source: str, raw: Any, stacks: tuple[str, ...]) -> list[Problem]:
    """Shape rules that hold before any merging: top level, names, environments, overrides."""
    if raw is None:
        return [Problem(source, "", "the file is empty; expected a mapping with a `tenants` list")]
    if not isinstance(raw, dict):
        return [Problem(source, "", f"expected a mapping with `defaults` and `tenants`, got {type(raw).__name__}")]
    problems = [Problem(source, str(key), "unknown field") for key in raw if key not in _TOP_LEVEL_KEYS]
    defaults = raw.get("defaults", {})
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict):
        problems.append(Problem(source, "defaults", "must be a mapping of tenant fields"))
    else:
        for key in defaults:
            if key not in _TENANT_KEYS or key == "name":
                problems.append(Problem(source, f"defaults.{key}", "unknown field" if key != "name"
                                        else "a default name would give every tenant the same name"))
        problems.extend(_overrides_problems(source, "defaults", defaults, stacks))
    tenants = raw.get("tenants")
    if "tenants" not in raw:
        problems.append(Problem(source, "tenants", "missing; expected a list of tenants"))
        return problems
    if not isinstance(tenants, list):
        problems.append(Problem(source, "tenants", f"must be a list of tenants, got {type(tenants).__name__}"))
        return problems
    by_name: dict[str, tuple[int, str]] = {}
    for index, entry in enumerate(tenants):
        if not isinstance(entry, dict):
            problems.append(Problem(source, f"tenants[{index}]", "must be a mapping of tenant fields"))
            continue
        where = Catalogue._where(index, entry)
        name = entry.get("name")
        if not isinstance(name, str):
            problems.append(Problem(source, f"{where}.name", "missing; every tenant needs a name"))
        else:
            key = naming.normalise(name)
            first = by_name.setdefault(key, (index, name))
            if first[0] != index:
                what = "duplicate name" if first[1] == name else f"name collides after normalisation with {first[1]!r}"
                problems.append(Problem(source, f"{where}.name", f"{what} of tenants[{first[0]}]"))
        envs = entry.get("environments")
        if envs is not None:
            if not isinstance(envs, list) or not all(isinstance(e, str) for e in envs):
                problems.append(Problem(source, f"{where}.environments", "must be a list of stack names"))
            else:
                for i, env in enumerate(envs):
                    if env not in stacks:
                        problems.append(Problem(source, f"{where}.environments[{i}]",
                                                f"no stack {env!r}; stacks are {', '.join(stacks)}"))
                if len(set(envs)) != len(envs):
                    problems.append(Problem(source, f"{where}.environments", "lists a stack twice"))
        problems.extend(_overrides_problems(source, where, entry, stacks))
    return problems


def _overrides_problems(source: str, where: str, fields: Mapping[str, Any], stacks: tuple[str, ...]) -> list[Problem]:
    overrides = fields.get("overrides")
    if overrides is None:
        return []
    if not isinstance(overrides, dict):
        return [Problem(source, f"{where}.overrides", "must map stack names to tenant fields")]
    problems = []
    for env, values in overrides.items():
        if env not in stacks:
            problems.append(Problem(source, f"{where}.overrides.{env}", f"no stack {env!r}; stacks are {', '.join(stacks)}"))
        elif not isinstance(values, dict):
            problems.append(Problem(source, f"{where}.overrides.{env}", "must be a mapping of tenant fields"))
        else:
            for key in values:
                if key in ("name", "overrides", "environments") or key not in _TENANT_KEYS:
                    problems.append(Problem(source, f"{where}.overrides.{env}.{key}",
                                            "unknown field" if key not in _TENANT_KEYS else "cannot be overridden per environment"))
    return problems


def parse(text: str, *, source: str, base_dir: Path, stacks: Iterable[str]) -> Catalogue:
    """A catalogue from YAML text; InvalidInput listing every structural and field problem."""
    stacks = tuple(stacks)
    try:
        raw = safe_yaml.loads(text)
    except safe_yaml.YamlRefused as exc:
        raise InvalidInput([Problem(source, "", str(exc))]) from None
    problems = _structure_problems(source, raw, stacks)
    if problems:
        raise InvalidInput(problems)
    catalogue = Catalogue(source, base_dir, raw.get("defaults") or {}, raw["tenants"], stacks)
    problems = catalogue.validate_all_environments()
    if problems:
        raise InvalidInput(problems)
    return catalogue


def load(path: Path, *, stacks: Iterable[str]) -> Catalogue:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInput([Problem(path.name, "", f"cannot read: {exc.strerror}")]) from None
    if size > safe_yaml.MAX_BYTES:
        raise InvalidInput([Problem(path.name, "", f"file is {size} bytes; the limit is {safe_yaml.MAX_BYTES}")])
    return parse(path.read_text(encoding="utf-8"), source=path.name, base_dir=path.parent, stacks=stacks)


def json_schema(stacks: Iterable[str]) -> dict[str, Any]:
    """JSON Schema for editors. Every tenant field may come from defaults, so only `name` is required."""
    stacks = tuple(stacks)
    tenant = TenantSpec.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs = tenant.pop("$defs", {})
    for definition in [tenant, *defs.values()]:
        definition.pop("required", None)
        definition["additionalProperties"] = False
    partial = {k: v for k, v in tenant["properties"].items() if k not in ("name", "overrides", "environments")}
    tenant["properties"]["environments"] = {"type": "array", "items": {"enum": list(stacks)}, "uniqueItems": True}
    tenant["properties"]["overrides"] = {
        "type": "object", "additionalProperties": False,
        "properties": {env: {"type": "object", "additionalProperties": False, "properties": partial} for env in stacks},
    }
    defaults = {**tenant, "properties": {k: v for k, v in tenant["properties"].items() if k != "name"}}
    entry = {**tenant, "required": ["name"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tenancy catalogue (tenants.yaml)",
        "type": "object",
        "additionalProperties": False,
        "required": ["tenants"],
        "properties": {"defaults": defaults, "tenants": {"type": "array", "items": entry}},
        "$defs": defs,
    }
