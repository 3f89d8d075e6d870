"""The project at a git revision, as `diff --base` and `plan` compare against it: the working tree's code with the
revision's stack file and catalogue (what a pull request changes is compared by the code that will run it)."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from components import settings as settings_module
from components.problems import InvalidInput, Problem

# Largest file the copy takes: every tracked file of the project is far smaller; a bigger one is data nobody
# renders, and a copy must not be able to fill the disk.
MAX_FILE_BYTES = 16 * 1024 * 1024


def git_show(project_dir: Path, rev: str, relative: str) -> str:
    """A file of the project at `rev`; InvalidInput naming the file when git cannot give it."""
    shown = subprocess.run(
        ["git", "-C", str(project_dir), "show", f"{rev}:./{relative}"], capture_output=True, text=True
    )
    if shown.returncode != 0:
        raise InvalidInput(
            [Problem(relative, "", f"cannot read it at --base {rev}: {shown.stderr.strip() or 'git failed'}")]
        )
    return shown.stdout


def tracked_files(project_dir: Path) -> list[str]:
    """The working tree's tracked files under `project_dir`, relative to it. Only these are the project: an editor's
    lock file, a FIFO or an untracked link elsewhere is not (the code that runs is imported from the working tree
    itself, so an untracked new module is still found)."""
    listed = subprocess.run(["git", "-C", str(project_dir), "ls-files", "-z", "--cached"], capture_output=True)
    if listed.returncode != 0:
        raise InvalidInput(
            [
                Problem(
                    "--base",
                    "",
                    "the project is not in a git repository: "
                    f"{listed.stderr.decode(errors='replace').strip() or 'git failed'}",
                )
            ]
        )
    return sorted({name for name in listed.stdout.decode(errors="surrogateescape").split("\0") if name})


def _regular_content(root: Path, relative: str) -> Optional[bytes]:
    """The content of the tracked file `relative` when it is a regular file inside `root`, directly or through
    links that stay inside `root`; None for anything else (a dangling link, a link out of the tree such as one to
    /dev/zero, a FIFO, a device, a submodule, a file deleted from the working tree, one past MAX_FILE_BYTES)."""
    try:
        target = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, a loop, unreadable
        return None
    if not target.is_relative_to(root):
        return None
    try:
        # O_NOFOLLOW: `target` is resolved, so a link appearing there now is a race and is refused; O_NONBLOCK: a
        # FIFO swapped in after resolve does not block open. The type is checked on what was opened.
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return None
        return handle.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]


@contextmanager
def project_at(project_dir: Path, environment: str, rev: str) -> Iterator[Path]:
    """A temporary copy of the project's tracked files whose `Pulumi.<environment>.yaml` and catalogue are those
    of `rev`. Nothing is copied through a link out of the tree, and nothing but regular files."""
    root = project_dir.resolve()
    files = tracked_files(root)
    with tempfile.TemporaryDirectory(prefix="tenancy-base-") as tmp:
        base_dir = Path(tmp) / "project"
        base_dir.mkdir()
        for relative in files:
            content = _regular_content(root, relative)
            if content is not None:
                (base_dir / relative).parent.mkdir(parents=True, exist_ok=True)
                (base_dir / relative).write_bytes(content)
        stack_file = f"Pulumi.{environment}.yaml"
        (base_dir / stack_file).write_text(git_show(root, rev, stack_file))
        base_catalogue = settings_module.load_stack(base_dir, environment).catalogue
        (base_dir / base_catalogue).parent.mkdir(parents=True, exist_ok=True)
        (base_dir / base_catalogue).write_text(git_show(root, rev, base_catalogue))
        yield base_dir
