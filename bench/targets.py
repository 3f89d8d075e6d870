"""Benchmark: every row of the scale targets (issue 15), each measured in a fresh process on the dev stack.

- validate: `python -m tenancy validate` of 10,000 tenants, wall time of the command.
- synth: a full render of 1,000 tenants with no cache over 2 processes (`render.render`, jobs=2, written out as
  `synth --out` does), wall time and the peak RSS of every process (the parent and each worker).
- diff: `python -m tenancy diff --base HEAD` in a git repository holding 1,000 tenants, after one tenant was
  edited, with the cache the synth row filled (and an unedited diff before, which also keeps the parse of HEAD's
  catalogue in .cache/catalogue/, as any earlier diff or synth of that revision does; without it the edited diff
  parses one more catalogue, about 0.6 s): wall and CPU time of the command.
- sharded diff: the same diff in an environment of `--shards` stacks (the platform stack and the tenants' shards),
  its cache filled by `synth` of the environment (cold, also shown) and an unedited diff: wall and CPU time.
- overhead: single-process synth ÷ the bare SDK registering as many plain resources (bench/synth_scale.py's
  children, unchanged: the floor is `pulumi.CustomResource` under the same recording mocks). Then the two parts of
  that ratio: what the SDK costs for synth's very requests replayed flat (same types, parents, providers, inputs,
  dependencies, aliases, options) over the bare floor, and synth over that replay, the program's own overhead.
- largest stack: resources of the one stack 1,000 tenants render to.

The tenants are bench/synth_scale.py's (every feature on). Not a test: run `make bench`.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth_scale  # noqa: E402  (the catalogue generator and the floor children)

COPIED = shutil.ignore_patterns(".git", "venv", "out", ".cache", ".engines", ".mypy_cache", ".hypothesis", ".pytest_cache", "__pycache__",
                                "bench", "generator", "tests", "docs")


COMPACT_DEFAULTS = """defaults:
  labels: {tier: bench}
  params: {profile: k8s}
  repo: {defaultBranch: main, path: deploy}
  artifacts: {keyPrefix: runs/, encryption: kms, storageClass: archive, garbageCollection: true}
  network:
    ingress: {podLabels: {app.kubernetes.io/name: traefik}, namespaceLabels: {kubernetes.io/metadata.name: traefik}}
    loadBalancerCidrs: [203.0.113.0/24]
    allowEgressToInternet: true
  minicluster: {size: 2, command: "flux run hostname", users: [alice]}
  supplyChain:
    enabled: true
    certificateFile: certs/compliance-root-ca.pem
    trustedIdentities: ["C=US, ST=Oregon, O=calypr, CN=compliance image signer"]
tenants:
"""


def compact_catalogue(n: int) -> str:
    """synth_scale's tenants with what they share in `defaults`, as a catalogue of thousands is written (and as
    fits the catalogue's size limit): each entry is its name, team, region, repository and node/MiniCluster choice."""
    regions = ["us-west-2", "eu-west-1", "us-east-1"]
    return COMPACT_DEFAULTS + "".join(
        f"  - {{name: t{i:05d}, team: team-{i}, region: {regions[i % 3]}, repo: {{url: https://github.com/bench/"
        f"t{i:05d}.git}}, isolation: {{nodes: {'dedicated' if i % 2 else 'shared'}}}, "
        f"minicluster: {{enabled: {'false' if i % 2 else 'true'}}}}}\n" for i in range(n))


