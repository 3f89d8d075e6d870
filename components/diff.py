"""`diff`: what would change between two offline renders, grouped by tenant.

Two comparisons share one engine:
- `--stack dev --to staging` renders two stacks from the working tree. Everything named after the stack
  (bucket `calypr-x-dev-artifacts`, mount `kv-dev`, the URN's stack part) would otherwise differ on every
  resource and bury the real setting differences, so each side's stack and environment names are replaced by
  `<env>` as whole tokens (delimited by anything but a lowercase letter or digit, so `developers` survives).
  What still differs after that is a setting: `kv-<env>` against `kv`, versioning, quotas, protection.
- `--stack prod --base <rev>` renders the same stack with the catalogue and `Pulumi.<stack>.yaml` as they were
  at `<rev>` (program code from the working tree, so only input changes show), against the working tree: what a
  pull request changes. A tenant that exists at `<rev>` and is gone now is flagged loudly: `pulumi up` would
  delete everything it owns.

Resources match by URN without its stack part (the type chain and logical name), and belong to the Tenant
component they are parented under; everything else (providers, platform) is grouped as `(shared)`.
Inputs compare as flattened paths; JSON documents held in strings (IAM and bucket policies) are compared
field by field. Secrets were already reduced to "[secret]" by synth, so they show as unchanged or as
present/absent, never as values. `protect` and `retainOnDelete` compare like inputs.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import settings as settings_module
from .problems import InvalidInput, Problem
from .synth import SynthResult

SHARED = "(shared)"
ENV_TOKEN = "<env>"
TENANT_TYPE = "tenancy:index:Tenant"
DATA_TYPES = ("aws:s3/bucket:Bucket", "aws:kms/key:Key", "aws:keyspaces/table:Table",
              "kubernetes:core/v1:Namespace")
# Local state and installs are not part of the program; copying them would be slow and pointless.
_NOT_COPIED = shutil.ignore_patterns(".git", "venv", ".venv", "out", ".hypothesis", ".pytest_cache", "__pycache__",
                                     "node_modules")


@dataclass
class TenantDiff:
    tenant: str
    status: str  # "changed" | "added" | "removed"
    only_left: list[str] = field(default_factory=list)
    only_right: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    data_resources: int = 0
    protected_data_resources: int = 0

    def empty(self) -> bool:
        return self.status == "changed" and not (self.only_left or self.only_right or self.changed)


@dataclass
class Diff:
    left: str
    right: str
    normalised: bool
    right_protects_data: bool
    tenants: list[TenantDiff]
    # Only across revisions of one stack is a missing tenant a deletion; across stacks it is just not promoted.
    removal_is_deletion: bool = False

    @property
    def different(self) -> bool:
        return any(not t.empty() for t in self.tenants)


def _normaliser(names: set[str]):
    if not names:
        return lambda value: value
    pattern = re.compile(r"(?<![a-z0-9])(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True))
                         + r")(?![a-z0-9])")

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
    elif isinstance(value, float) and value.is_integer():
        into[path] = int(value)  # the wire format carries every number as a double; 443.0 reads as noise
    else:
        into[path] = value


def _key(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<type chain>::<name>
    return urn.split("::", 2)[2]


def _index(result: SynthResult, normalise) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """tenant -> resource key -> (type, flattened comparable fields)."""
    owner: dict[str, str] = {}
    grouped: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
    for record in result.resources:  # parents are registered before their children
        tenant = record["name"] if record["type"] == TENANT_TYPE else owner.get(record["parent"] or "", SHARED)
        owner[record["urn"]] = tenant
        flat: dict[str, Any] = {}
        _flatten(normalise(record["inputs"]), "", flat)
        flat["[provider]"] = normalise(record["provider"])
        flat["[protect]"] = record["protect"]
        flat["[retainOnDelete]"] = record["retainOnDelete"]
        grouped.setdefault(tenant, {})[normalise(_key(record["urn"]))] = (record["type"], flat)
    return grouped


def compare(left: SynthResult, right: SynthResult, left_names: set[str], right_names: set[str],
            right_protects_data: bool) -> Diff:
    """Diff two renders; `*_names` are the stack/environment names replaced by `<env>` on each side."""
    left_index = _index(left, _normaliser(left_names))
    right_index = _index(right, _normaliser(right_names))
    tenants = []
    for tenant in sorted(set(left_index) | set(right_index), key=lambda t: (t == SHARED, t)):
        ours, theirs = left_index.get(tenant, {}), right_index.get(tenant, {})
        status = "removed" if not theirs else "added" if not ours else "changed"
        entry = TenantDiff(tenant, status, sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours)))
        for key in sorted(set(ours) & set(theirs)):
            a, b = ours[key][1], theirs[key][1]
            fields = {p: [a.get(p), b.get(p)] for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)}
            if fields:
                entry.changed[key] = fields
        data = [fields for typ, fields in ours.values() if typ in DATA_TYPES]
        entry.data_resources = len(data)
        entry.protected_data_resources = sum(1 for fields in data if fields["[protect]"])
        tenants.append(entry)
    return Diff(left.stack, right.stack, bool(left_names or right_names), right_protects_data, tenants)


def _render(project_dir: Path, stack: str, tenants: Optional[Path]) -> tuple[settings_module.StackSettings, SynthResult]:
    from . import cli, synth

    stack_settings, _ = cli.load_inputs(project_dir, stack, tenants)
    return stack_settings, synth.run(project_dir, stack, tenants)


def between_stacks(project_dir: Path, stack: str, other: str, tenants: Optional[Path] = None) -> Diff:
    left_settings, left = _render(project_dir, stack, tenants)
    right_settings, right = _render(project_dir, other, tenants)
    return compare(left, right, {stack, left_settings.environment}, {other, right_settings.environment},
                   right_settings.protect_data)


def _git_show(project_dir: Path, rev: str, relative: str) -> str:
    shown = subprocess.run(["git", "-C", str(project_dir), "show", f"{rev}:./{relative}"],
                           capture_output=True, text=True)
    if shown.returncode != 0:
        raise InvalidInput([Problem(relative, "", f"cannot read it at --base {rev}: "
                                                  f"{shown.stderr.strip() or 'git failed'}")])
    return shown.stdout


def against_base(project_dir: Path, stack: str, rev: str) -> Diff:
    """The stack rendered from `rev`'s catalogue and stack config (working-tree code) against the working tree."""
    head_settings, head = _render(project_dir, stack, None)
    with tempfile.TemporaryDirectory(prefix="tenancy-base-") as tmp:
        base_dir = Path(tmp) / "project"
        shutil.copytree(project_dir, base_dir, ignore=_NOT_COPIED)
        stack_file = f"Pulumi.{stack}.yaml"
        (base_dir / stack_file).write_text(_git_show(project_dir, rev, stack_file))
        base_catalogue = settings_module.load_stack(base_dir, stack).catalogue
        (base_dir / base_catalogue).write_text(_git_show(project_dir, rev, base_catalogue))
        _, base = _render(base_dir, stack, None)
    base.stack = f"{stack}@{rev}"
    head.stack = f"{stack}@working-tree"
    diff = compare(base, head, set(), set(), head_settings.protect_data)
    diff.removal_is_deletion = True
    return diff


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


