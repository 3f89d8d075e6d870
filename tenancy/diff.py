"""`diff`: what would change between two offline renders, grouped by tenant.

Two comparisons share one engine:
- `--stack dev --to staging` renders two stacks from the working tree. Everything named after the stack
  (bucket `calypr-x-dev-artifacts`, mount `kv-dev`, the URN's stack part) would otherwise differ on every
  resource and bury the real setting differences, so each side's stack and environment names are replaced by
  `<env>` as whole tokens (delimited by anything but a lowercase letter or digit, so `developers` survives).
  What still differs after that is a setting: `kv-<env>` against `kv`, versioning, quotas, protection.
- `--stack prod --base <rev>` renders the same stack with the catalogue and `Pulumi.<stack>.yaml` as they were
  at `<rev>` (program code from the working tree, so only input changes show), against the working tree: what a
  pull request changes. Data resources that would be deleted or replaced (DATA_KINDS says what counts as data
  and which input changes force a replacement) are listed first as destructive, and make the exit code 3; a
  tenant that exists at `<rev>` and is gone now is flagged loudly with advice that fits its lifecycle.

Resources match by URN without its stack part (the type chain and logical name), and belong to the Tenant
component they are parented under; everything else (providers, platform) is grouped as `(shared)`.
Inputs compare as flattened paths; JSON documents held in strings (IAM and bucket policies) are compared
field by field. Secrets were already reduced to "[secret]" by synth, so they show as unchanged or as
present/absent, never as values. `protect` and `retainOnDelete` are shown like inputs but never replace
anything: they are options the engine keeps in its state, not inputs a provider diffs.
"""

from __future__ import annotations

import difflib
import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from components import settings as settings_module
from components.registry_provider import _REPLACING as _REGISTRY_ROW_REPLACING

from . import render_cache, revision
from .replacements import REPLACEMENTS, kubernetes_replaced_when
from .synth import SynthResult, after_apply

SHARED = "(shared)"
PROJECT = "tenancy"  # Pulumi.yaml's name: the project part of every URN
ENV_TOKEN = "<env>"
TENANT_TYPE = "tenancy:index:Tenant"
# Local state and installs are not part of the program; copying them would be slow and pointless.


@dataclass(frozen=True)
class DataKind:
    """A resource type that holds data, and the inputs whose change makes Pulumi replace it (delete + create).

    `replaced_when` are input paths as they appear in resources.json (camelCase, nested with dots); a change at
    or below one of them forces replacement. `source` is where that was read upstream.
    """

    label: str
    replaced_when: tuple[str, ...]
    source: str


# Every type whose deletion or replacement loses data. Besides the fields below, two rules hold for every custom
# resource: a changed provider (a tenant's `region` moves its bucket and key to another regional AWS provider)
# replaces it (pulumi/pulumi pkg/resource/deploy/step_generator.go, `providerChanged` -> ReplaceKeys
# ["provider"]), and a changed `metadata.name` or `metadata.namespace` replaces any Kubernetes object
# (pulumi-kubernetes provider/pkg/provider/forcenew.go, `metadataForceNewProperties`).
DATA_KINDS: dict[str, DataKind] = {
    **{
        typ: DataKind(label, REPLACEMENTS[typ].replaced_when, REPLACEMENTS[typ].source)
        for typ, label in (
            ("aws:s3/bucket:Bucket", "S3 bucket"),
            ("aws:kms/key:Key", "KMS key"),
            ("aws:keyspaces/keyspace:Keyspace", "registry keyspace"),
            ("aws:keyspaces/table:Table", "registry table"),
            ("vault:index/mount:Mount", "Vault KV mount"),
            ("vault:kv/secretV2:SecretV2", "Vault KV data"),
            ("random:index/randomPassword:RandomPassword", "generated password"),
        )
    },
    "kubernetes:core/v1:Namespace": DataKind(
        "namespace",
        ("metadata.name",),
        "pulumi-kubernetes provider/pkg/provider/forcenew.go: .metadata.name (every kind)",
    ),
    # tenancy's only dynamic resource is the tenant's registry row (tests/test_diff.py holds it to that).
    "pulumi-python:dynamic:Resource": DataKind(
        "registry row",
        _REGISTRY_ROW_REPLACING,
        "components/registry_provider.py: RegistryProvider.diff replaces on these fields",
    ),
}
PROVIDER_FIELD = "[provider]"


@dataclass
class Destructive:
    """A data resource that the change deletes or replaces; `protected`/`retained` are its current options."""

    urn: str
    tenant: str
    action: str  # "delete" | "replace" | "expire" (S3 deletes objects, see data_loss_reasons)
    reason: str
    protected: bool
    retained: bool
    key: str = field(repr=False, default="")

    def consequence(self) -> str:
        if self.action == "expire":
            return "S3 itself loses the data: the bucket's protect and retainOnDelete do not prevent it"
        if self.protected:
            return "protected: `pulumi up` stops before touching it until it is unprotected"
        if self.retained:
            return "retained: left in place, no longer managed"
        return "DESTROYED with its contents"

    def as_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "tenant": self.tenant,
            "action": self.action,
            "reason": self.reason,
            "protected": self.protected,
            "retained": self.retained,
        }


@dataclass
class TenantDiff:
    tenant: str
    status: str  # "changed" | "added" | "removed"
    only_left: list[str] = field(default_factory=list)
    only_right: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    # resource key -> why Pulumi would replace it rather than update it in place
    replaced: dict[str, list[str]] = field(default_factory=dict)
    # deleted resource key -> its current (protect, retainOnDelete)
    deleted_options: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    lifecycle: tuple[Optional[str], Optional[str]] = (None, None)  # left, right; None for (shared) or absent
    data_resources: int = 0
    protected_data_resources: int = 0
    unchanged: int = 0  # resources on both sides with nothing changed

    def empty(self) -> bool:
        return self.status == "changed" and not (self.only_left or self.only_right or self.changed)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.only_right),
            "changed": len(self.changed) - len(self.replaced),
            "replaced": len(self.replaced),
            "deleted": len(self.only_left),
        }

    def summary(self) -> str:
        return ", ".join(f"{n} {what}" for what, n in self.counts().items())

    def operations(self) -> dict[str, list[str]]:
        """Resource keys by what `pulumi up` would do to them (TOTALS' operations)."""
        return {
            "create": self.only_right,
            "update": [k for k in self.changed if k not in self.replaced],
            "delete": self.only_left,
            "replace": list(self.replaced),
        }


