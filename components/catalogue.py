"""The tenant catalogue, `tenants.yaml`: its typed model, its loading, and every rule it must satisfy.

Loading is the edge: the file is read once, every tenant is merged per environment
(defaults < defaults.overrides[env] < tenant < tenant.overrides[env]) and validated for every environment
it names, and the derived names are checked for the stack being deployed. All problems are collected and
raised together as `InvalidInput` before the program registers a single resource.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from . import certificates, images, naming, notation, quantity, safe_yaml
from .problems import (
    ENTRIES,
    At,
    InvalidInput,
    Problem,
    describe,
    did_you_mean,
    error_loc,
    join_path,
    pydantic_messages,
    shown,
)
from .settings import (
    AWS_REGIONS,
    StackSettings,
    check_cidrs,
    check_object_names,
    check_registries,
    inside_cluster_ranges,
)

# ResourceQuota keys that count objects: they stay integers and are never scaled per stack.
_OBJECT_COUNT_KEYS = frozenset(
    {
        "pods",
        "services",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "resourcequotas",
        "services.loadbalancers",
        "services.nodeports",
    }
)
_COMPUTE_QUOTA_KEY = re.compile(
    r"^((requests|limits)\.)?(cpu|memory|ephemeral-storage|storage)$"
    r"|^requests\.[a-z0-9.-]+/[a-z0-9.-]+$"
    r"|^[a-z0-9.-]+\.storageclass\.storage\.k8s\.io/(requests\.storage|persistentvolumeclaims)$"
)
_PARAM_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
# The keys the Argo CD generator puts in every parameter map (generator/tenancy_generator/params.py FIXED_KEYS): a
# param of the same name would be dropped there, so it is refused here.
_RESERVED_PARAMS = frozenset({"tenantId", "namespace", "cluster", "repoURL", "path", "labels", "params", "autoSync"})
_GROUP = re.compile(r"^[^\s:][^\s]{0,255}$")
_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_KEY_PREFIX = re.compile(r"^([A-Za-z0-9!_.*'()-]+/)*$")


def is_object_count(key: str) -> bool:
    return key in _OBJECT_COUNT_KEYS or key.startswith("count/")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


# The schema of a map of quantities: what `_quantities_as_text` accepts (`pods: 50` as well as `pods: "50"`), so
# that an editor flags no value the tool takes.
_QUANTITY_MAP = {"additionalProperties": {"type": ["string", "number"]}}


def _quantities_as_text(value: Any) -> Any:
    # YAML reads `pods: 10` as a number; quantities are strings to Kubernetes, so accept both spellings.
    if isinstance(value, dict):
        return {k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in value.items()}
    return value


def _amount(key: str, item: Any) -> Any:
    """The quantity `item` of `key`; the error names the key, since a quota or limit map holds many."""
    try:
        return quantity.parse(str(item))
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def _every_entry(value: dict[str, Any], problem: Callable[[str, Any], Optional[str]]) -> dict[str, str]:
    """`value` as text when `problem` finds nothing in any entry; otherwise one error carrying every entry's
    problem (problems.ENTRIES), so that fixing one key does not reveal the next only on the following run."""
    found = []
    for key, item in value.items():
        try:
            why = problem(key, item)
        except ValueError as exc:
            why = str(exc)
        if why:
            found.append(why)
    if found:
        raise PydanticCustomError(ENTRIES, "{first}", {"first": found[0], "entries": found})
    return {k: str(v) for k, v in value.items()}


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
                raise ValueError(f"{shown(group)} is not a usable group name (no spaces, not a system: group)")
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
        None, description="Default: the stack's tenancy:artifacts.credentials."
    )
    archive_logs: bool = True
    garbage_collection: bool = Field(False, description="Grants s3:DeleteObject so Argo can collect artifacts.")

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.endswith("/") or value.startswith("/") or not _KEY_PREFIX.match(value) or len(value) > 256:
            raise ValueError(
                "must be a relative S3 key prefix of safe characters ending with '/', "
                "without '*' wildcards that would widen the IAM policy"
            )
        if "*" in value or any(part in ("", ".", "..") for part in value[:-1].split("/")):
            raise ValueError("must not contain '*', empty, '.' or '..' segments")
        return value


class Limits(_Model):
    default_request: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"}, json_schema_extra=_QUANTITY_MAP
    )
    default: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "1", "memory": "1Gi"}, json_schema_extra=_QUANTITY_MAP
    )
    max: dict[str, str] = Field(default_factory=dict, json_schema_extra=_QUANTITY_MAP)

    _as_text = field_validator("default_request", "default", "max", mode="before")(_quantities_as_text)

    @field_validator("default_request", "default", "max")
    @classmethod
    def _quantities(cls, value: dict[str, str]) -> dict[str, str]:
        def problem(key: str, item: Any) -> Optional[str]:
            if key not in ("cpu", "memory", "ephemeral-storage"):
                return f"{shown(key)}: only cpu, memory and ephemeral-storage are limited per container"
            if _amount(key, item) < 0:
                return f"{key}: {shown(item)} is negative"
            return None

        return _every_entry(value, problem)

    @model_validator(mode="after")
    def _ordered(self) -> "Limits":
        # The order kube-apiserver's ValidateLimitRange holds a LimitRange to (pkg/apis/core/validation):
        # defaultRequest <= default <= max, and defaultRequest <= max.
        for low, high in (("default_request", "default"), ("default", "max"), ("default_request", "max")):
            for key, item in getattr(self, low).items():
                ceiling = getattr(self, high).get(key)
                if ceiling is not None and quantity.parse(item) > quantity.parse(ceiling):
                    raise At((to_camel(low), key), f"{item} is more than {to_camel(high)}.{key} ({ceiling})")
        return self


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
        None, description="Image registries (host and optional path, e.g. ghcr.io/calypr) of every container."
    )
    storage_classes: Optional[list[str]] = Field(None, description="Storage classes of PVCs and ephemeral volumes.")
    priority_classes: Optional[list[str]] = Field(None, description="Priority classes of pods.")

    _registries = field_validator("registries")(classmethod(lambda cls, v: check_registries(v)))
    _names = field_validator("storage_classes", "priority_classes")(classmethod(lambda cls, v: check_object_names(v)))


class MiniClusterSpec(_Model):
    enabled: bool = False
    size: int = Field(2, ge=1, le=1024)
    image: str = images.FLUX_RESTFUL_IMAGE
    command: str = ""
    users: list[str] = Field(
        default_factory=list,
        description="The flux-restful-api account (at most one; v1alpha2 only); its password is generated in Vault.",
    )

    _image = field_validator("image")(classmethod(lambda cls, v: images.check_reference(v)))

    @field_validator("users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("user names must be unique")
        for user in value:
            if not _USERNAME.match(user):
                raise ValueError(f"{shown(user)} is not a valid user name (lowercase, digits, '_' or '-', at most 32)")
        return value


class SupplyChain(_Model):
    """Ratify's notation verifier: images run only when signed by a leaf the tenant's root CA issued.

    Notation's model (components/notation.py): the trust store holds the CA, the trust policy names the signing
    leaves by subject. Identities are given, not read from leaf certificates, because leaves rotate while the
    identity a tenant trusts does not, and a leaf file would have to be re-committed at every rotation.
    """

    enabled: bool = False
    certificate: Optional[str] = Field(
        None,
        description="PEM root (or intermediate) CA that issues the tenant's signing certificates: the trust store.",
    )
    certificate_file: Optional[str] = Field(None, description="Path to that PEM, relative to tenants.yaml.")
    trusted_identities: list[str] = Field(
        default_factory=list,
        description="Subjects (RFC 4514 DNs with at least C, ST and O) of the signing leaf "
        "certificates whose signatures are accepted.",
    )

    @field_validator("certificate")
    @classmethod
    def _anchor(cls, value: Optional[str]) -> Optional[str]:
        problems = notation.trust_anchor_problems(value) if value else []
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("trusted_identities")
    @classmethod
    def _identities(cls, value: list[str]) -> list[str]:
        problems = []
        for index, dn in enumerate(value):
            if dn.strip() == "*":
                problems.append(f"[{index}] '*': a wildcard would trust every leaf of the CA; name the signers")
                continue
            if dn.startswith(f"{notation.X509_SUBJECT}:"):
                problems.append(
                    f"[{index}] {shown(dn)}: give the signing certificate's subject DN itself; tenancy "
                    f"adds the '{notation.X509_SUBJECT}:' prefix"
                )
                continue
            try:
                notation.parse_dn(dn)
            except ValueError as exc:
                problems.append(f"[{index}] {exc}")
        if not problems:
            problems = notation.overlap_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _certificate(self) -> "SupplyChain":
        if self.certificate and self.certificate_file:
            raise ValueError("give certificate or certificateFile, not both")
        if self.enabled and not (self.certificate or self.certificate_file):
            raise ValueError("enabled supply-chain verification needs a certificate or certificateFile")
        if self.enabled and not self.trusted_identities:
            raise ValueError(
                "enabled supply-chain verification needs trustedIdentities: the subjects of the "
                "signing certificates (notation trusts no signer of a CA by default)"
            )
        if self.certificate:
            anchors = notation.anchor_subjects(self.certificate)
            for index, dn in enumerate(self.trusted_identities):
                if notation.parse_dn(dn) in anchors:
                    raise ValueError(
                        f"trustedIdentities[{index}] {shown(dn)} is the subject of the CA certificate "
                        "itself; notation refuses a CA as a signing certificate, so name the "
                        "subjects of the leaves it issued"
                    )
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
    quota: dict[str, str] = Field(
        default_factory=dict, description="ResourceQuota spec.hard.", json_schema_extra=_QUANTITY_MAP
    )
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
        # curve keys) and set no restricted securityContext, so `restricted` would reject every pod. A MiniCluster
        # tenant that names no level gets `baseline`: still no privileged pods, host namespaces, hostPath or added
        # caps. A `restricted` written in the catalogue stays, and `minicluster_problems` refuses it: a level the
        # user chose is never lowered behind their back.
        if not isinstance(data, dict) or "pod_security" in data or "podSecurity" in data:
            return data
        minicluster = data.get("minicluster")
        if isinstance(minicluster, dict) and minicluster.get("enabled") is True:
            return {**data, "podSecurity": "baseline"}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not naming.is_dns1123_label(value):
            raise ValueError(
                f"{shown(value)} is not a DNS-1123 label (lowercase letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters)"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and value not in AWS_REGIONS:
            raise ValueError(f"{shown(value)} is not an AWS region")
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
                raise ValueError(f"param key {shown(key)} must be an identifier (letters, digits, '_')")
            if key in _RESERVED_PARAMS:
                raise ValueError(f"param key {shown(key)} is reserved by the Argo CD generator")
        return value

    _quota_as_text = field_validator("quota", mode="before")(_quantities_as_text)

    @field_validator("quota")
    @classmethod
    def _quota(cls, value: dict[str, Any]) -> dict[str, str]:
        def problem(key: str, item: Any) -> Optional[str]:
            # kube-apiserver's ValidateResourceQuotaResourceName: a qualified name first (so `count/` or
            # `count/😀` is refused there), then a standard name or one with a '/'; tenancy keeps to the names it
            # knows the meaning of.
            if naming.label_key_problem(key):
                return (
                    f"{shown(key)} is not a ResourceQuota resource name: Kubernetes needs a qualified name "
                    "([DNS-subdomain prefix/]name, the name 1-63 letters, digits, '-', '_' or '.')"
                )
            if not (is_object_count(key) or _COMPUTE_QUOTA_KEY.match(key)):
                return f"{shown(key)} is not a ResourceQuota resource name"
            amount = _amount(key, item)
            if amount < 0:
                return f"{key}: {shown(item)} is negative"
            if is_object_count(key) and amount != amount.to_integral_value():
                return f"{key}: object counts must be whole numbers, got {shown(item)}"
            return None

        return _every_entry(value, problem)

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
# Fields that act only together with another value. Set where they cannot act, they would read as if they worked
# (artifacts that never expire, a certificate nothing verifies with), so a tenant setting one there is refused.
# Values in `defaults` are exempt: they are there for the tenants that do use them.
_ACTS_ONLY: tuple[tuple[tuple[str, str], Any, str], ...] = (
    (
        ("artifacts", "expireAfterDays"),
        lambda s: s.artifacts.storage_class == "temporary",
        "only storageClass `temporary` expires artifacts",
    ),
    (
        ("artifacts", "archiveAfterDays"),
        lambda s: s.artifacts.storage_class == "archive",
        "only storageClass `archive` moves artifacts to Glacier",
    ),
    *(
        (("minicluster", f), lambda s: s.minicluster.enabled, "minicluster.enabled is false")
        for f in ("size", "image", "command", "users")
    ),
    *(
        (("supplyChain", f), lambda s: s.supply_chain.enabled, "supplyChain.enabled is false")
        for f in ("certificate", "certificateFile", "trustedIdentities")
    ),
)
# Field names the catalogue accepts anywhere a tenant field may stand (defaults, tenant, overrides).
_TENANT_KEYS = frozenset(f.alias or n for n, f in TenantSpec.model_fields.items())


# Specs validated in this process, by the merged mapping they were validated from (see `Catalogue._validate`);
# emptied when full, so a long-lived process stays bounded.
_VALID_SPECS: dict[str, "TenantSpec"] = {}
_VALID_SPECS_MAX = 50_000


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; lists and scalars in `top` replace those in `base`.

    Every mapping that comes from `top` is rebuilt, so assigning into the result never reaches the catalogue's own
    layers (`_merged` starts from an empty mapping, so all of its mappings are new). Lists and scalars are shared
    rather than deep-copied (the copies were most of `validate`'s time): nothing mutates them, and the models copy
    what they keep.
    """
    merged = dict(base)
    for key, value in top.items():
        # The layers are parsed YAML, whose mappings are dicts; `isinstance(x, Mapping)` (an ABC check) was a
        # third of a large catalogue's merge time.
        if isinstance(value, dict):
            old = merged.get(key)
            merged[key] = deep_merge(old if isinstance(old, dict) else {}, value)
        else:
            merged[key] = value
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

    def __init__(
        self,
        source: str,
        base_dir: Path,
        defaults: dict[str, Any],
        entries: list[dict[str, Any]],
        stacks: tuple[str, ...],
    ):
        self.source = source
        self.base_dir = base_dir
        self.defaults = defaults
        self.entries = entries
        self.stacks = stacks
        # Each (tenant, environment) is merged and validated once: loading checks every environment, and
        # `for_stack` then reuses the result instead of merging and validating the same tenant again.
        self._specs: dict[tuple[int, str], tuple[Optional[TenantSpec], list[Problem]]] = {}
        # Certificate files by the name tenants give (most name the same file): PEM text or why it is unusable.
        self.certificates: dict[str, str | ValueError] = {}
        self._all_problems: Optional[list[Problem]] = None

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
        # The model checks the PEM itself, so a file's content is handed over as `certificate`; problems the model
        # finds in it still point at the path the user wrote.
        from_file = (
            isinstance(supply, dict)
            and isinstance(supply.get("certificateFile"), str)
            and supply.get("certificate") is None
        )
        problems = [
            Problem(self.source, self._locate(index, entry, env, loc), why)
            for loc, why in self._read_certificate(merged)
        ]
        # The model is a pure function of the merged mapping: a tenant merged alike before (the other side of a
        # diff, the program re-reading the catalogue the tooling read) is not validated again.
        known = json.dumps(merged, sort_keys=True) if not problems else None
        if known in _VALID_SPECS:
            return _VALID_SPECS[known], problems
        try:
            spec = TenantSpec.model_validate(merged)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(p for p in error_loc(error) if not str(p).startswith("function"))
                if loc == ("supplyChain", "certificate") and from_file:
                    loc = ("supplyChain", "certificateFile")
                problems += [
                    Problem(self.source, self._locate(index, entry, env, loc), message)
                    for message in pydantic_messages({**error, "loc": loc}, TenantSpec)
                ]
            return None, problems
        if known is not None:
            if len(_VALID_SPECS) >= _VALID_SPECS_MAX:
                _VALID_SPECS.clear()
            _VALID_SPECS[known] = spec
        return spec, problems

    def _read_certificate(self, merged: dict[str, Any]) -> list[tuple[tuple, str]]:
        """Put the certificates `supplyChain.certificateFile` names into `merged` (the model checks `certificate`).

        The file is read confined to the catalogue's folder; an inline certificate is held to the same rule that
        it holds certificates only. Returns (location, why) for what cannot be used.
        """
        supply = merged.get("supplyChain")
        if not isinstance(supply, dict) or supply.get("enabled") is not True:
            return []  # nothing is published; a tenant setting a certificate anyway hears so from `_without_effect`
        name, inline = supply.get("certificateFile"), supply.get("certificate")
        try:
            if isinstance(name, str) and inline is None:
                if name not in self.certificates:
                    try:
                        self.certificates[name] = certificates.read_confined(self.base_dir, name)
                    except ValueError as exc:
                        self.certificates[name] = exc
                pem = self.certificates[name]
                if isinstance(pem, ValueError):
                    raise pem
                merged["supplyChain"] = {
                    **{k: v for k, v in supply.items() if k != "certificateFile"},
                    "certificate": pem,
                }
            elif isinstance(inline, str):
                certificates.certificates_only(inline)
        except ValueError as exc:
            return [(("supplyChain", "certificateFile" if inline is None else "certificate"), str(exc))]
        return []

    def validate_all_environments(self) -> list[Problem]:
        """Field rules for every tenant in every environment it names, so a bad prod override fails in dev CI."""
        # Loading checks them, and every `for_stack` again: the catalogue does not change in between.
        if self._all_problems is None:
            self._all_problems = self._every_environment_problems()
        return list(self._all_problems)

    def _every_environment_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        for index, entry in enumerate(self.entries):
            if not _mergeable(entry):
                continue  # its shape is wrong (_structure_problems says how): nothing to merge
            specs: dict[str, Optional[TenantSpec]] = {}
            known = [env for env in self.environments_of(entry) if env in self.stacks]
            # A tenant naming no known stack is still checked field by field (as in the first stack), so that a
            # misspelt stack does not hide its other problems until it is fixed.
            for env in known or self.stacks[:1]:
                specs[env], found = self._spec(index, entry, env)
                problems.extend(found)
            if known and all(specs.values()):
                problems.extend(self._without_effect(index, entry, specs))
        return problems

    def _without_effect(self, index: int, entry: Mapping[str, Any], specs: Mapping[str, TenantSpec]) -> list[Problem]:
        """Values a tenant sets that act in none of its stacks (`_ACTS_ONLY`), and overrides of stacks it is not in."""
        where = self._where(index, entry)
        overrides = entry.get("overrides") if isinstance(entry.get("overrides"), dict) else {}
        problems = [
            Problem(
                self.source,
                join_path(where, "overrides", env),
                f"has no effect: the tenant is not in stack {shown(env)} (see its environments)",
            )
            for env in overrides
            if env in self.stacks and env not in specs
        ]
        for loc, acts, why in _ACTS_ONLY:
            idle = [env for env, spec in specs.items() if not acts(spec)]
            for env in idle:
                if _has_path(overrides.get(env) or {}, loc):
                    problems.append(
                        Problem(
                            self.source,
                            join_path(where, "overrides", env, *loc),
                            f"has no effect in stack {shown(env)}: {why}",
                        )
                    )
            acting = [env for env, spec in specs.items() if acts(spec) and not _has_path(overrides.get(env) or {}, loc)]
            if idle and not acting and _has_path(entry, loc):
                problems.append(
                    Problem(self.source, join_path(where, *loc), f"has no effect in any stack of this tenant: {why}")
                )
        return problems

    def for_stack(self, settings: StackSettings) -> list[tuple[TenantSpec, naming.TenantNames]]:
        """The tenants of one stack, stack defaults filled in, with their names; InvalidInput otherwise."""
        org, environment = settings.org, settings.environment
        problems = self.validate_all_environments()
        members = [index for index, entry in enumerate(self.entries) if environment in self.environments_of(entry)]
        if not members and not settings.allow_no_tenants:
            problems.append(
                Problem(
                    self.source,
                    "tenants",
                    (
                        f"no tenant is in stack {shown(environment)}, so deploying it would remove every tenant it has; if an "
                        f"empty stack is intended, set tenancy:allowNoTenants: true in Pulumi.{settings.stack}.yaml"
                    ),
                )
            )
        tenants: list[tuple[int, TenantSpec, naming.TenantNames]] = []
        for index in members:
            entry = self.entries[index]
            spec, _ = self._spec(index, entry, environment)
            if spec is None:
                continue
            spec = _with_stack_defaults(spec, settings)
            if spec.artifacts.credentials == "irsa" and settings.irsa is None:
                problems.append(
                    Problem(
                        self.source,
                        self._locate(index, entry, environment, ("artifacts", "credentials")),
                        f"irsa credentials need tenancy:irsa.oidcProviderArn in stack {shown(environment)}",
                    )
                )
            for loc, why in [*minicluster_problems(spec, settings), *registry_problems(spec, settings)]:
                problems.append(Problem(self.source, self._locate(index, entry, environment, loc), why))
            for cidr in spec.network.load_balancer_cidrs:
                inside = inside_cluster_ranges(cidr, settings.kubernetes.cluster_ranges)
                if inside:
                    problems.append(
                        Problem(
                            self.source,
                            self._locate(index, entry, environment, ("network", "loadBalancerCidrs")),
                            f"{cidr!r} lies inside the cluster's pod or Service range {inside!r} (tenancy:kubernetes."
                            f"podCidrs/serviceCidrs of stack {environment!r}): ingress from it would admit other "
                            "tenants' pods; name the load balancers' own subnets",
                        )
                    )
            for key, why in _scaled_quota_problems(spec, settings.quota_scale):
                problems.append(Problem(self.source, self._locate(index, entry, environment, ("quota", key)), why))
            names = naming.derive(org, environment, spec.name, spec.artifacts.bucket)
            for field, why in names.problems().items():
                loc = ("artifacts", "bucket") if field == "bucket" and spec.artifacts.bucket else ("name",)
                problems.append(
                    Problem(
                        self.source,
                        self._locate(index, entry, environment, loc),
                        f"{why} (derived {field.replace('_', ' ')} in stack {shown(environment)})",
                    )
                )
            tenants.append((index, spec, names))
        problems.extend(self._collisions(tenants, settings))
        problems.extend(self._buckets_of_other_stacks(tenants, settings))
        if problems:
            raise InvalidInput(problems)
        return [(spec, names) for _, spec, names in tenants]

    def _collisions(
        self, tenants: list[tuple[int, TenantSpec, naming.TenantNames]], settings: StackSettings
    ) -> list[Problem]:
        """Names two tenants, or a tenant and the platform, would share in one stack."""
        environment = settings.environment
        reserved = naming.platform_names(
            settings.org, environment, (settings.argocd.namespace, settings.kubernetes.dns_namespace)
        )
        problems: list[Problem] = []
        seen: dict[tuple[str, str], tuple[int, str]] = {}
        for index, spec, names in tenants:
            where = self._where(index, self.entries[index])
            for field, value in names.comparable().items():
                loc = "artifacts.bucket" if field == "bucket" and spec.artifacts.bucket else "name"
                if value in reserved.get(field, ()):
                    problems.append(
                        Problem(
                            self.source,
                            f"{where}.{loc}",
                            f"derived {field.replace('_', ' ')} {shown(value)} is the platform's own "
                            f"in stack {shown(environment)}; choose another name",
                        )
                    )
                owner = seen.setdefault((field, value), (index, spec.name))
                if owner[0] != index:
                    problems.append(
                        Problem(
                            self.source,
                            f"{where}.{loc}",
                            f"derived {field.replace('_', ' ')} {shown(value)} collides with "
                            f"tenants[{owner[0]}] (name={owner[1]}) in stack {shown(environment)}",
                        )
                    )
        return problems

    def _buckets_of_other_stacks(
        self, tenants: list[tuple[int, TenantSpec, naming.TenantNames]], settings: StackSettings
    ) -> list[Problem]:
        """S3 bucket names are global: a bucket this stack creates must not be created by another stack too.

        The other stacks' default names are derived with this stack's org: one project serves one org.
        """
        elsewhere: dict[str, tuple[int, str, str]] = {}
        for index, entry in enumerate(self.entries):
            for env in self.environments_of(entry):
                spec = self._spec(index, entry, env)[0] if env in self.stacks and env != settings.environment else None
                if spec is not None:
                    bucket = naming.derive(settings.org, env, spec.name, spec.artifacts.bucket).bucket
                    elsewhere.setdefault(bucket, (index, spec.name, env))
        problems = []
        for index, spec, names in tenants:
            if names.bucket in elsewhere:
                other, other_name, env = elsewhere[names.bucket]
                loc = ("artifacts", "bucket") if spec.artifacts.bucket else ("name",)
                problems.append(
                    Problem(
                        self.source,
                        self._locate(index, self.entries[index], settings.environment, loc),
                        f"bucket {shown(names.bucket)} is also the bucket of tenants[{other}] (name={other_name}) in stack "
                        f"{shown(env)}; S3 bucket names are global, so each stack needs its own (set `bucket` per stack "
                        "in `overrides`, or leave it out)",
                    )
                )
        return problems


