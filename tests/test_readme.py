"""The README's claims that a test can check: its size, its commands, flags, links and exit codes, and its
"Your first tenant" steps, run literally on a copy of the project."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tenancy import cli
from tests.project_copy import copy_project

PROJECT = Path(__file__).resolve().parent.parent
README = (PROJECT / "README.md").read_text()


def test_readme_is_short_enough_to_read():
    assert len(README.encode()) <= 12 * 1024


def test_every_make_target_it_names_exists():
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (PROJECT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"`make ([a-z][a-z0-9-]*)", README)) | set(re.findall(r"^make ([a-z0-9-]+)", README, re.M))
    assert named and named <= targets, named - targets


def test_every_tenancy_command_line_parses():
    lines = re.findall(r"^venv/bin/python -m tenancy (.+?)(?:\s+#.*)?$", README, re.M)
    assert {line.split()[0] for line in lines} >= {"validate", "synth", "diff", "plan", "stacks", "schema"}
    for line in lines:
        # `[--flag VALUE]` spells an optional flag, `a|b` a choice: parse every form the README shows.
        words = shlex.split(re.sub(r"[\[\]]", "", line))
        words = [w.split("|")[0] for w in words]
        words = [{"FILE": "tenants.yaml", "DIR": "out", "N": "2"}.get(w, w) for w in words]
        cli.parser().parse_args(words)  # SystemExit (a failure) on an unknown flag or choice


def test_every_link_leads_somewhere():
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", README, re.M)}
    for target in re.findall(r"\]\(([^)]+)\)", README):
        if target.startswith("http"):
            continue
        path, _, anchor = target.partition("#")
        if path:
            assert (PROJECT / path).exists(), target
        else:
            assert anchor in anchors, target


def test_exit_codes_are_the_tools():
    table = dict(re.findall(r"^\| (\d) \| (.+) \|$", README, re.M))
    assert set(table) == {"0", "1", "2", "3"}
    from tenancy.diff import Destructive, Diff, exit_code

    def diff(**fields) -> Diff:
        return Diff("dev@HEAD", "dev@working-tree", False, True, [], removal_is_deletion=True, **fields)

    assert exit_code(diff()) == 0
    assert exit_code(diff(destructive=[Destructive("urn", "research", "delete", "why", False, False)])) == 3
    assert exit_code(diff(moves=["research"])) == 3


def test_your_first_tenant_steps_work_as_written(tmp_path):
    """Step 1's YAML appended to the catalogue, then step 2's command prints what the README says it prints."""
    section = README.split("## Your first tenant", 1)[1].split("\n## ", 1)[0]
    entry = re.search(r"```yaml\n(.+?)```", section, re.S).group(1)
    promised = re.search(r"prints `(dev: .+?)`", section.replace("\n   ", " ")).group(1)
    project = tmp_path / "project"
    copy_project(project)
    catalogue = project / "tenants.yaml"
    catalogue.write_text(catalogue.read_text() + "\n" + "\n".join(l[3:] for l in entry.splitlines()) + "\n")
    command = section.split("Check it: `", 1)[1].split("`", 1)[0]
    assert command == "venv/bin/python -m tenancy validate --stack dev"
    done = subprocess.run([sys.executable, "-m", "tenancy", "validate", "--stack", "dev"], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == promised
