"""The project at a git revision, as `diff --base` and `plan` compare against it: the working tree's code with the
revision's stack file and catalogue (what a pull request changes is compared by the code that will run it)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from components import settings as settings_module
from components.problems import InvalidInput, Problem

# What a copy of the project leaves out: version control, environments, outputs and caches.
NOT_COPIED = shutil.ignore_patterns(".git", "venv", ".venv", "out", ".hypothesis", ".pytest_cache", "__pycache__",
                                    "node_modules", ".cache", ".engines")


def git_show(project_dir: Path, rev: str, relative: str) -> str:
    """A file of the project at `rev`; InvalidInput naming the file when git cannot give it."""
    shown = subprocess.run(["git", "-C", str(project_dir), "show", f"{rev}:./{relative}"],
                           capture_output=True, text=True)
    if shown.returncode != 0:
        raise InvalidInput([Problem(relative, "", f"cannot read it at --base {rev}: "
                                                  f"{shown.stderr.strip() or 'git failed'}")])
    return shown.stdout


@contextmanager
def project_at(project_dir: Path, environment: str, rev: str) -> Iterator[Path]:
    """A temporary copy of the project whose `Pulumi.<environment>.yaml` and catalogue are those of `rev`."""
    with tempfile.TemporaryDirectory(prefix="tenancy-base-") as tmp:
        base_dir = Path(tmp) / "project"
        shutil.copytree(project_dir, base_dir, ignore=NOT_COPIED)
        stack_file = f"Pulumi.{environment}.yaml"
        (base_dir / stack_file).write_text(git_show(project_dir, rev, stack_file))
        base_catalogue = settings_module.load_stack(base_dir, environment).catalogue
        (base_dir / base_catalogue).write_text(git_show(project_dir, rev, base_catalogue))
        yield base_dir
