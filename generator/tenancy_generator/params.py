"""The plugin contract as pure functions: registry rows in, Argo CD parameter maps out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence

# The keys every parameter map carries; a tenant's own params are flattened beside them and never replace them.
FIXED_KEYS = ("tenantId", "namespace", "cluster", "repoURL", "path", "labels", "params", "autoSync")
LIFECYCLES = ("active", "suspended", "offboarded")
# Lifecycles whose Application exists: a suspended tenant keeps it (and everything it deployed), unsynced.
GENERATED = ("active", "suspended")


class UndecodableRow(ValueError):
    """A registry row that cannot be read as a tenant; the message names the row and field, never its values."""


# The registry table's columns, in the order the generator selects them (a row arrives as a tuple in this order).
COLUMNS = (
    "tenant_id",
    "enabled",
    "lifecycle",
    "namespace",
    "target_cluster",
    "repo_url",
    "repo_path",
    "labels",
    "params",
)
_TEXTS = ("namespace", "target_cluster", "repo_url", "repo_path")


class TenantRow(NamedTuple):
    """One row of the registry table (`tenant_configs`). A tuple: 10,000 of them are built per table read."""

    tenant_id: str
    lifecycle: str
    namespace: str
    target_cluster: str
    repo_url: str
    repo_path: str
    labels: Mapping[str, str]
    params: Mapping[str, str]

    @property
    def generated(self) -> bool:
        return self.lifecycle in GENERATED

    @property
    def auto_sync(self) -> bool:
        return self.lifecycle == "active"

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> "TenantRow":
        """The row from a mapping of column name to value (see `from_values`)."""
        return cls.from_values([row.get(column) for column in COLUMNS])

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> "TenantRow":
        """The row from its COLUMNS values, or UndecodableRow: a row that cannot be read might be an active tenant,
        so it is never skipped."""
        tenant_id, enabled, lifecycle, namespace, target_cluster, repo_url, repo_path, labels, params = values
        if not isinstance(tenant_id, str) or not tenant_id:
            raise UndecodableRow("a row has no tenant_id")
        if lifecycle is None:
            # Rows written before the lifecycle column existed: only `enabled` says whether the tenant is active.
            lifecycle = "active" if enabled is True else "offboarded"
        if lifecycle not in LIFECYCLES:
            raise UndecodableRow(f"row {tenant_id!r}: lifecycle is not one of {', '.join(LIFECYCLES)}")
        if repo_path is None:
            repo_path = "."
        texts = (namespace, target_cluster, repo_url, repo_path)
        if not (
            isinstance(namespace, str)
            and isinstance(target_cluster, str)
            and isinstance(repo_url, str)
            and isinstance(repo_path, str)
            and namespace
            and target_cluster
            and repo_url
            and repo_path
        ):
            if lifecycle in GENERATED:
                empty = next(n for n, v in zip(_TEXTS, texts, strict=True) if not isinstance(v, str) or not v)
                raise UndecodableRow(f"row {tenant_id!r}: {empty} is empty")
            texts = tuple(value if isinstance(value, str) else "" for value in texts)
        return cls(
            tenant_id, lifecycle, *texts, _text_map(labels, tenant_id, "labels"), _text_map(params, tenant_id, "params")
        )


def _text_map(value: Any, tenant_id: str, name: str) -> dict[str, str]:
    # Cassandra returns null for an empty map: that is an empty map, not a fault.
    if not value:
        return {}
    # Through the Mapping interface only: the driver's map type (cassandra-driver cassandra/util.py
    # OrderedMapSerializedKey) serialises each key again on lookup, which costs, but its private fields are not ours
    # to read.
    if not isinstance(value, Mapping):
        raise UndecodableRow(f"row {tenant_id!r}: {name} is not a map of text to text")
    result = dict(value.items())
    try:
        # str.join accepts nothing but text: the type check for every key and value, without a Python loop.
        "".join(result), "".join(result.values())
    except TypeError:
        raise UndecodableRow(f"row {tenant_id!r}: {name} is not a map of text to text") from None
    return result


class BadRequest(ValueError):
    """The request body does not follow the plugin contract; the message is safe to return to the caller."""


@dataclass(frozen=True)
class LabelFilter:
    key: Optional[str] = None
    value: Optional[str] = None

    def matches(self, row: TenantRow) -> bool:
        if self.key is None:
            return True
        if self.key not in row.labels:
            return False
        return self.value is None or row.labels[self.key] == self.value


def parse_request(body: Any) -> tuple[str, LabelFilter]:
    """(applicationSetName, filter) from a decoded request body; BadRequest when it breaks the contract."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    name = body.get("applicationSetName")
    if not isinstance(name, str) or not name:
        raise BadRequest("applicationSetName must be a non-empty string")
    # Argo omits `input` and `input.parameters` when the ApplicationSet gives none.
    plugin_input = body.get("input")
    if plugin_input is None:
        plugin_input = {}
    if not isinstance(plugin_input, dict):
        raise BadRequest("input must be an object")
    parameters = plugin_input.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise BadRequest("input.parameters must be an object")
    key, value = parameters.get("filterLabelKey"), parameters.get("filterLabelValue")
    for label, item in (("filterLabelKey", key), ("filterLabelValue", value)):
        if item is not None and (not isinstance(item, str) or not item):
            raise BadRequest(f"input.parameters.{label} must be a non-empty string")
    if value is not None and key is None:
        raise BadRequest("input.parameters.filterLabelValue needs filterLabelKey")
    return name, LabelFilter(key, value)


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether a JSON text nests arrays/objects deeper than `limit` (strings skipped), before any parser recurses."""
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def parameter_map(row: TenantRow, auto_sync: bool) -> dict[str, Any]:
    """The parameters of one tenant: fixed keys, then each param flattened to the top level."""
    fixed = {
        "tenantId": row.tenant_id,
        "namespace": row.namespace,
        "cluster": row.target_cluster,
        "repoURL": row.repo_url,
        "path": row.repo_path,
        "labels": row.labels,
        "params": row.params,
        # False for a suspended tenant: its Application stays, automated sync stops (ApplicationSet templatePatch).
        "autoSync": auto_sync,
    }
    return {**{k: v for k, v in row.params.items() if k not in fixed}, **fixed}


class Incomplete(Exception):
    """The rows cannot be answered without dropping a tenant that must be generated."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