@dataclass
class Diff:
    left: str
    right: str
    normalised: bool
    right_protects_data: bool
    tenants: list[TenantDiff]
    # Only across revisions of one stack is a missing resource a deletion; across stacks it is just not promoted.
    removal_is_deletion: bool = False
    destructive: list[Destructive] = field(default_factory=list)
    # Across revisions: the tenants a changed shard count moves to another stack, and the counts (base, head).
    moves: list[Any] = field(default_factory=list)
    shards: tuple[int, int] = (1, 1)
    # The commands, in order, that move them without recreating anything (sharding.move_steps).
    move_steps: list[str] = field(default_factory=list)
    # Tenant -> the stack that holds it, for an environment with shards (totals per stack); (shared) records are
    # the platform stack's.
    stack_of: dict[str, str] = field(default_factory=dict)

    @property
    def different(self) -> bool:
        # Tenants that change stack are a change even when every resource matches: without the state moves,
        # `pulumi up` would delete them in one stack and create them empty in another.
        return bool(self.moves) or any(not t.empty() for t in self.tenants)


@dataclass
class _Entry:
    urn: str
    type: str
    custom: bool
    flat: dict[str, Any]


def _normaliser(names: set[str]):
    if not names:
        return lambda value: value
    pattern = re.compile(
        r"(?<![a-z0-9])(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")(?![a-z0-9])"
    )

    def normalise(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(ENV_TOKEN, value)
        if isinstance(value, dict):
            return {normalise(k): normalise(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normalise(v) for v in value]
        return value

    return normalise


def _flatten(value: Any, path: str, into: dict[str, Any]) -> None:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(value[key], f"{path}.{key}" if path else key, into)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", into)
    else:
        into[path] = value


def _key(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<type chain>::<name>
    return urn.split("::", 2)[2]


def short_name(key: str) -> str:
    """`Bucket research-storage-bucket` for `tenancy:index:Tenant$...$aws:s3/bucket:Bucket::research-storage-bucket`."""
    chain, _, name = key.rpartition("::")
    return f"{chain.rsplit('$', 1)[-1].rsplit(':', 1)[-1]} {name}"


def _by_tenant(result: SynthResult) -> dict[str, list[dict[str, Any]]]:
    """tenant (or SHARED) -> its records."""
    owner: dict[str, str] = {}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in result.resources:  # parents are registered before their children
        tenant = record["name"] if record["type"] == TENANT_TYPE else owner.get(record["parent"] or "", SHARED)
        owner[record["urn"]] = tenant
        grouped.setdefault(tenant, []).append(record)
    return grouped


def _index(
    grouped: dict[str, list[dict[str, Any]]], normalise, unchanged: frozenset[str] = frozenset()
) -> dict[str, dict[str, _Entry]]:
    """tenant -> resource key -> entry with its flattened comparable fields; tenants in `unchanged` are left out."""
    index: dict[str, dict[str, _Entry]] = {}
    for tenant, records in grouped.items():
        if tenant in unchanged:
            continue
        entries = index.setdefault(tenant, {})
        for record in records:
            flat: dict[str, Any] = {}
            _flatten(normalise(record["inputs"]), "", flat)
            flat[PROVIDER_FIELD] = normalise(record["provider"])
            flat["[protect]"] = record["protect"]
            flat["[retainOnDelete]"] = record["retainOnDelete"]
            entries[normalise(_key(record["urn"]))] = _Entry(record["urn"], record["type"], record["custom"], flat)
    return index


def _under(path: str, field_path: str) -> bool:
    return field_path == "" or path == field_path or path.startswith((field_path + ".", field_path + "["))


def _provider_name(urn: Optional[str]) -> str:
    return (urn or "none").rsplit("::", 1)[-1]


def replacement_reasons(typ: str, custom: bool, fields: dict[str, list[Any]]) -> list[str]:
    """Why Pulumi would replace a resource whose comparable fields changed as `fields` (empty: in place)."""
    if not custom:
        return []
    reasons = []
    if PROVIDER_FIELD in fields:
        old, new = fields[PROVIDER_FIELD]
        reasons.append(f"provider changes from {_provider_name(old)} to {_provider_name(new)}")
    if typ.startswith("kubernetes:"):
        replaced_when = kubernetes_replaced_when(typ)
    elif typ in REPLACEMENTS:
        replaced_when = REPLACEMENTS[typ].replaced_when
    else:  # the registry row, whose dynamic provider says itself what replaces it
        replaced_when = DATA_KINDS[typ].replaced_when if typ in DATA_KINDS else ()
    for path, (old, new) in fields.items():
        # `[protect]`, `[retainOnDelete]` (and `[provider]`, handled above) are resource options, not inputs: the
        # engine records them in its state and never asks the provider to diff them (pulumi/pulumi
        # pkg/resource/deploy/step_generator.go), so they replace nothing, even where every input does.
        if not path.startswith("[") and any(_under(path, f) for f in replaced_when):
            reasons.append(f"{path or '(value)'} changes from {_show(old)} to {_show(new)}")
    return reasons


PROVIDER_TYPE_PREFIX = "pulumi:providers:"
KUBERNETES_PROVIDER = "pulumi:providers:kubernetes"
# The inputs pulumi-kubernetes reads the target cluster from (getActiveClusterFromConfig).
_KUBERNETES_CLUSTER_INPUTS = ("kubeconfig", "context", "cluster")


def provider_replacement_reasons(typ: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why a provider whose flattened inputs go from `old` to `new` would itself be replaced (empty: updated in
    place). The engine then replaces every resource it manages (`providerChanged`, see DATA_KINDS).

    pulumi-kubernetes v4.25.0 provider/pkg/provider/provider.go `DiffConfig`: a `clusterIdentifier` set on both
    sides alone decides (changed: replace; same: never replace); otherwise (absent, added or removed) a change of
    `kubeconfig`, `context` or `cluster` replaces when the kubeconfig resolves old and new to cluster entries that
    differ. A render holds no kubeconfig (the provider reads KUBECONFIG where `pulumi up` runs), so such a change
    counts as a replacement; a changed `renderYamlToDirectory` replaces too.
    Bridged providers (aws, vault, random) replace only on config marked ForcesProviderReplace
    (pulumi-terraform-bridge pkg/tfbridge/provider.go `configDiffer`); pulumi-aws provider/resources.go marks none,
    not even `region`, and tenancy names each AWS provider after its region, so another region is another provider.
    """
    if typ != KUBERNETES_PROVIDER:
        return []

    def value(side: dict[str, Any], key: str) -> Any:
        found = {path: v for path, v in side.items() if _under(path, key)}
        return found.get(key, found or None)

    old_id, new_id = value(old, "clusterIdentifier"), value(new, "clusterIdentifier")
    if old_id is not None and new_id is not None:
        return [] if old_id == new_id else [f"clusterIdentifier changes from {_show(old_id)} to {_show(new_id)}"]
    without = "and no clusterIdentifier is set before and after"
    reasons = [
        f"{key} changes from {_show(value(old, key))} to {_show(value(new, key))} {without}"
        for key in _KUBERNETES_CLUSTER_INPUTS
        if value(old, key) != value(new, key)
    ]
    if value(old, "renderYamlToDirectory") != value(new, "renderYamlToDirectory"):
        reasons.append("renderYamlToDirectory changes")
    return reasons


def replaced_providers(left: Iterable[dict[str, Any]], right: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Resource key of every provider on both sides that the change replaces -> why (provider_replacement_reasons)."""

    def providers(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {_key(r["urn"]): r for r in records if r["type"].startswith(PROVIDER_TYPE_PREFIX)}

    before, after = providers(left), providers(right)
    replaced = {}
    for key in before.keys() & after.keys():
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        _flatten(before[key]["inputs"], "", old)
        _flatten(after[key]["inputs"], "", new)
        reasons = provider_replacement_reasons(before[key]["type"], old, new)
        if reasons:
            replaced[key] = "; ".join(reasons)
    return replaced


_LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
# Lifecycle actions that delete objects: (the rule's field, its days field, what S3 deletes).
_EXPIRING_ACTIONS = (
    ("expiration", "days", "current objects"),
    ("noncurrentVersionExpiration", "noncurrentDays", "noncurrent versions (what overwrites and deletes kept)"),
)


def _rules(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """The lifecycle rules of a flattened BucketLifecycleConfiguration, each as {sub path: value}."""
    rules: dict[int, dict[str, Any]] = {}
    for path, value in flat.items():
        match = re.fullmatch(r"rules\[(\d+)\]\.(.+)", path)
        if match:
            rules.setdefault(int(match[1]), {})[match[2]] = value
    return [rules[i] for i in sorted(rules)]


def _expiries(flat: dict[str, Any], action: str, days: str) -> dict[tuple, int]:
    """Objects a lifecycle configuration lets S3 delete by `action`: the shortest age per rule scope (its filter)."""
    found: dict[tuple, int] = {}
    for rule in _rules(flat):
        age = rule.get(f"{action}.{days}")
        if rule.get("status") == "Enabled" and isinstance(age, int):
            scope = tuple(
                sorted((k, json.dumps(v)) for k, v in rule.items() if _under(k, "filter") or _under(k, "prefix"))
            )
            found[scope] = min(age, found.get(scope, age))
    return found


def data_loss_reasons(typ: str, old: Optional[dict[str, Any]], new: Optional[dict[str, Any]]) -> list[str]:
    """Why an in-place update (or, with `new` None, the deletion) of a bucket setting makes S3 delete data that it
    keeps now. The bucket stays, so protect and retainOnDelete do not stop it.

    terraform-provider-aws internal/service/s3/bucket_lifecycle_configuration.go puts the whole new rule set
    (PutBucketLifecycleConfiguration): an `expiration` deletes current objects older than its days, a
    `noncurrentVersionExpiration` the versions that became noncurrent longer ago than its days; a new or shorter
    one deletes what the old rules kept. internal/service/s3/bucket_versioning.go puts the new status, and its
    delete suspends versioning: from then on an overwrite or delete destroys the previous object instead of keeping
    it as a noncurrent version.
    """
    if typ == _VERSIONING and old is not None and old.get("versioningConfiguration.status") == "Enabled":
        status = None if new is None else new.get("versioningConfiguration.status")
        if status != "Enabled":
            return [
                f"versioning changes from Enabled to {status or 'Suspended (its resource is deleted)'}: every "
                f"later overwrite or delete destroys the previous object"
            ]
    if typ == _LIFECYCLE and old is not None and new is not None:
        reasons = []
        for action, days, what in _EXPIRING_ACTIONS:
            before = _expiries(old, action, days)
            for scope, age in _expiries(new, action, days).items():
                if scope not in before or age < before[scope]:
                    was = f"after {before[scope]} days" if scope in before else "never"
                    reasons.append(f"{action} deletes {what} after {age} days (was {was})")
        return reasons
    return []


def _deletion_reason(entry: TenantDiff, typ: str, added_types: set[str]) -> str:
    if entry.status == "removed":
        return "its tenant is no longer in the catalogue"
    if typ in added_types:
        return "no longer declared under this name; a new one is declared in its place (its logical name changed)"
    left, right = entry.lifecycle
    if left != right and right == "offboarded":
        return "no longer declared: the tenant is offboarded"
    return "no longer declared by the program (a setting that needed it changed)"


def compare(
    left: SynthResult,
    right: SynthResult,
    left_names: set[str],
    right_names: set[str],
    right_protects_data: bool,
    over_time: bool = False,
    lifecycles: tuple[dict[str, str], dict[str, str]] = ({}, {}),
) -> Diff:
    """Diff two renders; `*_names` are the stack/environment names replaced by `<env>` on each side.

    `over_time`: both sides are the same stack (a revision and the working tree), so what is only on the left
    would be deleted and data resources deleted or replaced are listed as destructive.
    """
    return _compare_groups(
        left.stack,
        right.stack,
        _by_tenant(left),
        _by_tenant(right),
        left_names,
        right_names,
        right_protects_data,
        over_time,
        lifecycles,
    )


def _compare_groups(
    left_label: str,
    right_label: str,
    left_groups: dict[str, list[dict[str, Any]]],
    right_groups: dict[str, list[dict[str, Any]]],
    left_names: set[str],
    right_names: set[str],
    right_protects_data: bool,
    over_time: bool,
    lifecycles: tuple[dict[str, str], dict[str, str]],
    same: Optional[dict[str, int]] = None,
) -> Diff:
    """`compare` of records grouped by tenant; `same` are tenants known to be identical on both sides without
    their records (left out of the groups), with their resource counts."""
    same = same or {}
    # A tenant with equal records on both sides (the same cache entry, typically) has nothing to flatten or
    # compare; equal records are equal after normalisation only when both sides normalise alike.
    # Across revisions, a replaced provider takes every resource it manages with it (provider_replacement_reasons).
    cascade = replaced_providers(_records(left_groups), _records(right_groups)) if over_time else {}
    unchanged = frozenset(
        t
        for t in left_groups.keys() & right_groups.keys()
        if left_names == right_names and left_groups[t] == right_groups[t] and not cascade
    )
    left_index = _index(left_groups, _normaliser(left_names), unchanged)
    right_index = _index(right_groups, _normaliser(right_names), unchanged)
    tenants = []
    destructive: list[Destructive] = []
    for tenant in sorted(set(left_groups) | set(right_groups) | set(same), key=lambda t: (t == SHARED, t)):
        lifecycle = (lifecycles[0].get(tenant), lifecycles[1].get(tenant))
        if tenant in same:
            # Data counts serve only the advice about a removed tenant; an identical one has none to count.
            tenants.append(TenantDiff(tenant, "changed", lifecycle=lifecycle, unchanged=same[tenant]))
            continue
        if tenant in unchanged:
            data_records = [r for r in left_groups[tenant] if r["type"] in DATA_KINDS]
            tenants.append(
                TenantDiff(
                    tenant,
                    "changed",
                    lifecycle=lifecycle,
                    data_resources=len(data_records),
                    protected_data_resources=sum(1 for r in data_records if r["protect"]),
                    unchanged=len(left_groups[tenant]),
                )
            )
            continue
        ours, theirs = left_index.get(tenant, {}), right_index.get(tenant, {})
        status = "removed" if not theirs else "added" if not ours else "changed"
        entry = TenantDiff(
            tenant, status, sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours)), lifecycle=lifecycle
        )
        entry.deleted_options = {
            key: (bool(ours[key].flat["[protect]"]), bool(ours[key].flat["[retainOnDelete]"]))
            for key in entry.only_left
        }
        lost: dict[str, list[str]] = {}
        for key in sorted(set(ours) & set(theirs)):
            a, b = ours[key].flat, theirs[key].flat
            fields = {p: [a.get(p), b.get(p)] for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)}
            reasons = replacement_reasons(ours[key].type, ours[key].custom, fields) if fields else []
            if key in cascade:
                reasons.append(cascade[key])
            provider = a[PROVIDER_FIELD]
            if ours[key].custom and PROVIDER_FIELD not in fields and provider and _key(provider) in cascade:
                reasons.append(f"its provider {_provider_name(provider)} is replaced: {cascade[_key(provider)]}")
            if fields or reasons:
                entry.changed[key] = fields
            if reasons:
                entry.replaced[key] = reasons
            elif fields:
                lost[key] = data_loss_reasons(ours[key].type, a, b)
        entry.unchanged = len(set(ours) & set(theirs)) - len(entry.changed)
        data = [e for e in ours.values() if e.type in DATA_KINDS]
        entry.data_resources = len(data)
        entry.protected_data_resources = sum(1 for e in data if e.flat["[protect]"])
        if over_time:
            added_types = {theirs[k].type for k in entry.only_right}
            for key in entry.only_left:
                old = ours[key]
                if old.type in DATA_KINDS:
                    destructive.append(
                        _destructive(old, tenant, "delete", key, _deletion_reason(entry, old.type, added_types))
                    )
            for key, reasons in entry.replaced.items():
                old = ours[key]
                if old.type in DATA_KINDS:
                    destructive.append(_destructive(old, tenant, "replace", key, "; ".join(reasons)))
            # Bucket settings whose update or removal makes S3 itself delete objects the bucket keeps now (unless
            # the bucket goes too: that is listed above).
            for key in entry.only_left:
                lost[key] = data_loss_reasons(ours[key].type, ours[key].flat, None)
            going = {
                ours[k].flat.get("bucket")
                for k in [*entry.only_left, *entry.replaced]
                if ours[k].type == "aws:s3/bucket:Bucket"
            }
            for key, reasons in lost.items():
                if reasons and ours[key].flat.get("bucket") not in going:
                    old = ours[key]
                    destructive.append(
                        Destructive(
                            old.urn,
                            tenant,
                            "expire",
                            f"S3 bucket: {'; '.join(reasons)}",
                            bool(old.flat["[protect]"]),
                            bool(old.flat["[retainOnDelete]"]),
                            key,
                        )
                    )
        tenants.append(entry)
    return Diff(
        left_label,
        right_label,
        bool(left_names or right_names),
        right_protects_data,
        tenants,
        removal_is_deletion=over_time,
        destructive=destructive,
    )


def _records(groups: dict[str, list[dict[str, Any]]]) -> Iterable[dict[str, Any]]:
    return (record for records in groups.values() for record in records)


def _destructive(old: _Entry, tenant: str, action: str, key: str, reason: str) -> Destructive:
    return Destructive(
        old.urn,
        tenant,
        action,
        f"{DATA_KINDS[old.type].label}: {reason}",
        bool(old.flat["[protect]"]),
        bool(old.flat["[retainOnDelete]"]),
        key,
    )


def _render(
    project_dir: Path,
    stack: str,
    tenants: Optional[Path],
    progress_label: Optional[str] = None,
    cache_dir: Optional[Path] = None,
    jobs: int = 1,
    inputs: Optional[tuple[Any, list]] = None,
) -> tuple[settings_module.StackSettings, SynthResult, dict[str, str]]:
    """One side: every stack of the environment (platform and shards) in one result, so resources match without
    their stack, rendered through render's cache (`cache_dir`, None for none) and `jobs` processes. `inputs`: the
    stack's (settings, specs) when already loaded."""
    from . import environment
    from .inputs import load_inputs

    stack_settings, specs = inputs or load_inputs(project_dir, stack, tenants)
    result = environment.merged(
        environment.render(
            project_dir,
            stack,
            tenants,
            progress=_progress(progress_label, stack, len(specs)),
            inputs=(stack_settings, specs),
            cache_dir=cache_dir,
            jobs=jobs,
        ),
        stack,
    )
    return stack_settings, result, {spec.name: spec.lifecycle for spec, _ in specs}


def _progress(label: Optional[str], stack: str, tenants: int):
    from . import synth

    return (lambda name: synth.Progress(label if name == stack else f"{label}:{name}", tenants)) if label else None


def between_stacks(
    project_dir: Path,
    stack: str,
    other: str,
    tenants: Optional[Path] = None,
    progress: bool = False,
    cache_dir: Optional[Path] = None,
    jobs: int = 1,
) -> Diff:
    left_settings, left, left_lifecycles = _render(
        project_dir, stack, tenants, stack if progress else None, cache_dir, jobs
    )
    right_settings, right, right_lifecycles = _render(
        project_dir, other, tenants, other if progress else None, cache_dir, jobs
    )
    return compare(
        left,
        right,
        {stack, left_settings.environment},
        {other, right_settings.environment},
        right_settings.protect_data,
        lifecycles=(left_lifecycles, right_lifecycles),
    )


def against_base(
    project_dir: Path, stack: str, rev: str, progress: bool = False, cache_dir: Optional[Path] = None, jobs: int = 1
) -> Diff:
    """The stack rendered from `rev`'s catalogue and stack config (working-tree code) against the working tree.

    Both sides share `cache_dir`: a tenant whose merged spec is the same at `rev` is not rendered again, and when
    both sides found it in one cache entry its records are not even read (they are the same records)."""
    from components import sharding

    from .inputs import load_inputs

    head_label, base_label = f"{stack}@working-tree", f"{stack}@{rev}"
    # Beside the renderings, the catalogues parsed (the base's is most often parsed already).
    parsed_dir = cache_dir.parent / render_cache.PARSED_DIR.name if cache_dir is not None else None
    head_inputs = load_inputs(project_dir, stack, None, parsed_dir)
    with revision.project_at(project_dir, stack, rev) as base_dir:
        base_inputs = load_inputs(base_dir, stack, None, parsed_dir)
        lifecycles = tuple({spec.name: spec.lifecycle for spec, _ in specs} for _, specs in (base_inputs, head_inputs))
        if cache_dir is not None:
            head = _renderings(project_dir, stack, head_inputs, head_label if progress else None, cache_dir, jobs)
            base = _renderings(base_dir, stack, base_inputs, base_label if progress else None, cache_dir, jobs)
            same = _same(base, head)
            base_groups, head_groups = _groups(base, same), _groups(head, same)
            if same and replaced_providers(_records(base_groups), _records(head_groups)):
                # A replaced provider replaces the resources of unchanged tenants too: read them after all.
                same = frozenset()
                base_groups, head_groups = _groups(base, same), _groups(head, same)
            result = _compare_groups(
                base_label,
                head_label,
                base_groups,
                head_groups,
                set(),
                set(),
                head_inputs[0].protect_data,
                True,
                lifecycles,
                same,
            )
        else:
            _, head_result, _ = _render(
                project_dir, stack, None, head_label if progress else None, cache_dir, jobs, head_inputs
            )
            _, base_result, _ = _render(
                base_dir, stack, None, base_label if progress else None, cache_dir, jobs, base_inputs
            )
            base_result.stack, head_result.stack = base_label, head_label
            result = compare(
                base_result,
                head_result,
                set(),
                set(),
                head_inputs[0].protect_data,
                over_time=True,
                lifecycles=lifecycles,
            )
    environment, (old, new) = head_inputs[0].environment, (base_inputs[0].shards, head_inputs[0].shards)
    both = [spec.name for spec, _ in head_inputs[1] if spec.name in lifecycles[0]]
    result.moves, result.shards = sharding.moves(environment, both, old, new), (old, new)
    result.move_steps = sharding.move_steps(environment, PROJECT, result.moves, old, new)
    if max(old, new) > 1:
        result.stack_of = {
            **{name: sharding.stack_of(environment, name, old) for name in lifecycles[0]},
            **{name: sharding.stack_of(environment, name, new) for name in lifecycles[1]},
            SHARED: environment,
        }
    return result


def _renderings(
    project_dir: Path, stack: str, inputs: tuple[Any, list], label: Optional[str], cache_dir: Path, jobs: int
) -> dict[str, Any]:
    """One side as render's cache holds it: stack -> render.Rendering for every stack of the environment (within
    the resource budget)."""
    from . import environment

    return environment.renderings(
        project_dir, stack, None, _progress(label, stack, len(inputs[1])), inputs, cache_dir, jobs
    )


def _same(base: dict[str, Any], head: dict[str, Any]) -> dict[str, int]:
    """Tenants with the very same records on both sides, known from their keys (same stack, same cache entry),
    with their resource counts."""
    base_stacks = {name: stack for stack, rendered in base.items() for name in rendered.order}
    return {
        name: rendered.counts[name]
        for stack, rendered in head.items()
        for name in rendered.order
        if base_stacks.get(name) == stack and base[stack].same_as(rendered, name)
    }


def _groups(rendered: dict[str, Any], same: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """What `_by_tenant` gives for the environment's merged render (environment.merged), without reading the
    tenants in `same`."""
    from . import environment

    env = next(iter(rendered))
    shared: list[dict[str, Any]] = []
    seen: set[str] = set()
    groups: dict[str, list[dict[str, Any]]] = {}
    for stack, rendering in rendered.items():
        for record in rendering.shared:
            record = environment.renamed(record, stack, env)
            if record["urn"] not in seen:
                seen.add(record["urn"])
                shared.append(record)
        groups.update(
            (name, [environment.renamed(record, stack, env) for record in rendering.records(name)])
            for name in rendering.order
            if name not in same
        )
    return {SHARED: shared, **groups} if shared else groups


def exit_code(diff: Diff) -> int:
    """0 no change, 2 changes, 3 destructive changes or tenants that need state moves (CI asks for an extra
    approval); 1 is invalid input."""
    return 3 if diff.destructive or diff.moves else 2 if diff.different else 0


def _show(value: Any) -> str:
    # Values the mocks made up (ARNs in the mock account, key ids) are not what `pulumi up` will set.
    return after_apply(json.dumps(value, sort_keys=True) if not isinstance(value, str) else value)


# The longest pull-request comment GitHub accepts ("Body is too long (maximum is 65536 characters)").
COMMENT_LIMIT = 65_536
# Text output fits a terminal or a CI log of this many columns.
WIDTH = 120
# `pulumi preview`'s operations (pulumi/pulumi pkg/resource/deploy/step.go StepOp, whose RawPrefix is `+ ` create,
# `~ ` update, `- ` delete, `+-` replace; the totals line writes replace as `±`, one column like the others).
TOTALS = (("create", "+"), ("update", "~"), ("delete", "-"), ("replace", "±"))


def type_of(key: str) -> str:
    """The type token of a resource key: `aws:s3/bucket:Bucket` for `...$aws:s3/bucket:Bucket::name`."""
    return key.rpartition("::")[0].rsplit("$", 1)[-1]


def totals(tenants: list[TenantDiff]) -> dict[str, int]:
    """Resources to create, update, delete and replace, and unchanged, over `tenants`."""
    counted = {operation: 0 for operation, _ in TOTALS}
    for entry in tenants:
        for operation, keys in entry.operations().items():
            counted[operation] += len(keys)
    counted["unchanged"] = sum(entry.unchanged for entry in tenants)
    return counted


def totals_line(counted: dict[str, int]) -> str:
    """`+ 44 to create, ~ 2 to update, - 1 to delete, ± 3 to replace, 180 unchanged`"""
    return ", ".join(
        [f"{symbol} {counted[operation]} to {operation}" for operation, symbol in TOTALS]
        + [f"{counted['unchanged']} unchanged"]
    )


def stack_totals(diff: Diff) -> dict[str, dict[str, int]]:
    """Totals per stack of an environment with shards (tenants by the stack that holds them); {} otherwise."""
    if not diff.stack_of:
        return {}
    stacks: dict[str, list[TenantDiff]] = {}
    for entry in diff.tenants:
        stacks.setdefault(diff.stack_of.get(entry.tenant, diff.stack_of[SHARED]), []).append(entry)
    return {stack: totals(entries) for stack, entries in sorted(stacks.items())}


def type_totals(diff: Diff) -> dict[str, dict[str, int]]:
    """type token -> operation -> how many resources of that type it is done to (operations that happen only)."""
    counted: dict[str, dict[str, int]] = {}
    for entry in diff.tenants:
        for operation, keys in entry.operations().items():
            for key in keys:
                by_op = counted.setdefault(type_of(key), {})
                by_op[operation] = by_op.get(operation, 0) + 1
    return dict(sorted(counted.items()))


def _type_lines(diff: Diff) -> list[str]:
    return [
        f"{', '.join(f'{symbol} {ops[operation]}' for operation, symbol in TOTALS if operation in ops)}  {typ}"
        for typ, ops in type_totals(diff).items()
    ]


def _wrap(line: str) -> list[str]:
    """`line` in lines of at most WIDTH columns, continued under its own indent."""
    if len(line) <= WIDTH:
        return [line]
    lead = line[: len(line) - len(line.lstrip(" !"))]
    return textwrap.wrap(
        line, WIDTH, subsequent_indent=lead + "    ", break_on_hyphens=False, drop_whitespace=True
    ) or [line[:WIDTH]]


def _field_lines(path: str, a: Any, b: Any, indent: str) -> list[str]:
    if path == PROVIDER_FIELD:
        a, b = _provider_name(a), _provider_name(b)
    if isinstance(a, str) and isinstance(b, str) and ("\n" in a or "\n" in b):
        # Embedded documents (YAML in ConfigMaps, HCL policies): only the lines that changed.
        changed = difflib.unified_diff(after_apply(a).splitlines(), after_apply(b).splitlines(), lineterm="", n=0)
        return [f"{indent}{path}:"] + [
            f"{indent}  {line}" for line in changed if not line.startswith(("---", "+++", "@@"))
        ]
    line = f"{indent}{path}: {_show(a)} -> {_show(b)}"
    if len(line) <= WIDTH:
        return [line]
    return [f"{indent}{path}:", *_wrap(f"{indent}  - {_show(a)}"), *_wrap(f"{indent}  + {_show(b)}")]


def _removed_tenant_advice(diff: Diff, entry: TenantDiff) -> list[str]:
    """What to do about a tenant whose entry was removed; it depends on where its lifecycle had got to."""
    data = (
        f"{entry.protected_data_resources} of its {entry.data_resources} data resources are protected"
        if diff.right_protects_data
        else f"its {entry.data_resources} data resources are not protected"
    )
    if entry.lifecycle[0] == "offboarded":
        return [
            f"It was offboarded, so only its data and fenced namespace remain; {data}.",
            "Remove the entry only once the data is archived or handed over"
            + (
                ", after `pulumi state unprotect` of the bucket, key and namespace (retained ones then stay in "
                "AWS and the cluster, unmanaged)."
                if diff.right_protects_data
                else ": this stack destroys it with the entry."
            ),
        ]
    return [
        f"It is {entry.lifecycle[0] or 'live'}: {data}"
        + (
            ", so `pulumi up` stops before deleting anything."
            if diff.right_protects_data
            else ", so `pulumi up` destroys them with their contents."
        ),
        "Offboard it first (`lifecycle: offboarded`), apply, archive its data, and only then remove the entry.",
    ]


def _lifecycle(entry: TenantDiff, arrow: str = "->") -> str:
    left, right = entry.lifecycle
    return (left or right or "") if left == right or not (left and right) else f"{left} {arrow} {right}"


def _tenant_title(entry: TenantDiff) -> str:
    return entry.tenant + (f" ({_lifecycle(entry)})" if _lifecycle(entry) else "")


def _options(protected: bool, retained: bool) -> str:
    return f"{'' if protected else 'not '}protected, {'' if retained else 'not '}retained"


def _resource_lines(entry: TenantDiff, indent: str, short: bool) -> list[str]:
    name = short_name if short else (lambda key: f"{type_of(key)} {key.rpartition('::')[2]}")
    lines = [f"- {name(key)}  ({_options(*entry.deleted_options[key])})" for key in entry.only_left]
    lines += [f"+ {name(key)}" for key in entry.only_right]
    for key, fields in entry.changed.items():
        lines.append(
            f"{'+-' if key in entry.replaced else '~'} {name(key)}"
            + (f"  (replaced: {'; '.join(entry.replaced[key])})" if key in entry.replaced else "")
        )
        for path, (a, b) in fields.items():
            lines += _field_lines(path or "(value)", a, b, indent)
    return lines


def format_text(diff: Diff) -> str:
    lines = [
        f"diff {diff.left} -> {diff.right}"
        + (f" (stack/environment names shown as {ENV_TOKEN})" if diff.normalised else "")
    ]
    if diff.destructive:
        lines += ["", "!" * 78, f"!!! {len(diff.destructive)} DESTRUCTIVE CHANGE(S): data would be deleted or replaced"]
        for item in diff.destructive:
            lines.append(
                f"!!! {item.action.upper()} {short_name(item.key)} ({item.tenant}): {item.reason}; {item.consequence()}"
            )
        lines.append("!" * 78)
    if diff.moves:
        lines += ["", "!" * 78, *(f"!!! {line}" for line in _moves_notice(diff)), "!" * 78, *_step_lines(diff, "  ")]
    changed = [t for t in diff.tenants if not t.empty()]
    if changed:
        lines += ["", f"totals: {totals_line(totals(diff.tenants))}"]
        lines += [f"  {stack}: {totals_line(counted)}" for stack, counted in stack_totals(diff).items()]
        lines += ["by type:", *(f"  {line}" for line in _type_lines(diff))]
        lines += ["", "summary (resources added, changed in place, replaced, deleted):"]
        lines += [f"  {_tenant_title(t)}: {t.summary()}" for t in changed]
    for entry in changed:
        lines.append("")
        if entry.status == "removed" and entry.tenant != SHARED and diff.removal_is_deletion:
            lines.append(
                f"!!! REMOVED TENANT {entry.tenant}: in {diff.left}, not in {diff.right}; "
                f"its {len(entry.only_left)} resources would be DELETED"
            )
            lines += [f"!!! {line}" for line in _removed_tenant_advice(diff, entry)]
            continue
        label = {"added": "ADDED TENANT", "removed": "only in " + diff.left, "changed": "tenant"}[entry.status]
        lines.append(f"== {label} {_tenant_title(entry)} ==")
        lines += [f"  {line}" for line in _resource_lines(entry, "      ", short=False)]
    if not diff.different:
        lines.append("no differences")
    return "\n".join(wrapped for line in lines for wrapped in _wrap(line))


def _moves_notice(diff: Diff) -> list[str]:
    old, new = diff.shards
    count = sum(len(m.tenants) for m in diff.moves)
    return [
        f"STATE MOVES NEEDED: tenancy:shards {old} -> {new} moves {count} tenant(s) to another stack.",
        "Applied as it is, `pulumi up` deletes them (and their data) in one stack and creates them empty in",
        "another. Run these steps instead, in order:",
    ]


def _step_lines(diff: Diff, indent: str) -> list[str]:
    """The move steps as shell lines, a `pulumi state move` with one URN per continued line."""
    lines = []
    for step in diff.move_steps:
        words = step.split(" ")
        if step.startswith("pulumi state move"):
            urns = [w for w in words if w.startswith(("urn:", "'urn:"))]
            head = " ".join(w for w in words if w not in urns)
            lines += [f"{indent}{head} \\"] + [
                f"{indent}    {urn}" + (" \\" if i < len(urns) - 1 else "") for i, urn in enumerate(urns)
            ]
        else:
            lines.append(f"{indent}{step}")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_markdown(diff: Diff, max_chars: Optional[int] = None) -> str:
    """A pull-request comment: destructive changes first, then one collapsible section per tenant.

    GitHub refuses comments over 65,536 characters (COMMENT_LIMIT, the CLI's default `max_chars`), so with
    `max_chars` a tenant's resource lines are left out once they would not fit; its summary line, the
    destructive table and the counts always stay.
    """
    lines = [f"### `{diff.left}` → `{diff.right}`", ""]
    if not diff.different:
        return "\n".join(lines + ["No differences."])
    if diff.moves:
        lines += [
            "> [!CAUTION]",
            f"> **{_moves_notice(diff)[0]}** " + " ".join(_moves_notice(diff)[1:]),
            "",
            "```sh",
            *_step_lines(diff, ""),
            "```",
            "",
        ]
    if diff.destructive:
        lines += [
            "> [!CAUTION]",
            f"> **{len(diff.destructive)} destructive change(s)**: data would be deleted or replaced. "
            "Merging needs the extra approval described in docs/delivery.md.",
            "",
            "| action | resource | tenant | why | protected | retained |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| **{d.action}** | `{_cell(short_name(d.key))}` | {d.tenant} | {_cell(d.reason)} | "
            f"{'yes' if d.protected else '**no**'} | {'yes' if d.retained else '**no**'} |"
            for d in diff.destructive
        ]
        lines.append("")
    changed = [t for t in diff.tenants if not t.empty()]
    lines += [f"**Totals:** {totals_line(totals(diff.tenants))}", ""]
    if stack_totals(diff):
        lines += ["| stack | totals |", "|---|---|"]
        lines += [f"| {stack} | {totals_line(counted)} |" for stack, counted in stack_totals(diff).items()]
        lines.append("")
    lines += [
        "| resource type | " + " | ".join(f"{symbol} {operation}" for operation, symbol in TOTALS) + " |",
        "|---|" + "---:|" * len(TOTALS),
    ]
    lines += [
        f"| `{typ}` | " + " | ".join(str(ops.get(operation, "")) for operation, _ in TOTALS) + " |"
        for typ, ops in type_totals(diff).items()
    ]
    lines += ["", "| tenant | lifecycle | added | changed | replaced | deleted |", "|---|---|---|---|---|---|"]
    for entry in changed:
        lines.append(
            f"| {entry.tenant} | {_lifecycle(entry, '→') or '-'} | "
            + " | ".join(str(n) for n in entry.counts().values())
            + " |"
        )
    sections = []
    for entry in changed:
        removed = entry.status == "removed" and entry.tenant != SHARED and diff.removal_is_deletion
        lifecycle = f" ({_lifecycle(entry, '→')})" if _lifecycle(entry) else ""
        head = [
            "",
            f"<details{' open' if removed else ''}><summary><b>{entry.tenant}</b>{lifecycle}: "
            f"{'REMOVED, ' if removed else ''}{entry.summary()}</summary>",
            "",
        ]
        if removed:
            head += [f"> [!WARNING]\n> {' '.join(_removed_tenant_advice(diff, entry))}", ""]
        sections.append((head, ["```diff", *_resource_lines(entry, "    ", short=True), "```"]))
    cut = ["_Resource lines left out to fit a pull-request comment; run the same `diff` locally for them._"]
    if max_chars is None:
        return "\n".join(lines + [line for head, body in sections for line in head + body + ["</details>"]])
    # Every section keeps its head (the tenant's summary) while the heads fit, removed tenants' (with their
    # warning) first; resource lines fill what room is left, in order. The tables above always stay.
    sections.sort(key=lambda section: " open>" not in section[0][1])
    more = (
        "\n_{} more tenant section(s) left out to fit a pull-request comment (the tables above count them); "
        "run the same `diff` locally for them._"
    )
    budget = max_chars - len("\n".join(lines)) - len(more.format(len(sections)))
    heads = []
    for head, _ in sections:
        size = len("\n".join(["", *head, *cut, "</details>"]))
        if size > budget:
            break
        budget -= size
        heads.append(size)
    for head, body in sections[: len(heads)]:
        extra = len("\n".join(body)) - len(cut[0])
        fits = extra <= budget
        budget -= extra if fits else 0
        lines += head + (body if fits else cut) + ["</details>"]
    if len(heads) < len(sections):
        lines.append(more.format(len(sections) - len(heads)))
    return "\n".join(lines)


def format_json(diff: Diff) -> str:
    return json.dumps(
        {
            "left": diff.left,
            "right": diff.right,
            "normalised": diff.normalised,
            "different": diff.different,
            "totals": totals(diff.tenants),
            "stackTotals": stack_totals(diff),
            "typeTotals": type_totals(diff),
            "destructive": [d.as_json() for d in diff.destructive],
            "stateMoves": {
                "shards": {"base": diff.shards[0], "head": diff.shards[1]},
                "moves": [{"source": m.source, "dest": m.dest, "tenants": list(m.tenants)} for m in diff.moves],
                "steps": diff.move_steps,
            }
            if diff.moves
            else None,
            "removedTenants": [
                t.tenant
                for t in diff.tenants
                if diff.removal_is_deletion and t.status == "removed" and t.tenant != SHARED
            ],
            "tenants": [
                {
                    "tenant": t.tenant,
                    "status": t.status,
                    "lifecycle": dict(zip(("left", "right"), t.lifecycle, strict=True)),
                    "summary": t.counts(),
                    "onlyLeft": t.only_left,
                    "onlyRight": t.only_right,
                    "deleted": [
                        {"resource": key, "protected": protect, "retained": retain}
                        for key, (protect, retain) in t.deleted_options.items()
                    ],
                    "changed": t.changed,
                    "replaced": t.replaced,
                }
                for t in diff.tenants
                if not t.empty()
            ],
        },
        indent=2,
        sort_keys=False,
        default=str,
    )
