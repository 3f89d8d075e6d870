"""Input problems, collected rather than raised one at a time.

A user fixing a catalogue wants every problem in one run, each pointing at the field to change, and never a
traceback; so validators append `Problem`s and the edge raises one `InvalidInput` carrying all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, order=True)
class Problem:
    source: str  # the file a user edits, e.g. "tenants.yaml" or "Pulumi.dev.yaml"
    path: str  # where in it, e.g. "tenants[2] (name=acme).artifacts.keyPrefix"; "" for the whole file
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.path}: {self.message}" if self.path else f"{self.source}: {self.message}"


class InvalidInput(Exception):
    """Raised at the edge, before any resource is registered, with every problem found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.source, _natural(p.path), p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


def _natural(path: str) -> list:
    # tenants[10] sorts after tenants[9]
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def join_path(*parts: object) -> str:
    """Join location parts the way users read them: `a.b[3].c`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("", None):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out