MAX_NAMED = 5  # tenants named in one refusal or log line; the rest are counted


def named(ids: Iterable[str]) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:MAX_NAMED]) + (f" and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else "")


@dataclass(frozen=True)
class Answerable:
    """What one snapshot of rows and one expected-tenants document allow to be answered.

    `entries`: (row, autoSync) of every expected tenant, ordered by tenant id; `unexpected`: tenant ids with an
    active or suspended row that tenancy does not expect (a leftover row), which are never answered.
    """

    entries: tuple[tuple[TenantRow, bool], ...]
    unexpected: tuple[str, ...]


def answerable(rows: Sequence[TenantRow], expected: Mapping[str, str], allow_empty: bool) -> Answerable:
    """The tenants an answer may list, or Incomplete when no answer may be given.

    Argo CD deletes every Application missing from a successful answer, so a table that is new, wrong, partly
    read, emptied or inconsistent (one tenant on two rows) must produce no answer at all. `expected` is what
    tenancy published: tenant id -> lifecycle. Only those tenants are answered (a row tenancy does not expect
    would make Argo CD create an Application in a project that does not exist), and a tenant is synced
    automatically only while both the registry and tenancy say active: the more restrictive lifecycle wins,
    whichever of the two was updated first.
    """
    # Set operations and comprehensions rather than one Python loop: this runs on every table read.
    by_id = {row.tenant_id: row for row in rows}
    if len(by_id) != len(rows):
        seen: set[str] = set()
        duplicated = {row.tenant_id for row in rows if row.tenant_id in seen or seen.add(row.tenant_id)}
        raise Incomplete(
            "duplicate_tenant", f"{len(duplicated)} tenant(s) on more than one registry row: {named(duplicated)}"
        )
    generated = {t for t, row in by_id.items() if row.lifecycle in GENERATED}
    missing = expected.keys() - generated
    if missing:
        raise Incomplete(
            "missing_tenant", f"{len(missing)} expected tenant(s) not generated by the registry: {named(missing)}"
        )
    if not expected and not allow_empty:
        raise Incomplete("empty", "the registry generates no tenant and ALLOW_EMPTY is off")
    entries = tuple((by_id[t], by_id[t].lifecycle == "active" and expected[t] == "active") for t in sorted(expected))
    return Answerable(entries, tuple(sorted(generated - expected.keys())))


def generate(answer: Answerable, label_filter: LabelFilter) -> list[dict[str, Any]]:
    """Parameter maps of the answerable tenants that pass the filter, ordered by tenant id for stable output."""
    return [parameter_map(row, auto_sync) for row, auto_sync in answer.entries if label_filter.matches(row)]
