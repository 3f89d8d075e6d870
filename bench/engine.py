"""Benchmark: the real Pulumi engine on the dev stack, for one tenant and for the sample catalogue.

In the e2e suite's world (tests/e2e/engine_world.py: kube-apiserver, OpenBao, moto, Cassandra; the real Pulumi CLI
and Kubernetes provider, the stand-in aws/vault/random plugins), it measures three engine operations of the same
stack: `up` from an empty stack, a `preview` that plans no change, and `destroy`. For each: wall time, and the peak
resident memory of the engine side (the CLI and every plugin it started, summed, sampled every 100 ms) and of this
process (which serves the inline program). Prints a table. Not a test: `venv/bin/python bench/engine.py` after
`make engines`.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.e2e.cassandra import running_cassandra  # noqa: E402 - after the path insert
from tests.e2e.engine_world import engine_world, grant_registry_role  # noqa: E402
from tests.e2e.kube import Engines  # noqa: E402
from tests.e2e.pulumi_engine import _marked_pids, engine_home  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class PeakRss:
    """Peak of the summed RSS of the engine's processes (those carrying the run's marker), sampled."""

    def __init__(self, run_id: str):
        self.run_id, self.peak, self._stop = run_id, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_rss(pid) for pid in _marked_pids(self.run_id)))
            self._stop.wait(0.1)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure(world, name: str, operation) -> dict:
    with PeakRss(world.engine.home.run_id) as peak:
        begin = time.monotonic()
        operation()
        seconds = time.monotonic() - begin
    return {"case": name, "seconds": seconds, "engine_peak_mib": peak.peak / 2**20,
            "program_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(stack: str, keep_tenants, label: str, folder: Path, home, cassandra, engines) -> list[dict]:
    own = folder / label.replace(" ", "-")
    own.mkdir()
    with engine_world(stack, own, home, cassandra, engines, keep_tenants=keep_tenants,
                      logs_name=f"bench-{own.name}") as world:
        rows = [measure(world, "up (empty stack)", world.engine.up)]
        resources = len(world.engine.export().get("resources", []))
        rows.append(measure(world, "preview (no change)", lambda: world.engine.preview(expect_no_changes=True)))
        rows.append(measure(world, "destroy", world.engine.destroy))
        for row in rows:
            row.update(catalogue=label, resources=resources)
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev", help="a stack without data protection, so destroy completes")
    parser.add_argument("--one", default="scratch", help="the tenant of the one-tenant case")
    args = parser.parse_args()
    engines = Engines.locate()
    folder = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    rows = []
    (folder / "cassandra").mkdir()
    with running_cassandra(folder / "cassandra") as cassandra, engine_home(folder / "pulumi") as home:
        grant_registry_role(cassandra)
        rows += run(args.stack, {args.one}, "one tenant", folder, home, cassandra, engines)
        rows += run(args.stack, None, "sample catalogue", folder, home, cassandra, engines)
    print(f"{'catalogue':<17} {'resources':>9}  {'operation':<20} {'wall s':>8} {'engine peak MiB':>16} "
          f"{'program peak MiB':>17}")
    for row in rows:
        print(f"{row['catalogue']:<17} {row['resources']:>9}  {row['case']:<20} {row['seconds']:>8.1f} "
              f"{row['engine_peak_mib']:>16.0f} {row['program_peak_mib']:>17.0f}")


if __name__ == "__main__":
    main()
