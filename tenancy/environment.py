"""Offline render of a whole environment: its platform stack, then every shard stack, and the resource budget.

A shard's StackReference is answered with the outputs the platform stack's render exported, so every stack of
the environment renders offline, in the order Pulumi must update them. Every stack renders through render's
per-tenant cache: a shard's keys include the platform outputs it reads, and the platform stack's shared records
(it holds no tenant but renders from all of them) are keyed by every tenant of the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from components import settings as settings_module
from components import sharding
from components.problems import InvalidInput, Problem

from . import render as render_module
from . import synth

ProgressFactory = Callable[[str], Optional["synth.Progress"]]


def renderings(
    project_dir: Path,
    stack: str,
    tenants_file: Optional[Path] = None,
    progress: Optional[ProgressFactory] = None,
    inputs: Optional[tuple[Any, list]] = None,
    cache_dir: Optional[Path] = None,
    jobs: int = 1,
    stats: Optional[dict[str, dict[str, Any]]] = None,
) -> dict[str, render_module.Rendering]:
    """stack -> its render.Rendering: every stack of the environment for the environment's stack, the platform
    stack and the shard itself for a shard stack (a shard needs its platform's outputs first), within the resource
    budget. `inputs`: the stack's (settings, specs) from inputs.load_inputs when already loaded; `cache_dir`:
    render's cache (None: none); `stats`: receives stack -> what render rendered."""
    from .inputs import load_inputs

    stack_settings, specs = inputs or load_inputs(project_dir, stack, tenants_file)
    environment, shards = stack_settings.environment, stack_settings.shards
    held = {
        name: set(tenants) for name, tenants in sharding.assign(environment, (s.name for s, _ in specs), shards).items()
    }
    results: dict[str, render_module.Rendering] = {}
    for name in sharding.stacks_of(environment, shards) if stack == environment else [environment, stack]:
        outputs = {environment: results[environment].outputs} if name != environment else None
        results[name] = render_module.rendering(
            project_dir,
            name,
            tenants_file,
            [(spec, names) for spec, names in specs if spec.name in held[name]],
            stack_settings,
            cache_dir,
            jobs,
            progress(name) if progress else None,
            stats.setdefault(name, {}) if stats is not None else None,
            stack_outputs=outputs,
            shared_specs=specs if name == environment else None,
        )
    check_renderings_budget(stack_settings, results)
    return results


def render(
    project_dir: Path,
    stack: str,
    tenants_file: Optional[Path] = None,
    progress: Optional[ProgressFactory] = None,
    inputs: Optional[tuple[Any, list]] = None,
    cache_dir: Optional[Path] = None,
    jobs: int = 1,
    stats: Optional[dict[str, dict[str, Any]]] = None,
) -> dict[str, synth.SynthResult]:
    """stack -> its render as `synth.run` gives it, for the stacks `renderings` renders (with its arguments)."""
    return {
        name: rendered.result()
        for name, rendered in renderings(
            project_dir, stack, tenants_file, progress, inputs, cache_dir, jobs, stats
        ).items()
    }


def renamed(record: dict[str, Any], stack: str, environment: str) -> dict[str, Any]:
    """`record` of `stack` with its URN, parent and provider renamed to the environment's stack (see `merged`)."""
    if stack == environment:
        return record
    prefix = f"urn:pulumi:{stack}::"

    def rename(urn: Optional[str]) -> Optional[str]:
        return f"urn:pulumi:{environment}::{urn[len(prefix) :]}" if urn and urn.startswith(prefix) else urn

    return {
        **record,
        "urn": rename(record["urn"]),
        "parent": rename(record["parent"]),
        "provider": rename(record["provider"]),
    }


def merged(results: dict[str, synth.SynthResult], label: str) -> synth.SynthResult:
    """The environment as if it were one stack, for diff: every stack's resources (platform first) with URNs,
    parents and providers renamed to the environment's stack, each once (the providers and platform view every
    shard registers are the platform stack's, by the same type chain and name). A tenant then compares with
    itself whichever stack holds it; whether moving it needs `pulumi state move` is the caller's question."""
    environment = next(iter(results))
    combined = synth.SynthResult(stack=label, resources=[])
    seen: set[str] = set()
    for stack, result in results.items():
        for record in result.resources:
            record = renamed(record, stack, environment)
            if record["urn"] not in seen:
                seen.add(record["urn"])
                combined.resources.append(record)
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


def check_renderings_budget(
    stack_settings: settings_module.StackSettings, rendered: dict[str, render_module.Rendering]
) -> None:
    """`check_budget` of stack -> render.Rendering: counted from the cache's heads, records read only to explain a
    refusal."""
    if any(stack_size(stack, rendering) > stack_settings.stack_budget for stack, rendering in rendered.items()):
        check_budget(stack_settings, {stack: rendering.result() for stack, rendering in rendered.items()})


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
        advice = (
            (
                f"no shard count fits: the largest tenant ({largest}, {tenants[largest]} resources) plus "
                f"{shared} shared resources exceeds it; raise tenancy:stackBudget"
            )
            if largest
            else "raise tenancy:stackBudget"
        )
    else:
        advice = f"set tenancy:shards to at least {needed}"
    raise InvalidInput(
        [
            Problem(
                f"Pulumi.{environment}.yaml",
                f"{settings_module.NAMESPACE}:shards",
                f"stack {stack} would hold {size:,} resources, more than tenancy:stackBudget ({budget:,}) with "
                f"{stack_settings.shards} shard(s); {advice}",
            )
            for stack, size in over.items()
        ]
    )