def _field_lines(path: str, a: Any, b: Any) -> list[str]:
    if isinstance(a, str) and isinstance(b, str) and ("\n" in a or "\n" in b):
        # Embedded documents (YAML in ConfigMaps, HCL policies): only the lines that changed.
        changed = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
        return [f"      {path}:"] + [f"        {line}" for line in changed if not line.startswith(("---", "+++", "@@"))]
    return [f"      {path}: {_show(a)} -> {_show(b)}"]


def format_text(diff: Diff) -> str:
    lines = [f"diff {diff.left} -> {diff.right}"
             + (f" (stack/environment names shown as {ENV_TOKEN})" if diff.normalised else "")]
    for entry in diff.tenants:
        if entry.empty():
            continue
        lines.append("")
        if entry.status == "removed" and entry.tenant != SHARED and diff.removal_is_deletion:
            lines.append("!" * 78)
            lines.append(f"!!! REMOVED TENANT {entry.tenant}: in {diff.left}, not in {diff.right}; "
                         f"its {len(entry.only_left)} resources would be DELETED")
            if diff.right_protects_data:
                lines.append(f"!!! {diff.right} protects data: {entry.protected_data_resources} of its "
                             f"{entry.data_resources} data resources are protected, so `pulumi up` stops before "
                             "deleting anything. Offboard it (lifecycle) instead of deleting the entry.")
            else:
                lines.append(f"!!! {diff.right} does not protect data: its {entry.data_resources} data resources "
                             "(buckets, keys, tables) would be destroyed with their contents.")
            lines.append("!" * 78)
            continue
        label = {"added": "ADDED TENANT", "removed": "only in " + diff.left, "changed": "tenant"}[entry.status]
        lines.append(f"== {label} {entry.tenant} ==")
        lines += [f"  - {key}" for key in entry.only_left]
        lines += [f"  + {key}" for key in entry.only_right]
        for key, fields in entry.changed.items():
            lines.append(f"  ~ {key}")
            for path, (a, b) in fields.items():
                lines += _field_lines(path or "(value)", a, b)
    if not diff.different:
        lines.append("no differences")
    return "\n".join(lines)


def format_json(diff: Diff) -> str:
    return json.dumps({
        "left": diff.left, "right": diff.right, "normalised": diff.normalised, "different": diff.different,
        "removedTenants": [t.tenant for t in diff.tenants
                           if diff.removal_is_deletion and t.status == "removed" and t.tenant != SHARED],
        "tenants": [{"tenant": t.tenant, "status": t.status, "onlyLeft": t.only_left, "onlyRight": t.only_right,
                     "changed": t.changed} for t in diff.tenants if not t.empty()],
    }, indent=2, sort_keys=False, default=str)