def child_render(project_dir: str, jobs: str, cache_dir: str) -> dict:
    """A full render of the bench project into an empty cache folder (every tenant is rendered; the diff row, on
    the same project, then starts warm)."""
    from tenancy import inputs, render, synth

    started = time.perf_counter()
    project, tenants_file = Path(project_dir), Path(project_dir) / "tenants.yaml"
    stack_settings, specs = inputs.load_inputs(project, "dev", tenants_file)
    stats: dict = {}
    result = render.render(project, "dev", tenants_file, specs, stack_settings, Path(cache_dir), int(jobs),
                           stats=stats)
    assert stats["rendered"] == len(specs), stats
    synth.write(result, project / "out")
    return {"seconds": time.perf_counter() - started, "resources": len(result.resources),
            "worker_mb": stats["peak_mb"], "parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _cpu() -> float:
    """CPU seconds of every finished child process so far (this machine's cores may be shared: wall time alone
    can measure the neighbours)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], cwd: Path = PROJECT) -> str:
    """`<wall> s (<cpu> s CPU)` of one command."""
    started, cpu = time.perf_counter(), _cpu()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0, 2, 3):
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return f"{time.perf_counter() - started:.1f} s ({_cpu() - cpu:.1f} s CPU)"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tenancy", *args]


def _project(tmp: Path, catalogue: str, shards: int = 1) -> Path:
    """A git repository holding the program and a catalogue, committed, its dev stack split in `shards`. The rows
    compare layouts of the same tenants (one stack is the issue's baseline), so the resource budget is lifted."""
    project = tmp / ("project" if shards == 1 else f"project-{shards}-shards")
    shutil.copytree(PROJECT, project, ignore=COPIED)
    (project / "tenants.yaml").write_text(catalogue)
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("  tenancy:stackBudget: 5000\n", "  tenancy:stackBudget: 1000000\n")
                          .replace("  tenancy:shards: 1\n", f"  tenancy:shards: {shards}\n"))
    assert "tenancy:stackBudget: 1000000" in stack_file.read_text(), "Pulumi.dev.yaml no longer sets the budget"
    assert f"tenancy:shards: {shards}" in stack_file.read_text(), "Pulumi.dev.yaml no longer sets the shards"
    git = ["git", "-C", str(project), "-c", "user.email=b@example.com", "-c", "user.name=b"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "bench"], check=True)
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--validate", type=int, default=10_000, help="tenants validated")
    parser.add_argument("--tenants", type=int, default=1000, help="tenants rendered, diffed and compared")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4, help="shards of the sharded diff row")
    parser.add_argument("--only-sharded", action="store_true", help="measure the sharded rows alone")
    parser.add_argument("--skip-overhead", action="store_true", help="leave out the (slow) single-process row")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_render(*args.child)))
        return

    rows = []

    def row(measure: str, value: str, target: str) -> None:
        rows.append((measure, value, target))
        print(f"{measure:<58} {value:<44} {target}", flush=True)

    n = args.tenants
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(PROJECT / "certs", tmp / "certs")
        big = tmp / "validate.yaml"
        big.write_text(compact_catalogue(args.validate))
        timing = _timed(_cli("validate", "--stack", "dev", "--tenants", str(big)))
        row(f"validate of {args.validate:,} tenants ({big.stat().st_size / 1e6:.1f} MB)", timing, "<= 10 s")

        path = tmp / "tenants.yaml"
        path.write_text(synth_scale.catalogue(n))
        if args.only_sharded:
            sharded_rows(tmp, n, args.jobs, args.shards, row)
            return
        project = _project(tmp, synth_scale.catalogue(n))
        cpu = _cpu()
        done = subprocess.run([sys.executable, __file__, "--child", str(project), str(args.jobs),
                               str(project / ".cache" / "render")],
                              capture_output=True, text=True, check=True)
        synth = json.loads(done.stdout.strip().splitlines()[-1])
        peaks = ", ".join(f"{mb:.0f}" for mb in synth["worker_mb"])
        row(f"full synth of {n:,} tenants, {args.jobs} processes",
            f"{synth['seconds']:.1f} s ({_cpu() - cpu:.0f} s CPU); peak MB per run {peaks}, "
            f"parent {synth['parent_mb']:.0f}",
            "<= 60 s, <= 1.5 GB per process")

        row(f"diff --base after editing one tenant among {n:,}, warm cache", _diff_timings(project, n, args.jobs),
            "<= 5 s")
        sharded_rows(tmp, n, args.jobs, args.shards, row)

        if not args.skip_overhead:
            serial = synth_scale.run_child("synth", str(path))
            floor = synth_scale.run_child("plain", str(serial["resources"]))
            replayed = synth_scale.run_child("requests", str(path))
            row(f"overhead: synth / bare SDK, {n:,} tenants, 1 process",
                f"{serial['seconds'] / floor['seconds']:.2f} ({serial['seconds']:.1f} s / {floor['seconds']:.1f} s; "
                f"{serial['peak_mb']:.0f} MB)", "<= 1.5")
            row("  of which: the same requests through the bare SDK / bare SDK",
                f"{replayed['seconds'] / floor['seconds']:.2f} ({replayed['seconds']:.1f} s)", "-")
            row("  of which: synth / the same requests through the bare SDK",
                f"{serial['seconds'] / replayed['seconds']:.2f}", "-")
        row(f"largest stack at {n:,} tenants", f"{synth['resources']:,} resources", "<= the budget")


def sharded_rows(tmp: Path, n: int, jobs: int, shards: int, row) -> None:
    """The diff row in an environment of `shards` shard stacks, warmed by the environment's synth."""
    project = _project(tmp, synth_scale.catalogue(n), shards)
    cold = _timed(_cli("--project", str(project), "synth", "--stack", "dev", "--jobs", str(jobs)))
    row(f"synth of {n:,} tenants in {shards} shards, cold cache, {jobs} processes", cold, "-")
    row(f"diff --base after editing one tenant among {n:,} in {shards} shards, warm cache",
        _diff_timings(project, n, jobs), "<= 5 s")


def _diff_timings(project: Path, n: int, jobs: int) -> str:
    """`diff --base HEAD` of a warm project unedited, then after editing the middle tenant's team."""
    diff_args = ("--project", str(project), "diff", "--stack", "dev", "--base", "HEAD", "--format", "json",
                 "--jobs", str(jobs))
    warm = _timed(_cli(*diff_args))
    catalogue = project / "tenants.yaml"
    edited = catalogue.read_text().replace(f"team: team-{n // 2}\n", "team: edited\n", 1)
    assert edited != catalogue.read_text()
    catalogue.write_text(edited)
    return f"{_timed(_cli(*diff_args))}; unedited {warm}"


if __name__ == "__main__":
    main()
