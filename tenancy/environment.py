"""Offline render of a whole environment: its platform stack, then every shard stack, and the resource budget.

A shard's StackReference is answered with the outputs the platform stack's render exported, so every stack of
the environment renders offline, in the order Pulumi must update them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from components import settings as settings_module
from components import sharding
from . import synth
from components.problems import InvalidInput, Problem

ProgressFactory = Callable[[str], Optional["synth.Progress"]]


def render(project_dir: Path, stack: str, tenants_file: Optional[Path] = None,
           progress: Optional[ProgressFactory] = None,
           render_one: Optional[Callable[[Optional["synth.Progress"]], synth.SynthResult]] = None
           ) -> dict[str, synth.SynthResult]:
    """stack -> render: every stack of the environment for the environment's stack, the platform stack and the
    shard itself for a shard stack (a shard needs its platform's render first). `render_one` renders an
    environment that is one stack (the cached, parallel render); sharded stacks render with `synth.run`."""
    stack_settings = settings_module.load_stack(project_dir, stack)
    environment = stack_settings.environment
    results: dict[str, synth.SynthResult] = {}
    if stack_settings.shards == 1 and render_one is not None:
        results[environment] = render_one(progress(environment) if progress else None)
    else:
        for name in sharding.stacks_of(environment, stack_settings.shards) if stack == environment else [environment, stack]:
            outputs = {environment: results[environment].outputs} if name != environment else None
            results[name] = synth.run(project_dir, name, tenants_file, progress=progress(name) if progress else None,
                                      stack_outputs=outputs)
    check_budget(stack_settings, results)
    return results


def merged(results: dict[str, synth.SynthResult], label: str) -> synth.SynthResult:
    """The environment as if it were one stack, for diff: every stack's resources (platform first) with URNs,
    parents and providers renamed to the environment's stack, each once (the providers and platform view every
    shard registers are the platform stack's, by the same type chain and name). A tenant then compares with
    itself whichever stack holds it; whether moving it needs `pulumi state move` is the caller's question."""
    environment = next(iter(results))

    def rename(urn: Optional[str], stack: str) -> Optional[str]:
        prefix = f"urn:pulumi:{stack}::"
        return f"urn:pulumi:{environment}::{urn[len(prefix):]}" if urn and urn.startswith(prefix) else urn

    combined = synth.SynthResult(stack=label, resources=[])
    seen: set[str] = set()
    for stack, result in results.items():
        for record in result.resources:
            renamed = {**record, "urn": rename(record["urn"], stack), "parent": rename(record["parent"], stack),
                       "provider": rename(record["provider"], stack)}
            if renamed["urn"] not in seen:
                seen.add(renamed["urn"])
                combined.resources.append(renamed)
        combined.outputs.update(result.outputs)
        combined.generated_secrets.extend(result.generated_secrets)
    return combined


def stack_size(stack: str, result: Any) -> int:
    """Resources in the stack's state: those registered (a SynthResult's, or a render.Rendering's size), the stack
    itself and a shard's StackReference."""
    registered = len(result.resources) if hasattr(result, "resources") else result.size()
    return registered + 1 + sharding.is_shard_stack(stack)


def tenant_sizes(result: synth.SynthResult) -> dict[str, int]:
    """Exact resource count of each tenant in a render: its component and everything under it."""
    return {name: 1 + len(result.tenant(name)) for name in result.tenant_names()}


def check_rendering_budget(stack_settings: settings_module.StackSettings, rendering: Any) -> None:
    """`check_budget` of a one-stack environment's `render.Rendering`: counted from the cache's heads, its records
    read only to explain a refusal."""
    if stack_size(stack_settings.environment, rendering) > stack_settings.stack_budget:
        check_budget(stack_settings, {stack_settings.environment: rendering.result()})


def check_budget(stack_settings: settings_module.StackSettings, results: dict[str, synth.SynthResult]) -> None:
    """InvalidInput when a stack would hold more than `tenancy:stackBudget` resources, saying how many shards the
    catalogue needs (tenant counts are exact; what belongs to no tenant is taken at its largest in any stack)."""
    budget, environment = stack_settings.stack_budget, stack_settings.environment
    sizes = {stack: stack_size(stack, result) for stack, result in results.items()}
    over = {stack: size for stack, size in sizes.items() if size > budget}
    if not over:
        return
    tenants: dict[str, int] = {}
    shared = 0
    for stack, result in results.items():
        counts = tenant_sizes(result)
        tenants.update(counts)
        shared = max(shared, sizes[stack] - sum(counts.values()))
    complete = len(results) == len(sharding.stacks_of(environment, stack_settings.shards))
    needed = sharding.needed_shards(environment, tenants, shared, budget) if complete else None
    if not complete:
        advice = f"run `synth --stack {environment}` for the shard count the catalogue needs"
    elif needed is None:
        largest = max(tenants, key=tenants.get) if tenants else None
        advice = (f"no shard count fits: the largest tenant ({largest}, {tenants[largest]} resources) plus "
                  f"{shared} shared resources exceeds it; raise tenancy:stackBudget") if largest else \
            "raise tenancy:stackBudget"
    else:
        advice = f"set tenancy:shards to at least {needed}"
    raise InvalidInput([
        Problem(f"Pulumi.{environment}.yaml", f"{settings_module.NAMESPACE}:shards",
                f"stack {stack} would hold {size:,} resources, more than tenancy:stackBudget ({budget:,}) with "
                f"{stack_settings.shards} shard(s); {advice}")
        for stack, size in over.items()])
