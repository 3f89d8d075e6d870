"""Rendering a stack offline with a per-tenant cache, over several processes: the same result as `synth.run`.

A render runs the real program under the synth mocks (`synth.run`) with a selection of tenants: the program
runs as written (providers, the platform, the stack outputs over every tenant of the catalogue), and only the
Tenant components outside the selection are not constructed. Everything not under a Tenant component (the
"shared" records) is therefore the same in every selective render, and each tenant's subtree is the same as in
a full render, so a full render is the shared records followed by each tenant's records in catalogue order.
`_split` checks that shape on every render and refuses to merge anything else.

`render` takes the tenants whose cached rendering (render_cache keys) is missing, renders them in chunks over
`jobs` processes (each chunk a fresh run of the program, which also bounds a process's memory), stores them,
and merges cached and fresh renderings into one SynthResult identical to a single-process `synth.run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import multiprocessing
import os
import resource
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from . import render_cache
from .render_cache import MergeRefused, RenderCache
from .synth import Progress, SynthResult

TENANT_TYPE = "tenancy:index:Tenant"
# Tenants per program run at most: bounds a worker's memory (a tenant is ~50 resources under mocks).
CHUNK = 250
# Below this many tenants a second process costs more than it saves (a worker starts by importing the SDKs, ~3 s).
PARALLEL_FROM = 60


@contextlib.contextmanager
def _only_tenants(selection: frozenset[str]) -> Iterator[None]:
    # The composition root imports `Tenant` from components.tenant when it runs, so this is what it constructs.
    from components import tenant

    original = tenant.Tenant

    def construct(name: str, args: Any, opts: Any = None) -> Any:
        return original(name, args, opts) if name in selection else None

    tenant.Tenant = construct  # type: ignore[assignment, misc]
    try:
        yield
    finally:
        tenant.Tenant = original  # type: ignore[misc]


def _split(records: list[dict[str, Any]], order: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, list]]:
    """(shared records, tenant -> its records); MergeRefused unless shared come first, then whole tenant
    subtrees in catalogue order."""
    owner: dict[str, Optional[str]] = {}
    shared: list[dict[str, Any]] = []
    tenants: dict[str, list[dict[str, Any]]] = {}
    current: Optional[str] = None
    for record in records:
        name = record["name"] if record["type"] == TENANT_TYPE else owner.get(record["parent"] or "")
        owner[record["urn"]] = name
        if name is None:
            if current is not None:
                raise MergeRefused(f"{record['urn']} is outside every tenant but constructed after tenant {current}")
            shared.append(record)
            continue
        if name != current:
            if name in tenants:
                raise MergeRefused(f"the records of tenant {name} are not contiguous")
            current = name
            tenants[name] = []
        tenants[name].append(record)
    position = {name: i for i, name in enumerate(order)}
    if [position.get(name, -1) for name in tenants] != sorted(position.get(name, -1) for name in tenants):
        raise MergeRefused(f"tenants were constructed out of catalogue order: {list(tenants)}")
    return shared, tenants


class _Reporter:
    """A render worker's progress: each tenant it begins, with the resources registered since the last one, goes
    to the parent's queue as it happens (a chunk takes minutes; its result alone would come at the end)."""

    def __init__(self, reports: Any):
        self.reports, self.resources = reports, 0

    def registered(self, record: dict[str, Any]) -> None:
        self.resources += 1
        if record["type"] == TENANT_TYPE:
            self.flush(1)

    def flush(self, tenants: int = 0) -> None:
        if tenants or self.resources:
            self.reports.put((tenants, self.resources))
        self.resources = 0


# In a render worker: where its progress goes (set by the pool's initializer), or None.
_WORKER_REPORTS: Any = None


def _report_to(reports: Any) -> None:
    global _WORKER_REPORTS
    _WORKER_REPORTS = reports


def _listen(reports: Any, progress: Progress) -> None:
    """In the parent: add the workers' reports to `progress` until the sentinel None."""
    while (report := reports.get()) is not None:
        progress.add(*report)


