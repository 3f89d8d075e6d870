"""Every name tenancy derives, and the rules each target system imposes on it.

One place writes each rule: components ask this module for names instead of formatting strings, the
catalogue asks it whether a tenant's names are valid and distinct, and the property tests exercise it.
Names are never truncated or hashed to fit: a tenant whose names would not fit is rejected, so a name can
always be read back to its tenant and two tenants can never be squeezed into one name.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, fields

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_IAM_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]+$")
_KMS_ALIAS = re.compile(r"^alias/[A-Za-z0-9/_-]+$")
_VAULT_SEGMENT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CQL_TEXT_KEY = re.compile(r"^[a-z0-9][-a-z0-9]*$")

# Fixed names inside every tenant namespace: the Argo design and the External Secrets wiring refer to them.
RUNNER_SERVICE_ACCOUNT = "wf-runner"
SECRETS_SERVICE_ACCOUNT = "external-secrets-vault"
SECRET_STORE = "vault"
ARTIFACT_REPOSITORIES_CONFIGMAP = "artifact-repositories"
ARTIFACT_REPOSITORY_KEY = "default-v1"
WORKFLOW_TEMPLATE = "nextflow-repo-runner"
RATIFY_POLICY = "ratify-policy"
# Ratify objects in a tenant namespace; the verifier names the key provider as "<namespace>/<RATIFY_KEY_PROVIDER>".
RATIFY_KEY_PROVIDER = "notation-signing-cert"
RATIFY_VERIFIER = "verifier-notation"
RATIFY_STORE = "store-oras"
EXECUTOR_ROLE = "wf-runner-executor"
TENANT_ADMIN_ROLE = "tenant-admin"
TENANT_DEVELOPER_ROLE = "tenant-developer"
PLATFORM_ADMIN_BINDING = "platform-admin"
QUOTA = "tenant-quota"
LIMIT_RANGE = "tenant-limits"
# Environment variables through which the MiniCluster containers receive the Flux RESTful credentials.
FLUX_SECRET_KEY_ENV = "FLUX_SECRET_KEY"
# Keys of the Secrets External Secrets writes; the artifact ConfigMap and the MiniCluster read the same keys.
S3_ACCESS_KEY_ID_KEY = "AWS_ACCESS_KEY_ID"
S3_SECRET_ACCESS_KEY_KEY = "AWS_SECRET_ACCESS_KEY"
FLUX_SECRET_KEY_KEY = "flux-secret-key"
TENANT_LABEL = "tenancy.io/tenant"
# Every tenant namespace is "<NAMESPACE_PREFIX><org>-<tenant>".
NAMESPACE_PREFIX = "wf-"
ENVIRONMENT_LABEL = "tenancy.io/environment"
ORG_LABEL = "tenancy.io/org"
MANAGED_BY = "tenancy"
# Argo CD plugin generator objects in the Argo CD namespace; the plugin ConfigMap names the token Secret and key.
GENERATOR = "tenancy-generator"
GENERATOR_TOKEN_SECRET = "tenancy-generator-token"
GENERATOR_TOKEN_KEY = "token"
GENERATOR_REGISTRY_SECRET = "tenancy-generator-keyspaces"
GENERATOR_REGISTRY_PASSWORD_KEY = "password"
# The CA of `tenancy:registry.endpoint`, for the generator to trust.
GENERATOR_REGISTRY_CA_CONFIGMAP = "tenancy-generator-registry-ca"
GENERATOR_REGISTRY_CA_KEY = "ca.crt"
APPLICATION_SET = "tenancy-tenants"
# The ConfigMap (and its key) through which tenancy tells the generator which tenants every answer must contain.
GENERATOR_EXPECTED_CONFIGMAP = "tenancy-generator-expected"
GENERATOR_EXPECTED_KEY = "expected-tenants.json"
# The ServiceAccount in each tenant namespace that Argo CD impersonates to sync the tenant's Application.
ARGOCD_DEPLOYER = "tenancy-deployer"


def service_host(service: str, namespace: str) -> str:
    """The cluster DNS name of a Service."""
    return f"{service}.{namespace}.svc.cluster.local"


def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and bool(DNS1123_LABEL.fullmatch(value))


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and bool(DNS1123_SUBDOMAIN.fullmatch(value))


def label_key_problem(key: str) -> str | None:
    """Kubernetes qualified name: optional DNS-subdomain prefix, '/', name of at most 63 characters."""
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return f"label key {key!r} has more than one '/'"
    if prefix and not is_dns1123_subdomain(prefix):
        return f"label key prefix {prefix!r} is not a DNS-1123 subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (f"label key name {name!r} must be 1-63 characters of letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def label_value_problem(value: str) -> str | None:
    if value == "":
        return None
    if len(value) > 63 or not _LABEL_NAME.fullmatch(value):
        return (f"label value {value!r} must be at most 63 characters of letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def s3_bucket_problem(name: str) -> str | None:
    """S3 general-purpose bucket naming rules."""
    if not 3 <= len(name) <= 63:
        return f"bucket name {name!r} is {len(name)} characters; S3 allows 3 to 63"
    if not _S3_BUCKET.fullmatch(name):
        return f"bucket name {name!r} must be lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return f"bucket name {name!r} must not contain '..', '.-' or '-.'"
    try:
        ipaddress.IPv4Address(name)
        return f"bucket name {name!r} must not look like an IP address"
    except ValueError:
        pass
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if name.startswith(prefix):
            return f"bucket name {name!r} must not start with {prefix!r}"
    for suffix in ("-s3alias", "--ol-s3", "--x-s3", "--table-s3", ".mrap"):
        if name.endswith(suffix):
            return f"bucket name {name!r} must not end with {suffix!r}"
    return None


def _iam_problem(kind: str, name: str, limit: int) -> str | None:
    if len(name) > limit:
        return f"IAM {kind} name {name!r} is {len(name)} characters; IAM allows {limit}"
    if not _IAM_NAME.fullmatch(name):
        return f"IAM {kind} name {name!r} has characters IAM does not allow"
    return None


def _limit_problem(system: str, name: str, limit: int, pattern: re.Pattern[str]) -> str | None:
    if len(name) > limit:
        return f"{system} name {name!r} is {len(name)} characters; the limit is {limit}"
    if not pattern.fullmatch(name):
        return f"{system} name {name!r} has characters {system} does not allow"
    return None


@dataclass(frozen=True)
class TenantNames:
    """All derived names of one tenant in one stack. Built only by `derive`."""

    tenant: str
    namespace: str
    bucket: str
    iam_user: str
    iam_role: str
    iam_policy: str
    kms_alias: str
    vault_base_path: str
    vault_s3_path: str
    vault_minicluster_path: str
    vault_policy: str
    vault_role: str
    registry_key: str
    # The tenant's Argo CD AppProject, and its Application's name (the generator's tenantId is the registry key).
    argocd_project: str
    s3_credentials_secret: str
    minicluster_secret: str
    minicluster: str

    def problems(self) -> dict[str, str]:
        """Each derived name that breaks its system's rules, by field."""
        checks = {
            "namespace": None if is_dns1123_label(self.namespace)
            else f"namespace {self.namespace!r} is not a DNS-1123 label of at most 63 characters",
            "bucket": s3_bucket_problem(self.bucket),
            "iam_user": _iam_problem("user", self.iam_user, 64),
            "iam_role": _iam_problem("role", self.iam_role, 64),
            "iam_policy": _iam_problem("policy", self.iam_policy, 128),
            "kms_alias": _limit_problem("KMS alias", self.kms_alias, 256, _KMS_ALIAS),
            "vault_policy": _limit_problem("Vault policy", self.vault_policy, 128, _VAULT_SEGMENT),
            "vault_role": _limit_problem("Vault role", self.vault_role, 128, _VAULT_SEGMENT),
            "registry_key": _limit_problem("registry key", self.registry_key, 128, _CQL_TEXT_KEY),
            "argocd_project": None if is_dns1123_label(self.argocd_project)
            else f"Argo CD project {self.argocd_project!r} is not a DNS-1123 label of at most 63 characters",
            "s3_credentials_secret": None if is_dns1123_subdomain(self.s3_credentials_secret)
            else f"Secret name {self.s3_credentials_secret!r} is not a DNS-1123 subdomain",
            "minicluster": None if is_dns1123_label(self.minicluster)
            else f"MiniCluster name {self.minicluster!r} is not a DNS-1123 label",
        }
        return {field: why for field, why in checks.items() if why}

    def comparable(self) -> dict[str, str]:
        """Names that must be unique across tenants, in the form their system compares them.

        IAM, KMS aliases and Vault policies compare case-insensitively; S3 and Kubernetes names are already
        lowercase. Fixed in-namespace names (service accounts, ConfigMaps) are unique by their namespace.
        """
        unique = ("namespace", "bucket", "iam_user", "iam_role", "iam_policy", "kms_alias", "vault_base_path",
                  "vault_policy", "vault_role", "registry_key")
        return {f: getattr(self, f).casefold() for f in unique}