def _scaled_quota_problems(spec: TenantSpec, scale: float) -> list[tuple[str, str]]:
    """Compute quotas that leave Kubernetes' range once multiplied by the stack's tenancy:quotaScale."""
    problems = []
    for key, value in spec.quota.items():
        if not is_object_count(key):
            try:
                quantity.parse(quantity.scale(value, scale))
            except ValueError as exc:
                problems.append((key, f"{key}: {shown(value)} times tenancy:quotaScale {scale}: {exc}"))
    return problems


def minicluster_problems(spec: TenantSpec, settings: StackSettings) -> list[tuple[tuple[str, ...], str]]:
    """What the stack's Flux Operator cannot honour for this tenant's MiniCluster, as (location, why).

    Read at flux-framework/flux-operator tags 0.1.1 (v1alpha1) and 0.2.1 (v1alpha2): api/*/minicluster_types.go
    has no pod tolerations in either; 0.1.1 inlines user passwords in the entrypoint ConfigMap and prints them to
    the pod log (controllers/flux/configmap.go, templates/wait.sh), generating and printing the flux-restful
    token when no command is given; 0.2.1 does not run flux-restful-api at all, which then reads one account from
    FLUX_USER / FLUX_TOKEN and keeps any other in its own database (flux-restful-api app/core/config.py,
    app/db/init_db.py), which nothing fills from a Secret.
    """
    mc, version = spec.minicluster, settings.minicluster.api_version
    if not mc.enabled:
        return []
    problems: list[tuple[tuple[str, ...], str]] = []
    if spec.pod_security == "restricted":
        problems.append(
            (
                ("podSecurity",),
                (
                    "Pod Security `restricted` refuses every MiniCluster pod (the Flux Operator starts them as root without "
                    "a restricted securityContext); write `baseline` for this tenant, or leave minicluster disabled"
                ),
            )
        )
    if spec.isolation.nodes == "dedicated" and not settings.minicluster.pod_toleration_restriction:
        problems.append(
            (
                ("isolation", "nodes"),
                (
                    "a dedicated tenant's MiniCluster pods would select its tainted nodes without tolerating the taint "
                    f"(no Flux Operator release gives MiniCluster pods tolerations; stack {shown(settings.environment)} uses "
                    f"{version}): set tenancy:minicluster.podTolerationRestriction when the API server runs the "
                    "PodTolerationRestriction admission plugin, or leave minicluster disabled for this tenant"
                ),
            )
        )
    why = images.pin_problem(mc.image) if settings.pinned_images else None
    if why:
        problems.append((("minicluster", "image"), why))
    if version == "v1alpha1":
        if mc.users:
            problems.append(
                (
                    ("minicluster", "users"),
                    (
                        "Flux Operator 0.1.x (tenancy:minicluster.apiVersion v1alpha1) writes user passwords into a "
                        "ConfigMap and prints them to the pod log, generating one when empty; use v1alpha2 or no users"
                    ),
                )
            )
        if not mc.command:
            problems.append(
                (
                    ("minicluster", "command"),
                    (
                        "without a command Flux Operator 0.1.x (tenancy:minicluster.apiVersion v1alpha1) runs "
                        "flux-restful-api with a generated token it prints to the pod log; give a command or use v1alpha2"
                    ),
                )
            )
    elif len(mc.users) > 1:
        problems.append(
            (
                ("minicluster", "users"),
                (
                    "flux-restful-api logs in one account from its environment (FLUX_USER/FLUX_TOKEN, from Vault); further "
                    "users live in its own database, which Flux Operator 0.2.x never fills: list one user"
                ),
            )
        )
    return problems


