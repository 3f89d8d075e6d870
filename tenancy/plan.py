"""`plan`: which stacks of an environment a change touches since a git revision, and why.

No render: tenants are independent given the settings, so a stack is touched when the program changed (every
stack), the environment's settings changed (every stack of it), the shard count changed (the stacks tenants
move between), or one of its tenants' merged specs changed, appeared or went away. The platform stack is also
touched when what it renders from the tenants changes (the generator's expected tenants, the admission
parameters). It comes first when it is touched (shards read its outputs), then the shards in order; untouched
shards are not listed.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components import catalogue, sharding
from . import revision
from components import settings as settings_module
from components.admission import params_data
from components.argocd import expected_tenants
from components.problems import InvalidInput, Problem

# Paths that are not the Pulumi program nor its inputs: changing them touches no stack. The offline tooling
# (tenancy/) and the e2e engine recipes (tools/) change what a review sees, never what `pulumi up` deploys.
NOT_PROGRAM = ("docs/", "tests/", ".github/", "deployments/", "bench/", "generator/", "tenancy/", "tools/")
NOT_PROGRAM_FILES = ("README.md", "pytest.ini", "Makefile", ".gitignore",
                     "tenants.schema.json")

@dataclass
class Inputs:
    settings: settings_module.StackSettings
    config: dict[str, str]
    tenants: dict[str, Any]  # name -> (spec, names) as Catalogue.for_stack gives them


@dataclass
class StackPlan:
    stack: str
    role: str  # platform | shard (the environment's stack holds tenants too when it has one shard)
    reasons: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "role": self.role, "reasons": self.reasons}


def _git(project_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(project_dir), *args], capture_output=True, text=True)


def changed_files(project_dir: Path, rev: str) -> list[str]:
    """Files of the project that differ between `rev` and the working tree (untracked files included)."""
    diffed = _git(project_dir, "diff", "--name-only", "--relative", rev, "--", ".")
    if diffed.returncode != 0:
        raise InvalidInput([Problem("--base", "", f"cannot compare with {rev}: {diffed.stderr.strip()}")])
    untracked = _git(project_dir, "ls-files", "--others", "--exclude-standard", "--", ".")
    return sorted({*diffed.stdout.split(), *untracked.stdout.split()})


def program_changes(files: list[str], catalogue_path: str) -> list[str]:
    """The changed files that are the program (code, project file, pyproject.toml and uv.lock, certificates, policy pack)."""
    return [f for f in files
            if not f.startswith(NOT_PROGRAM) and f not in NOT_PROGRAM_FILES and f != catalogue_path
            and not (f.startswith("Pulumi.") and f.endswith(".yaml") and f != "Pulumi.yaml")
            and not f.endswith(".md")]


def load(project_dir: Path, environment: str) -> Inputs:
    stack_settings = settings_module.load_stack(project_dir, environment)
    config, _ = settings_module.read_stack_file(project_dir, environment)
    cat = catalogue.load(project_dir / stack_settings.catalogue, stacks=settings_module.known_stacks(project_dir))
    return Inputs(stack_settings, config, {spec.name: (spec, names) for spec, names in cat.for_stack(stack_settings)})


def load_base(project_dir: Path, environment: str, rev: str) -> Inputs:
    """The environment's settings and tenants at `rev` (read with git show; parsed by the working tree's code)."""
    with revision.project_at(project_dir, environment, rev) as base_dir:
        return load(base_dir, environment)


def shard_moves(base: Inputs, head: Inputs) -> list[sharding.Move]:
    """Tenants on both sides whose stack changes with the shard count."""
    both = [name for name in head.tenants if name in base.tenants]
    return sharding.moves(head.settings.environment, both, base.settings.shards, head.settings.shards)


def plan(project_dir: Path, stack: str, rev: str) -> list[StackPlan]:
    environment = sharding.parse_stack(stack)[0]
    head = load(project_dir, environment)
    base = load_base(project_dir, environment, rev)
    shards = head.settings.shards
    stacks = {name: StackPlan(name, "platform" if name == environment else "shard")
              for name in sharding.stacks_of(environment, shards)}

    def touch(name: str, reason: str) -> None:
        # A stack the new shard count no longer has only loses tenants, through `pulumi state move`.
        if name in stacks:
            stacks[name].reasons.append(reason)

    program = program_changes(changed_files(project_dir, rev), head.settings.catalogue)
    if program:
        for name in stacks:
            touch(name, f"program changed: {', '.join(program)}")
    settings_changed = sorted(k for k in {*base.config, *head.config} if base.config.get(k) != head.config.get(k))
    if settings_changed:
        for name in stacks:
            touch(name, f"settings changed: {', '.join(settings_changed)}")
    for move in shard_moves(base, head):
        touch(move.source, f"tenancy:shards {base.settings.shards} -> {shards}: moves {', '.join(move.tenants)} "
                           f"to {move.dest}")
        touch(move.dest, f"tenancy:shards {base.settings.shards} -> {shards}: receives {', '.join(move.tenants)} "
                         f"from {move.source}")
    for name in sorted({*base.tenants, *head.tenants}):
        old, new = base.tenants.get(name), head.tenants.get(name)
        if old is None:
            touch(sharding.stack_of(environment, name, shards), f"tenant {name} added")
        elif new is None:
            touch(sharding.stack_of(environment, name, base.settings.shards), f"tenant {name} removed")
        elif _fingerprint(old) != _fingerprint(new):
            touch(sharding.stack_of(environment, name, shards), f"tenant {name} changed")
    if _platform_view(base) != _platform_view(head):
        touch(environment, "the tenants the platform serves changed (the generator's expected tenants or the "
                           "admission parameters)")
    return [entry for entry in stacks.values() if entry.reasons]


def _platform_view(inputs: Inputs) -> tuple[dict[str, str], dict[str, str]]:
    """What the platform stack renders from the tenants: the generator's expected tenants and the admission
    policies' parameters. A tenant added, removed, suspended or given other allow-lists changes it."""
    tenants = list(inputs.tenants.values())
    return expected_tenants(tenants), params_data([spec for spec, _ in tenants])


def _fingerprint(tenant: Any) -> str:
    # The merged spec is all a tenant's render depends on besides the settings and the program (its names are
    # derived from spec and settings).
    spec, _ = tenant
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True, default=str)


def format_text(stack: str, rev: str, planned: list[StackPlan]) -> str:
    if not planned:
        return f"{stack}: no stack is touched since {rev}"
    lines = [f"{stack}: {len(planned)} stack(s) touched since {rev} (in update order)"]
    for entry in planned:
        lines.append(f"  {entry.stack} ({entry.role})")
        lines += [f"    - {reason}" for reason in entry.reasons]
    return "\n".join(lines)


def format_json(stack: str, rev: str, planned: list[StackPlan]) -> str:
    return json.dumps({"environment": sharding.parse_stack(stack)[0], "base": rev,
                       "stacks": [entry.as_json() for entry in planned]}, indent=2)