def derive(org: str, environment: str, tenant: str, bucket: str | None = None) -> TenantNames:
    """The names of `tenant` in the stack for `environment` of `org`.

    `bucket` is the catalogue's explicit `artifacts.bucket`, for tenants adopting an existing naming scheme.
    """
    scoped = f"tenancy-{org}-{environment}-{tenant}"
    vault_base = f"argo/apps/{tenant}"
    return TenantNames(
        tenant=tenant,
        namespace=f"{NAMESPACE_PREFIX}{org}-{tenant}",
        bucket=bucket or f"{org}-{tenant}-{environment}-artifacts",
        iam_user=scoped,
        iam_role=scoped,
        iam_policy=f"{scoped}-artifacts",
        kms_alias=f"alias/{scoped}-artifacts",
        vault_base_path=vault_base,
        vault_s3_path=f"{vault_base}/s3/artifacts",
        vault_minicluster_path=f"{vault_base}/minicluster",
        vault_policy=f"tenant-{environment}-{tenant}",
        vault_role=f"tenant-{environment}-{tenant}",
        registry_key=f"{org}-{tenant}",
        # Equal to the registry key on purpose: the ApplicationSet names each Application's project after the
        # tenantId the generator returns, so the two can never point at different tenants.
        argocd_project=f"{org}-{tenant}",
        s3_credentials_secret=f"s3-credentials-{tenant}",
        minicluster_secret=f"flux-credentials-{tenant}",
        minicluster=f"flux-{tenant}",
    )


