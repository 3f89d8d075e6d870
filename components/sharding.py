"""Shards: which stack of an environment holds each tenant, what a change of shard count moves, and the budget.

An environment `dev` with `tenancy:shards: 1` is one stack, `dev`, as it always was. With N > 1 shards, `dev`
keeps the platform (its state and name never change, so going from one shard to many moves only tenants) and
the tenants live in `dev-shard-0` .. `dev-shard-<N-1>`, which read the platform through a StackReference.

A tenant's shard is chosen by rendezvous (highest-random-weight) hashing of its name over the shard indexes:
it depends on the tenant's name and the shard count only, so adding, removing or reordering other tenants never
moves it, and going from N to M shards moves only the tenants whose highest-weight shard changed (about
|N - M| / max(N, M) of them), never by delete-and-recreate: `pulumi state move` steps are printed instead.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

SHARD_INFIX = "-shard-"
_SHARD_STACK = re.compile(r"^(?P<env>.+)-shard-(?P<index>0|[1-9][0-9]*)$")
TENANT_TYPE = "tenancy:index:Tenant"


def shard_stack(environment: str, index: int) -> str:
    return f"{environment}{SHARD_INFIX}{index}"


def parse_stack(stack: str) -> tuple[str, Optional[int]]:
    """(environment, shard index) of a stack name; the index is None for an environment's own stack."""
    match = _SHARD_STACK.match(stack)
    return (match["env"], int(match["index"])) if match else (stack, None)


def is_shard_stack(stack: str) -> bool:
    return parse_stack(stack)[1] is not None


def stacks_of(environment: str, shards: int) -> list[str]:
    """Every stack of an environment, the platform's first."""
    return [environment] + ([shard_stack(environment, i) for i in range(shards)] if shards > 1 else [])


def _weight(tenant: str, index: int) -> bytes:
    return hashlib.sha256(f"{tenant}\0{index}".encode()).digest()


def shard_of(tenant: str, shards: int) -> int:
    """The shard index of `tenant` among `shards`: the index of highest weight for this name."""
    return max(range(shards), key=lambda index: _weight(tenant, index))


def stack_of(environment: str, tenant: str, shards: int) -> str:
    return environment if shards <= 1 else shard_stack(environment, shard_of(tenant, shards))


def assign(environment: str, tenants: Iterable[str], shards: int) -> dict[str, list[str]]:
    """stack -> its tenants (catalogue order), for every stack of the environment (empty ones included)."""
    assigned: dict[str, list[str]] = {stack: [] for stack in stacks_of(environment, shards)}
    for tenant in tenants:
        assigned[stack_of(environment, tenant, shards)].append(tenant)
    return assigned


@dataclass(frozen=True)
class Move:
    source: str
    dest: str
    tenants: tuple[str, ...]

    def urns(self, project: str) -> list[str]:
        # Moving a Tenant component moves every resource under it (pulumi state move includes children); the
        # providers they use are copied, and their URNs differ only in the stack, so nothing is replaced.
        return [f"urn:pulumi:{self.source}::{project}::{TENANT_TYPE}::{t}" for t in self.tenants]

    def command(self, project: str) -> str:
        return " ".join(
            [
                "pulumi state move",
                "--source",
                shlex.quote(self.source),
                "--dest",
                shlex.quote(self.dest),
                *(shlex.quote(urn) for urn in self.urns(project)),
            ]
        )


def moves(environment: str, tenants: Iterable[str], old_shards: int, new_shards: int) -> list[Move]:
    """The tenants (present on both sides) whose stack changes when the shard count goes from old to new."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for tenant in tenants:
        source, dest = stack_of(environment, tenant, old_shards), stack_of(environment, tenant, new_shards)
        if source != dest:
            grouped.setdefault((source, dest), []).append(tenant)
    return [Move(source, dest, tuple(sorted(names))) for (source, dest), names in sorted(grouped.items())]


def move_steps(environment: str, project: str, moved: list[Move], old_shards: int, new_shards: int) -> list[str]:
    """The commands, in order, that take an environment to the new shard count without recreating anything."""
    if not moved:
        return []
    # Every stack the old count did not have, whether or not a moved tenant lands in it: each gets `pulumi up`.
    targets = [stack for stack in stacks_of(environment, new_shards) if stack not in stacks_of(environment, old_shards)]
    steps = [f"pulumi stack init {shlex.quote(stack)}   # if it does not exist yet" for stack in targets]
    # pulumi state move warns that moved resources depended on platform resources left behind: expected, a
    # shard reads them through its StackReference.
    steps += [m.command(project) for m in moved]
    steps.append(f"pulumi up --stack {shlex.quote(environment)}   # the platform first: shards read its outputs")
    steps += [f"pulumi up --stack {shlex.quote(stack)}" for stack in stacks_of(environment, new_shards)[1:]]
    # A shard the new count no longer has holds only its providers and platform view: nothing of value.
    for stack in sorted({m.source for m in moved} - set(stacks_of(environment, new_shards))):
        steps += [
            f"pulumi destroy --stack {shlex.quote(stack)}   # holds no tenant any more",
            f"pulumi stack rm --stack {shlex.quote(stack)}",
        ]
    return steps


def stack_sizes(environment: str, tenant_counts: Mapping[str, int], shared: int, shards: int) -> dict[str, int]:
    """Resources per stack: every stack holds at most `shared` resources that belong to no tenant (the platform, or
    a shard's providers and platform view: both bounded by the non-tenant resources of a render of the whole
    environment, so this errs on the large side), plus the exact counts of the tenants assigned to it."""
    sizes = {stack: shared for stack in stacks_of(environment, shards)}
    for tenant, count in tenant_counts.items():
        sizes[stack_of(environment, tenant, shards)] += count
    return sizes


def needed_shards(
    environment: str, tenant_counts: Mapping[str, int], shared: int, budget: int, limit: int = 1024
) -> Optional[int]:
    """The smallest shard count whose every stack stays within `budget`; None when none up to `limit` does (one
    tenant, or the platform, is larger than the budget by itself)."""
    if shared + max(tenant_counts.values(), default=0) > budget:
        return None
    for shards in range(1, limit + 1):
        if max(stack_sizes(environment, tenant_counts, shared, shards).values()) <= budget:
            return shards
    return None
