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


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str):
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlRefused(f"more than {MAX_ALIASES} aliases; refusing a possible alias-expansion bomb")
        return super().compose_node(parent, index)


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
    loader = _BoundedLoader(text)
    try:
        value = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise YamlRefused(f"not valid YAML: {exc}".replace("\n", " ")) from None
    finally:
        loader.dispose()
    _count_nodes(value, [MAX_NODES])
    return value


def load(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise YamlRefused(f"file is {size} bytes; the limit is {MAX_BYTES}")
    return loads(path.read_text(encoding="utf-8"))