def templated_images(spec: TenantSpec, settings: StackSettings) -> list[tuple[str, str]]:
    """(image, what runs it) for every image tenancy itself puts in pods of the tenant's namespace."""
    if not spec.keeps_identities:  # offboarded: neither a WorkflowTemplate nor a MiniCluster is rendered
        return []
    found = [
        (images.NEXTFLOW_IMAGE, "the image of its WorkflowTemplate"),
        (settings.workflows.executor_image, "Argo's executor in every workflow pod (tenancy:workflows.executorImage)"),
    ]
    if spec.minicluster.enabled:
        found.append((spec.minicluster.image, "its minicluster.image"))
        if settings.minicluster.api_version == "v1alpha2":
            found.append((images.FLUX_VIEW_IMAGE, "the Flux Operator 0.2.x init container of its MiniCluster pods"))
    return found


def registry_problems(spec: TenantSpec, settings: StackSettings) -> list[tuple[tuple[str, ...], str]]:
    """A registry allow-list that would refuse the pods tenancy templates for the tenant (the stack would deploy,
    then every workflow or MiniCluster pod be refused by the allowed-registries policy)."""
    registries = spec.allowed.registries or []
    refused = [
        (image, what) for image, what in templated_images(spec, settings) if not images.admitted(image, registries)
    ]
    return [
        (
            ("allowed", "registries"),
            (
                f"[{', '.join(registries)}] does not admit {image}, {what}, so the allowed-registries policy would refuse those pods; "
                f"add {images.qualified(image).rsplit('/', 1)[0]} (or a path above it)"
            ),
        )
        for image, what in refused
    ]


