"""A copy of this project whose inputs a test changes (stack settings, tenants' lifecycles), and its synth.

Only inputs change: every manifest and record is rendered by the unchanged program from them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import yaml

from tests.e2e.kube import PROJECT


def project_copy(tmp: Path, stack: str, *, settings: Optional[Callable[[dict[str, Any]], None]] = None,
                 lifecycles: Mapping[str, str] = {}) -> Path:
    """`tmp/project`: this project with `settings` applied to `stack`'s `config` mapping (Pulumi.<stack>.yaml) and
    each tenant named in `lifecycles` given that `lifecycle` in the catalogue. Code is linked, inputs copied
    (certificate files must lie inside the project, symbolic links refused)."""
    project = tmp / "project"
    project.mkdir()
    for entry in PROJECT.iterdir():
        if entry.name in {f"Pulumi.{stack}.yaml", "tenants.yaml", "venv", ".engines", "out", ".cache", ".git"}:
            continue
        if entry.is_file():
            shutil.copy(entry, project / entry.name)
        elif entry.name == "certs":
            shutil.copytree(entry, project / entry.name)
        else:
            (project / entry.name).symlink_to(entry)
    doc = yaml.safe_load((PROJECT / f"Pulumi.{stack}.yaml").read_text())
    if settings is not None:
        settings(doc["config"])
    (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    catalogue = yaml.safe_load((PROJECT / "tenants.yaml").read_text())
    entries = [t for t in catalogue["tenants"] if t["name"] in lifecycles]
    assert len(entries) == len(lifecycles), f"not every tenant of {sorted(lifecycles)} is in the catalogue"
    for entry in entries:
        entry["lifecycle"] = lifecycles[entry["name"]]
    (project / "tenants.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    return project


def synth(project: Path, stack: str, out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`python -m tenancy synth` of `project`: (the resource records, the manifests)."""
    done = subprocess.run([sys.executable, "-m", "tenancy", "--project", str(project), "synth", "--stack", stack,
                           "--out", str(out), "--no-cache"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"synth failed:\n{done.stdout}\n{done.stderr}"
    manifests = [yaml.safe_load(p.read_text()) for p in sorted((out / "manifests").rglob("*.yaml"))]
    return json.loads((out / "resources.json").read_text()), manifests