def vault_path_problem(path: str) -> str | None:
    """Why `path` is not a Vault path made only of plain name segments (no globs, '+', '..', empty parts)."""
    # fullmatch: "$" alone would accept a trailing newline, which would end the HCL string early.
    bad = [segment for segment in path.split("/") if not _VAULT_SEGMENT.fullmatch(segment)]
    if bad:
        return (f"Vault path {path!r} must be '/'-separated segments of lowercase letters, digits and '-' "
                f"(refused: {', '.join(repr(s) for s in bad)})")
    return None


def generator_iam_role(org: str, environment: str) -> str:
    """The IRSA role of the Argo CD generator, one per stack."""
    return f"tenancy-{org}-{environment}-argocd-generator"


def generator_iam_policy(org: str, environment: str) -> str:
    """The managed policy that lets the generator's role read the registry table."""
    return f"{generator_iam_role(org, environment)}-read"


def platform_names(org: str, environment: str, namespaces: tuple[str, ...] = ()) -> dict[str, frozenset[str]]:
    """Names the platform itself takes, keyed and folded like `TenantNames.comparable()`.

    They share their systems with tenants' names (IAM roles and policies of the account, the cluster's
    namespaces), so a tenant whose derived names equal one of them is refused: a tenant called
    `argocd-generator` would otherwise be handed the generator's IAM role. `namespaces` are the platform's
    namespaces named by settings (Argo CD's, the cluster DNS namespace).
    """
    return {
        "iam_role": frozenset({generator_iam_role(org, environment).casefold()}),
        "iam_policy": frozenset({generator_iam_policy(org, environment).casefold()}),
        "namespace": frozenset(n.casefold() for n in namespaces),
    }


def admission_object(org: str, environment: str, rule: str) -> str:
    """A cluster-scoped admission policy or binding of one stack, or its parameter ConfigMap (`rule` "params")."""
    return f"tenancy-{org}-{environment}-{rule}"


def minicluster_password_key(user: str) -> str:
    """Key of a MiniCluster user's password in the tenant's Flux credentials Secret (and its Vault entry)."""
    return f"password-{user}"


NAME_FIELDS = tuple(f.name for f in fields(TenantNames))


def normalise(name: str) -> str:
    """The form under which two catalogue names count as the same tenant (case, '_' vs '-', whitespace)."""
    return re.sub(r"[-_\s]+", "-", name.strip().casefold())
