"""Stacks of one project that share a cluster or a Vault: refused where their names or owned objects would meet.

Each stack manages its names as its own: two stacks that derive the same namespace, Vault path, policy or role
would overwrite each other (and the later `pulumi destroy` of either deletes what the other still uses). What
each shared system compares:

- A cluster (`tenancy:kubernetes.clusterIdentifier`, else `context`): tenant namespaces `wf-<org>-<tenant>` and
  dedicated nodes `<org>.<tenant>` carry the org but not the environment, so stacks on one cluster need distinct
  orgs; the admission namespace and, with Argo CD, the generator's fixed-name objects are created by each stack.
- A Vault (`address` + Enterprise `namespace`): policies `tenant-<org>-<env>-<tenant>`; per auth mount, roles of
  the same form; per KV mount, entries under `argo/orgs/<org>/<tenant>` (no environment: stacks sharing a KV
  mount need distinct orgs). A mount or auth backend with `create: true` belongs to its stack.
The checks compare the names each stack derives (not only orgs), since '-' joins org, environment and tenant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional

from . import naming
from . import settings as settings_module
from .problems import InvalidInput, Problem
from .settings import StackSettings

TenantsOf = Callable[[StackSettings], Optional[list[naming.TenantNames]]]


def _known(value: Optional[str]) -> Optional[str]:
    """A setting as compared, or None when it cannot be compared (an encrypted value reads as '[secret]')."""
    return None if value == settings_module.SECRET_PLACEHOLDER else value


def _cluster(s: StackSettings) -> Optional[str]:
    """The cluster's stable name (`clusterIdentifier`) where the stack gives one, else its kubeconfig context (no
    context: the ambient kubeconfig's current one, the same cluster for every stack that names none)."""
    if s.kubernetes.cluster_identifier is not None:
        identifier = _known(s.kubernetes.cluster_identifier)
        return None if identifier is None else f"clusterIdentifier {identifier!r}"
    context = _known(s.kubernetes.context)
    return None if context is None else f"kubernetes.context {s.kubernetes.context!r}"


def _vault(s: StackSettings) -> Optional[tuple[str, str]]:
    address = _known(s.vault.address)
    return None if address is None else (address.rstrip("/").lower(), s.vault.namespace or "")


def _same(a, b) -> bool:
    return a is not None and b is not None and a == b


def problems(
    ours: StackSettings, tenants: list[naming.TenantNames], others: Iterable[StackSettings], tenants_of: TenantsOf
) -> list[Problem]:
    """What this stack (`ours`, with its `tenants`' names) may not share with the project's `others`."""
    source = f"Pulumi.{ours.environment}.yaml"
    found: list[Problem] = []

    def clash(key: str, other: StackSettings, why: str) -> None:
        found.append(Problem(source, f"{settings_module.NAMESPACE}:{key}", f"stack {other.environment!r} {why}"))

    def collide(other: StackSettings, field: str) -> list[str]:
        theirs = tenants_of(other)
        if theirs is None:
            return []
        return sorted({getattr(n, field) for n in tenants} & {getattr(n, field) for n in theirs})

    for other in others:
        if other.environment == ours.environment:
            continue
        if _same(_cluster(ours), _cluster(other)):
            where = f"deploys to the same cluster ({_cluster(ours)})"
            if ours.org == other.org:
                clash(
                    "org",
                    other,
                    f"{where} with the same org: tenant namespaces (wf-<org>-<tenant>) and "
                    "dedicated nodes (<org>.<tenant>) carry no environment, so both stacks would "
                    "manage the same tenants' namespaces; give the stacks distinct orgs or clusters",
                )
            elif shared := collide(other, "namespace"):
                clash(
                    "org",
                    other,
                    f"{where} and derives the same tenant namespaces {', '.join(shared)}; "
                    "choose orgs that do not run into each other's tenant names",
                )
            if ours.admission.namespace == other.admission.namespace:
                clash(
                    "admission.namespace",
                    other,
                    f"{where} and creates the same admission namespace: deleting "
                    "it with either stack refuses the other stack's tenant pods",
                )
            if ours.argocd.enabled and other.argocd.enabled and ours.argocd.namespace == other.argocd.namespace:
                clash(
                    "argocd.enabled",
                    other,
                    f"{where} and runs its Argo CD generator in the same namespace "
                    f"{ours.argocd.namespace!r}, whose objects have fixed names: the "
                    "stacks would overwrite each other's generator and ApplicationSet",
                )
        if not _same(_vault(ours), _vault(other)):
            continue
        where = f"uses the same Vault ({ours.vault.address}"
        where += f", namespace {ours.vault.namespace})" if ours.vault.namespace else ")"
        if shared := collide(other, "vault_policy"):
            clash("org", other, f"{where} and derives the same policy names {', '.join(shared)}")
        for key, mine, theirs, kind in (
            ("vault.kvMount", ours.vault.kv_mount, other.vault.kv_mount, "KV mount"),
            ("vault.kubernetesAuth", ours.vault.kubernetes_auth, other.vault.kubernetes_auth, "auth backend"),
        ):
            if mine.path != theirs.path:
                continue
            if mine.create and theirs.create:
                clash(
                    f"{key}.create",
                    other,
                    f"{where} and creates the same {kind} {mine.path!r}: a shared "
                    f"{kind} belongs to one stack (create: false in the others), or "
                    "destroying either stack deletes what the other keeps there",
                )
            if kind == "KV mount" and ours.org == other.org:
                clash(
                    f"{key}.path",
                    other,
                    f"{where} and KV mount {mine.path!r} with the same org: entries "
                    "argo/orgs/<org>/<tenant> carry no environment, so same-named tenants "
                    "would overwrite each other's values; give the stacks distinct "
                    "orgs or KV mounts",
                )
            if kind == "auth backend" and (shared := collide(other, "vault_role")):
                clash(
                    f"{key}.path",
                    other,
                    f"{where} and auth backend {mine.path!r} and derives the same role names {', '.join(shared)}",
                )
    return found


def check_project(
    project_dir: Path, ours: StackSettings, tenants: list[naming.TenantNames], tenants_of: TenantsOf
) -> None:
    """InvalidInput when `ours` shares a cluster or Vault with another stack of the project in a way that collides.

    A stack whose own settings do not validate is left out: its own `validate` reports it."""
    others = []
    for stack in settings_module.known_stacks(project_dir):
        if stack == ours.environment:
            continue
        try:
            others.append(settings_module.load_stack(project_dir, stack))
        except InvalidInput:
            continue
    found = problems(ours, tenants, others, tenants_of)
    if found:
        raise InvalidInput(found)
