"""The plugin contract as pure functions: registry rows in, Argo CD parameter maps out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

# The keys every parameter map carries; a tenant's own params are flattened beside them and never replace them.
FIXED_KEYS = ("tenantId", "namespace", "cluster", "repoURL", "path", "labels", "params")


@dataclass(frozen=True)
class TenantRow:
    """One row of the registry table (`tenant_configs`)."""

    tenant_id: str
    enabled: bool
    namespace: str
    target_cluster: str
    repo_url: str
    repo_path: str
    labels: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> "TenantRow":
        # Cassandra returns null for an empty map and for an unset boolean: an unset flag is not "enabled".
        return cls(
            tenant_id=row["tenant_id"],
            enabled=bool(row.get("enabled")),
            namespace=row.get("namespace") or "",
            target_cluster=row.get("target_cluster") or "",
            repo_url=row.get("repo_url") or "",
            repo_path=row.get("repo_path") or ".",
            labels=dict(row.get("labels") or {}),
            params=dict(row.get("params") or {}),
        )


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


def parameter_map(row: TenantRow) -> dict[str, Any]:
    """The parameters of one tenant: fixed keys, then each param flattened to the top level."""
    fixed = {
        "tenantId": row.tenant_id,
        "namespace": row.namespace,
        "cluster": row.target_cluster,
        "repoURL": row.repo_url,
        "path": row.repo_path,
        "labels": dict(row.labels),
        "params": dict(row.params),
    }
    return {**{k: v for k, v in row.params.items() if k not in fixed}, **fixed}


def generate(rows: Iterable[TenantRow], label_filter: LabelFilter) -> list[dict[str, Any]]:
    """Parameter maps of the enabled rows that pass the filter, ordered by tenant id for stable output."""
    chosen = (r for r in rows if r.enabled and label_filter.matches(r))
    return [parameter_map(r) for r in sorted(chosen, key=lambda r: r.tenant_id)]