def _render_chunk(
    project_dir: Path,
    stack: str,
    tenants_file: Optional[Path],
    selection: Sequence[str],
    order: Sequence[str],
    progress: Optional[Any] = None,
    stack_outputs: Optional[dict[str, dict[str, Any]]] = None,
) -> dict[str, Any]:
    """One program run constructing only `selection`'s tenants, split into shared and per-tenant records."""
    from . import synth

    if progress is None and _WORKER_REPORTS is not None:
        progress = _Reporter(_WORKER_REPORTS)
    with _only_tenants(frozenset(selection)):
        result = synth.run(project_dir, stack, tenants_file, progress=progress, stack_outputs=stack_outputs)
    if isinstance(progress, _Reporter):
        progress.flush()
    shared, tenants = _split(result.resources, order)
    return {
        "shared": shared,
        "outputs": result.outputs,
        "tenants": tenants,
        "generated_secrets": result.generated_secrets,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _chunks(names: list[str], jobs: int) -> list[list[str]]:
    if not names:
        return [[]]
    size = min(CHUNK, math.ceil(len(names) / max(jobs, 1)))
    return [names[i : i + size] for i in range(0, len(names), size)]


def _render_selection(
    project_dir: Path,
    stack: str,
    tenants_file: Optional[Path],
    selection: list[str],
    order: Sequence[str],
    jobs: int,
    progress: Optional[Progress],
    stats: dict[str, Any],
    stack_outputs: Optional[dict[str, dict[str, Any]]] = None,
) -> dict[str, Any]:
    """Render `selection` (in chunks over `jobs` processes when there is more than one chunk) into one chunk
    result; every chunk's shared records must be identical."""
    chunks = _chunks(selection, jobs)
    if len(chunks) == 1 or jobs <= 1 or len(selection) < PARALLEL_FROM:
        chunks = [selection[i : i + CHUNK] for i in range(0, len(selection), CHUNK)] or [[]]
        parts = [
            _render_chunk(project_dir, stack, tenants_file, chunk, order, progress, stack_outputs) for chunk in chunks
        ]
    else:
        # spawn, not fork: the parent may hold a half-used Pulumi runtime, threads and gRPC state.
        context = multiprocessing.get_context("spawn")
        reports = context.Queue() if progress is not None else None
        listener = threading.Thread(target=_listen, args=(reports, progress), daemon=True) if reports else None
        if listener is not None:
            listener.start()
        try:
            with context.Pool(
                min(jobs, len(chunks)), maxtasksperchild=1, initializer=_report_to, initargs=(reports,)
            ) as pool:
                pending = [
                    pool.apply_async(
                        _render_chunk, (project_dir, stack, tenants_file, chunk, order, None, stack_outputs)
                    )
                    for chunk in chunks
                ]
                parts = [job.get() for job in pending]
                pool.close()
                pool.join()
        finally:
            if listener is not None:
                reports.put(None)
                listener.join()
    stats["runs"] = stats.get("runs", 0) + len(parts)
    stats.setdefault("peak_mb", []).extend(p["peak_mb"] for p in parts)
    first = parts[0]
    for part in parts[1:]:
        if part["shared"] != first["shared"] or part["outputs"] != first["outputs"]:
            raise MergeRefused("renders of different tenants disagree on the shared records or stack outputs")
        first["tenants"].update(part["tenants"])
        first["generated_secrets"].extend(part["generated_secrets"])
    return first


@functools.lru_cache(maxsize=4)
def _open(cache_dir: Path) -> RenderCache:
    # One per folder and process: both sides of a diff share its reads.
    return RenderCache(cache_dir)


@dataclasses.dataclass
class Rendering:
    """A stack's render as the cache holds it: the shared records and outputs, and each tenant's records, read
    from the cache only when asked for, with the keys they are stored under (none without a cache)."""

    stack: str
    order: list[str]
    platform: str  # hash of the shared records, beside which every tenant's records were rendered
    shared: list[dict[str, Any]]
    outputs: dict[str, Any]
    keys: dict[str, str]
    generated_secrets: list[str]
    fresh: dict[str, list[dict[str, Any]]]  # tenant -> records this run rendered
    cache: Optional[RenderCache]
    counts: dict[str, int]  # tenant -> how many records it has
    # Renders tenants beside this render's shared records (and stores them): tenant -> records.
    render_again: Callable[[list[str]], dict[str, list[dict[str, Any]]]] = dataclasses.field(repr=False)

    def size(self) -> int:
        """Resources registered: the shared records and every tenant's."""
        return len(self.shared) + sum(self.counts.values())

    def records(self, name: str) -> list[dict[str, Any]]:
        if name not in self.fresh:
            entry = self.cache.get(self.keys[name], self.platform) if self.cache is not None else None
            if entry is not None:
                return entry["records"]
            # Gone or unreadable since its head was read (deleted, or damaged by another process): a cache only
            # saves time, so the tenant is rendered again.
            self.fresh.update(self.render_again([name]))
        return self.fresh[name]

    def same_as(self, other: "Rendering", name: str) -> bool:
        """Tenant `name` has the very same records in both renders, known without reading them: both found it under
        one key (program, settings, merged spec) beside the same shared records, i.e. in one cache entry."""
        return (
            self.cache is not None
            and self.cache is other.cache
            and self.platform == other.platform
            and name in self.keys
            and self.keys[name] == other.keys.get(name)
        )

    def result(self) -> SynthResult:
        """The render as `synth.run` gives it: the shared records, then each tenant's in catalogue order."""
        resources = list(self.shared)
        for name in self.order:
            resources.extend(self.records(name))
        return SynthResult(
            stack=self.stack, resources=resources, outputs=self.outputs, generated_secrets=self.generated_secrets
        )


def rendering(
    project_dir: Path,
    stack: str,
    tenants_file: Optional[Path],
    specs: Sequence[tuple[Any, Any]],
    stack_settings: Any,
    cache_dir: Optional[Path] = None,
    jobs: int = 1,
    progress: Optional[Progress] = None,
    stats: Optional[dict[str, Any]] = None,
    stack_outputs: Optional[dict[str, dict[str, Any]]] = None,
    shared_specs: Optional[Sequence[tuple[Any, Any]]] = None,
) -> Rendering:
    """A validated stack rendered with `cache_dir`'s renderings (None: no cache), the rest over `jobs` processes.
    `specs`: the tenants the stack holds (`inputs.load_inputs`'s, or a sharded environment's stack's share of
    them); `shared_specs`: the tenants its shared records render from (default `specs`; every tenant of the
    environment for a sharded environment's platform stack, which holds none); `stack_outputs`: other stacks'
    outputs, by stack name, for the StackReference of a shard stack (part of every key). Cached tenants are judged
    by their entries' heads; their records are read when `Rendering.records` asks. `stats` receives what was
    rendered."""
    stats = {} if stats is None else stats
    stats.setdefault("rendered", 0)
    order = [spec.name for spec, _ in specs]
    cache = _open(cache_dir) if cache_dir is not None else None
    keys: dict[str, str] = {}
    shared_entry = None
    if cache is not None:
        code = render_cache.code_fingerprint(project_dir)
        settings_fp = render_cache.settings_fingerprint(project_dir, stack, stack_settings, stack_outputs)
        keys = {spec.name: render_cache.tenant_key(code, settings_fp, spec, names) for spec, names in specs}
        shared_id = render_cache.shared_key(
            code,
            settings_fp,
            (
                keys[spec.name] if spec.name in keys else render_cache.tenant_key(code, settings_fp, spec, names)
                for spec, names in (specs if shared_specs is None else shared_specs)
            ),
        )
        shared_entry = cache.get(shared_id)

    def cached(platform: str, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """tenant -> the head of its rendering beside `platform`, for the tenants of `names` the cache holds."""
        return {
            name: head for name in names if cache is not None and (head := cache.head(keys[name], platform)) is not None
        }

    def render_fresh(names: list[str]) -> dict[str, Any]:
        rendered = _render_selection(
            project_dir, stack, tenants_file, names, order, jobs, progress, stats, stack_outputs
        )
        stats["rendered"] += len(rendered["tenants"])
        return rendered

    heads = cached(shared_entry["platform"], order) if shared_entry else {}
    if progress is not None:
        progress.tenants = len(order)
        # Cached tenants are ready before anything renders; the bar then counts on from them.
        for head in heads.values():
            progress.cached(head["count"])
    fresh: dict[str, list[dict[str, Any]]] = {}
    generated: list[str] = []
    misses = [name for name in order if name not in heads]
    if shared_entry is None or misses:
        # Without the shared records at hand, a tenant the cache holds beside any platform is assumed to be
        # usable, and checked once this render's platform hash is known.
        first = misses if shared_entry else [name for name in order if cache is None or not cache.platforms(keys[name])]
        rendered = render_fresh(first)
        platform = render_cache.records_hash(rendered["shared"])
        heads = cached(platform, [name for name in order if name not in rendered["tenants"]])
        stale = [name for name in order if name not in rendered["tenants"] and name not in heads]
        if stale:
            more = render_fresh(stale)
            if more["shared"] != rendered["shared"]:
                raise MergeRefused("two renders of one stack disagree on the shared records")
            rendered["tenants"].update(more["tenants"])
            rendered["generated_secrets"].extend(more["generated_secrets"])
        if shared_entry is None and progress is not None:
            for head in heads.values():
                progress.cached(head["count"])
        shared_entry = {"platform": platform, "records": rendered["shared"], "outputs": rendered["outputs"]}
        generated = rendered["generated_secrets"]
        fresh = rendered["tenants"]
        if cache is not None:
            cache.put(shared_id, shared_entry)
            for name, records in fresh.items():
                cache.put(keys[name], {"platform": platform, "records": records}, beside_platform=True)
    if progress is not None:
        progress.done()
    stats["cached"] = len(order) - len(fresh)

    def render_again(names: list[str]) -> dict[str, list[dict[str, Any]]]:
        again = render_fresh(names)
        if render_cache.records_hash(again["shared"]) != shared_entry["platform"]:
            raise MergeRefused("two renders of one stack disagree on the shared records")
        if cache is not None:
            for name, records in again["tenants"].items():
                cache.put(keys[name], {"platform": shared_entry["platform"], "records": records}, beside_platform=True)
        return again["tenants"]

    counts = {name: len(fresh[name]) if name in fresh else heads[name]["count"] for name in order}
    return Rendering(
        stack,
        order,
        shared_entry["platform"],
        shared_entry["records"],
        shared_entry["outputs"],
        keys,
        generated,
        fresh,
        cache,
        counts,
        render_again,
    )


def render(
    project_dir: Path,
    stack: str,
    tenants_file: Optional[Path],
    specs: Sequence[tuple[Any, Any]],
    stack_settings: Any,
    cache_dir: Optional[Path] = None,
    jobs: int = 1,
    progress: Optional[Progress] = None,
    stats: Optional[dict[str, Any]] = None,
    stack_outputs: Optional[dict[str, dict[str, Any]]] = None,
    shared_specs: Optional[Sequence[tuple[Any, Any]]] = None,
) -> SynthResult:
    """`synth.run` of a validated stack (`rendering`'s arguments), reusing `cache_dir`'s renderings (None: no
    cache) and rendering the rest over `jobs` processes. `stats` receives what was rendered."""
    return rendering(
        project_dir,
        stack,
        tenants_file,
        specs,
        stack_settings,
        cache_dir,
        jobs,
        progress,
        stats,
        stack_outputs,
        shared_specs,
    ).result()


def default_jobs() -> int:
    """Every core the process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
