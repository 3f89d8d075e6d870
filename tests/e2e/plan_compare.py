"""Does `python -m tenancy diff --format json` (offline, from two renders) say what the Pulumi engine plans?

`compare(diff, steps)` is pure: `diff` is the JSON document `diff --base` prints, `steps` the (op, urn, type) of
each step a `preview` announced (engine events, `ResourcePreEvent.metadata`). It returns every disagreement:
- each resource the engine deletes or replaces is in the diff with the same operation;
- each data-holding resource (tenancy/diff.py DATA_KINDS) the engine deletes or replaces is in the diff's
  `destructive` list with that action;
- each resource the diff adds, deletes or replaces, the engine plans to add, delete or replace.
Resources match by their own type and logical name (`resource_key`); the root Stack resource takes no part.

Engine operations (pulumi/pulumi pkg/v3 resource/deploy/step.go, `OpCreate`...): a replacement shows as `replace`
or as its halves `create-replacement` / `delete-replaced`; a retainOnDelete resource's deletion is still a
`delete` step (`DeleteStep.Apply` then skips the provider call). `discard` steps concern resources the program
only reads, which tenancy has none of.
"""

from __future__ import annotations

from typing import Any, Iterable

from tenancy.diff import DATA_KINDS

STACK_TYPE = "pulumi:pulumi:Stack"
ENGINE_OP = {"create": "create", "delete": "delete", "replace": "replace", "create-replacement": "replace",
             "delete-replaced": "replace", "update": "update"}


def resource_key(urn_or_key: str) -> str:
    """`<type>::<name>`: a resource's own type and logical name. The parent type chain is left out because the
    engine's URNs carry every ancestor's type (pulumi/pulumi sdk/go/common/resource/urn.go `NewURN` with the
    parent's qualified type) while synth's mocks record only the parent's own, and the root Stack's in front."""
    chain, _, name = urn_or_key.rpartition("::")
    return f"{chain.rsplit('$', 1)[-1].rsplit('::', 1)[-1]}::{name}"


def engine_plan(steps: Iterable[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    """resource key -> (operation, type) of every change the engine plans (replace wins over its halves)."""
    plan: dict[str, tuple[str, str]] = {}
    for op, urn, type_ in steps:
        if type_ == STACK_TYPE or op not in ENGINE_OP:
            continue
        key = resource_key(urn)
        if plan.get(key, ("", ""))[0] != "replace":
            plan[key] = (ENGINE_OP[op], type_)
    return plan


def diff_plan(diff: dict[str, Any]) -> dict[str, str]:
    """resource key -> operation the diff reports (create, delete, replace, update)."""
    plan: dict[str, str] = {}
    for tenant in diff.get("tenants", []):
        plan.update({resource_key(k): "create" for k in tenant.get("onlyRight", [])})
        plan.update({resource_key(k): "delete" for k in tenant.get("onlyLeft", [])})
        plan.update({resource_key(k): "update" for k in tenant.get("changed", {}) if k not in tenant.get("replaced", {})})
        plan.update({resource_key(k): "replace" for k in tenant.get("replaced", {})})
    return {k: op for k, op in plan.items() if not k.startswith(STACK_TYPE + "::")}


def compare(diff: dict[str, Any], steps: Iterable[tuple[str, str, str]]) -> list[str]:
    """Every way the diff and the engine's plan disagree (empty when they agree)."""
    engine = engine_plan(steps)
    offline = diff_plan(diff)
    destructive = {resource_key(d["urn"]): d["action"] for d in diff.get("destructive", [])}
    problems = []
    for key, (op, type_) in sorted(engine.items()):
        if op in ("delete", "replace"):
            if offline.get(key) != op:
                problems.append(f"engine plans {op} of {key}; diff says {offline.get(key, 'nothing')}")
            if type_ in DATA_KINDS and destructive.get(key) != op:
                problems.append(f"engine plans {op} of data resource {key}; diff's destructive list says "
                                f"{destructive.get(key, 'nothing')}")
    for key, op in sorted(offline.items()):
        if op in ("create", "delete", "replace") and engine.get(key, ("nothing",))[0] != op:
            problems.append(f"diff says {op} of {key}; engine plans {engine.get(key, ('nothing',))[0]}")
    for key, action in sorted(destructive.items()):
        if engine.get(key, ("nothing",))[0] != action:
            problems.append(f"diff lists {key} as destructive ({action}); engine plans "
                            f"{engine.get(key, ('nothing',))[0]}")
    return problems
