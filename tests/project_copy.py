"""The one way tests copy the program into a folder of their own.

What is not the program stays behind: the venv, caches, and `.engines`, a link into the per-user engine cache
(tools/engines/cache.sh) that a copy would otherwise follow, duplicating every built engine (about 1 GB) per copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
NOT_COPIED = (".git", "venv", "out", ".cache", ".engines", ".mypy_cache", ".ruff_cache", ".hypothesis",
              ".pytest_cache", "__pycache__", "bench", "generator", "tests")


def copy_project(dest: Path, *, keep: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> Path:
    """Copy the program to `dest`; `keep` names entries of NOT_COPIED to copy anyway, `skip` more to leave out."""
    ignored = tuple(name for name in NOT_COPIED if name not in keep) + skip
    shutil.copytree(PROJECT, dest, symlinks=True, ignore=shutil.ignore_patterns(*ignored))
    return dest