def _with_stack_defaults(spec: TenantSpec, settings: StackSettings) -> TenantSpec:
    """Fill the fields whose default is a stack setting, so components never look in two places."""
    artifacts = spec.artifacts.model_copy(
        update={
            "credentials": spec.artifacts.credentials or settings.artifacts.credentials,
            "versioning": settings.artifacts.versioning
            if spec.artifacts.versioning is None
            else spec.artifacts.versioning,
        }
    )
    platform = settings.admission.allowed
    allowed = spec.allowed.model_copy(
        update={
            field: getattr(platform, field) for field in Allowed.model_fields if getattr(spec.allowed, field) is None
        }
    )
    return spec.model_copy(
        update={"region": spec.region or settings.region, "artifacts": artifacts, "allowed": allowed}
    )


def _mergeable(fields: Any) -> bool:
    """Tenant fields (an entry, or the defaults) shaped so that `Catalogue._merged` can layer them: a mapping
    whose `overrides`, if any, map stacks to mappings."""
    if not isinstance(fields, dict):
        return False
    overrides = fields.get("overrides")
    return (
        overrides is None
        or isinstance(overrides, dict)
        and all(values is None or isinstance(values, dict) for values in overrides.values())
    )


def _structure_problems(source: str, raw: Any, stacks: tuple[str, ...]) -> list[Problem]:
    """Shape rules that hold before any merging: top level, names, environments, overrides."""
    if raw is None:
        return [Problem(source, "", "the file is empty; expected a mapping with a `tenants` list")]
    if not isinstance(raw, dict):
        return [Problem(source, "", f"expected a mapping with `defaults` and `tenants`, got {describe(raw)}")]
    problems = [
        Problem(source, join_path(key), "unknown field" + did_you_mean(key, _TOP_LEVEL_KEYS))
        for key in raw
        if key not in _TOP_LEVEL_KEYS
    ]
    defaults = raw.get("defaults", {})
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict):
        problems.append(Problem(source, "defaults", "must be a mapping of tenant fields"))
    else:
        for key in defaults:
            if key not in _TENANT_KEYS or key == "name":
                problems.append(
                    Problem(
                        source,
                        join_path("defaults", key),
                        "unknown field" + did_you_mean(key, _TENANT_KEYS)
                        if key != "name"
                        else "a default name would give every tenant the same name",
                    )
                )
        problems.extend(_environments_problems(source, "defaults", defaults, stacks))
        problems.extend(_overrides_problems(source, "defaults", defaults, stacks))
    tenants = raw.get("tenants")
    if "tenants" not in raw:
        problems.append(Problem(source, "tenants", "missing; expected a list of tenants"))
        return problems
    if not isinstance(tenants, list):
        problems.append(Problem(source, "tenants", f"must be a list of tenants, got {describe(tenants)}"))
        return problems
    by_name: dict[str, tuple[int, str]] = {}
    for index, entry in enumerate(tenants):
        if not isinstance(entry, dict):
            problems.append(Problem(source, f"tenants[{index}]", "must be a mapping of tenant fields"))
            continue
        where = Catalogue._where(index, entry)
        name = entry.get("name")
        if "name" not in entry:
            problems.append(Problem(source, f"{where}.name", "missing; every tenant needs a name"))
        elif not isinstance(name, str):
            problems.append(Problem(source, f"{where}.name", f"must be text (a DNS-1123 label), got {describe(name)}"))
        else:
            key = naming.normalise(name)
            first = by_name.setdefault(key, (index, name))
            if first[0] != index:
                what = (
                    "duplicate name"
                    if first[1] == name
                    else f"name collides after normalisation with {shown(first[1])}"
                )
                problems.append(Problem(source, f"{where}.name", f"{what} of tenants[{first[0]}]"))
        problems.extend(_environments_problems(source, where, entry, stacks))
        if entry.get("environments") == []:
            problems.append(
                Problem(
                    source,
                    f"{where}.environments",
                    "an empty list puts the tenant in no stack; "
                    "list its stacks, or leave `environments` out for every stack",
                )
            )
        problems.extend(_overrides_problems(source, where, entry, stacks))
    return problems


