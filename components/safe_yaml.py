"""Reading YAML a reviewer may not have read closely.

The catalogue arrives through pull requests, so it is parsed with the safe loader (no Python object tags),
its size is capped, and anchors/aliases are limited so a small file cannot expand into billions of nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 2 * 1024 * 1024
MAX_ALIASES = 100
MAX_NODES = 200_000


class YamlRefused(ValueError):
    """The file is not one we are willing to parse; the message says why."""


# libyaml's loader when present: the catalogue is parsed on every run, and the pure-Python one dominates synth.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _count_aliases(text: str) -> None:
    aliases = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise YamlRefused(f"more than {MAX_ALIASES} aliases; refusing a possible alias-expansion bomb")


def _count_nodes(value: Any, budget: list[int]) -> None:
    # Walks the expanded value; shared (aliased) subtrees count each time they appear, as a consumer sees them.
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlRefused(f"expands to more than {MAX_NODES} values; refusing a possible alias-expansion bomb")
    if isinstance(value, dict):
        for key, item in value.items():
            _count_nodes(key, budget)
            _count_nodes(item, budget)
    elif isinstance(value, list):
        for item in value:
            _count_nodes(item, budget)


def loads(text: str) -> Any:
    if len(text.encode()) > MAX_BYTES:
        raise YamlRefused(f"file is larger than {MAX_BYTES // 1024} KiB")
    try:
        _count_aliases(text)
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader: no Python object tags
    except yaml.YAMLError as exc:
        raise YamlRefused(f"not valid YAML: {exc}".replace("\n", " ")) from None
    _count_nodes(value, [MAX_NODES])
    return value


def load(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise YamlRefused(f"file is {size} bytes; the limit is {MAX_BYTES}")
    return loads(path.read_text(encoding="utf-8"))