def _no_stack(env: Any, stacks: tuple[str, ...]) -> str:
    return f"no stack {shown(env)}; stacks are {', '.join(stacks)}" + did_you_mean(env, stacks)


def _environments_problems(
    source: str, where: str, fields: Mapping[str, Any], stacks: tuple[str, ...]
) -> list[Problem]:
    envs = fields.get("environments")
    if envs is None:
        return []
    if not isinstance(envs, list) or not all(isinstance(e, str) for e in envs):
        return [Problem(source, f"{where}.environments", "must be a list of stack names")]
    problems = [
        Problem(source, f"{where}.environments[{i}]", _no_stack(env, stacks))
        for i, env in enumerate(envs)
        if env not in stacks
    ]
    if len(set(envs)) != len(envs):
        problems.append(Problem(source, f"{where}.environments", "lists a stack twice"))
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
            problems.append(Problem(source, join_path(where, "overrides", env), _no_stack(env, stacks)))
        elif not isinstance(values, dict):
            problems.append(Problem(source, join_path(where, "overrides", env), "must be a mapping of tenant fields"))
        else:
            for key in values:
                if key in ("name", "overrides", "environments") or key not in _TENANT_KEYS:
                    problems.append(
                        Problem(
                            source,
                            join_path(where, "overrides", env, key),
                            "unknown field" + did_you_mean(key, _TENANT_KEYS)
                            if key not in _TENANT_KEYS
                            else "cannot be overridden per environment",
                        )
                    )
    return problems


def parse(
    text: str | bytes, *, source: str, base_dir: Path, stacks: Iterable[str], parsed_dir: Optional[Path] = None
) -> Catalogue:
    """A catalogue from YAML text; InvalidInput listing every structural and field problem. `parsed_dir`: a
    folder keeping what a text parsed to, so the same text is not parsed again (see `_read_yaml`)."""
    stacks = tuple(stacks)
    try:
        raw = _read_yaml(text, parsed_dir)
    except safe_yaml.YamlRefused as refused:
        raise InvalidInput([Problem(source, path, why) for path, why in refused.problems]) from None
    problems = _structure_problems(source, raw, stacks)
    defaults = raw.get("defaults") or {} if isinstance(raw, dict) else None
    if _mergeable(defaults) and isinstance(raw.get("tenants"), list):
        # Field rules run beside the structure's: every problem of the file in one run.
        catalogue = Catalogue(source, base_dir, defaults, raw["tenants"], stacks)
        problems += catalogue.validate_all_environments()
    if problems:
        raise InvalidInput(problems)
    return catalogue


def _read_yaml(text: str | bytes, parsed_dir: Optional[Path]) -> Any:
    """`safe_yaml.loads(text)`, kept in `parsed_dir` (None: not kept) as JSON under a hash of the text, safe_yaml's
    code and PyYAML's version: what a text parses to depends on nothing else, and JSON reads back the very same
    values (text, numbers, booleans, null, lists, mappings) about a hundred times faster than YAML. Refused texts
    are not kept; an unreadable entry is parsed again."""
    if parsed_dir is None:
        return safe_yaml.loads(text)
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(b"\0".join([Path(safe_yaml.__file__).read_bytes(), yaml.__version__.encode(), data]))
    entry = parsed_dir / f"{digest.hexdigest()}.json"
    try:
        return json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    raw = safe_yaml.loads(data)
    parsed_dir.mkdir(parents=True, exist_ok=True)
    # Written whole then renamed: a reader never sees half an entry.
    fd, tmp = tempfile.mkstemp(dir=parsed_dir, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(raw, out)
    os.replace(tmp, entry)
    return raw


def load(path: Path, *, stacks: Iterable[str], parsed_dir: Optional[Path] = None) -> Catalogue:
    """The catalogue in the file `path`. A file this process read before with the same bytes, and whose
    certificate files still hold what they held, is not parsed again (the tooling reads the catalogue, then runs
    the program, which reads it too). `parsed_dir`: see `_read_yaml`."""
    try:
        data = safe_yaml.read_file(path)
    except safe_yaml.YamlRefused as refused:
        raise InvalidInput([Problem(path.name or str(path), p, why) for p, why in refused.problems]) from None
    key = (str(path.resolve()), data, tuple(stacks))
    known = _LOADED.get(key)
    if known is not None and all(_read_again(known.base_dir, name) == pem for name, pem in known.certificates.items()):
        return known
    catalogue = parse(data, source=path.name, base_dir=path.parent, stacks=key[2], parsed_dir=parsed_dir)
    while len(_LOADED) >= 2:  # both sides of a diff, and no more
        del _LOADED[next(iter(_LOADED))]
    _LOADED[key] = catalogue
    return catalogue


_LOADED: dict[tuple[str, bytes, tuple[str, ...]], Catalogue] = {}


def _read_again(base_dir: Path, name: str) -> str | ValueError:
    try:
        return certificates.read_confined(base_dir, name)
    except ValueError as exc:
        return exc


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
        "type": "object",
        "additionalProperties": False,
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
