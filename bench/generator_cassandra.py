"""Benchmark: what one uncached answer costs the generator, reading the registry table from a real Cassandra.

Starts the e2e suite's Cassandra (tests/e2e/cassandra.py, from `.engines/cassandra-*`), creates the dev stack's
registry table as declared (tests/e2e/registry.py), writes `--tenants` active rows, and runs the generator as
its image runs it with `CACHE_TTL_SECONDS=0`, so every request reads the whole table, decodes it, checks it
against the expected tenants and encodes the answer. Requests are sent one at a time; the figure that matters
is the generator process's own CPU time per answer (Cassandra shares the machine, so wall time includes its
share). `--generator DIR` runs another copy of the package (e.g. a checkout of main) for a side-by-side figure.
Not a test: `venv/bin/python bench/generator_cassandra.py [--tenants 10000] [--requests 20] [--fetch-size N]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.generator_load import server_cpu_seconds  # noqa: E402
from components.registry_provider import COLUMNS  # noqa: E402
from tests.e2e.cassandra import running_cassandra  # noqa: E402
from tests.e2e.registry import argocd_request, create_table, running_generator  # noqa: E402


def write_rows(cassandra, table: dict, tenants: int) -> list[str]:
    from cassandra.concurrent import execute_concurrent_with_args

    ids = [f"bench-t{i:05d}" for i in range(tenants)]
    values = [{"tenant_id": t, "enabled": True, "lifecycle": "active", "namespace": f"wf-{t}",
               "target_cluster": "https://kubernetes.default.svc", "repo_url": f"https://github.com/bench/{t}.git",
               "repo_path": "deploy", "labels": {"tier": ("standard", "regulated")[i % 2], "data-class": "internal"},
               "params": {"nextflowProfile": "k8s"}} for i, t in enumerate(ids)]
    with cassandra.session() as session:
        insert = session.prepare(f'INSERT INTO "{table["keyspace"]}"."{table["table"]}" ({", ".join(COLUMNS)}) '
                                 f'VALUES ({", ".join("?" for _ in COLUMNS)})')
        execute_concurrent_with_args(session, insert, [[v[c] for c in COLUMNS] for v in values], concurrency=64,
                                     raise_on_first_error=True)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--fetch-size", type=int, default=None, help="FETCH_SIZE (default: the generator's)")
    parser.add_argument("--generator", type=Path, action="append",
                        help="a directory holding tenancy_generator/ (repeat to compare); default generator/")
    args = parser.parse_args()
    sources = args.generator or [PROJECT / "generator"]
    with tempfile.TemporaryDirectory() as tmp, running_cassandra(Path(tmp)) as cassandra:
        table = create_table(cassandra)
        started = time.monotonic()
        ids = write_rows(cassandra, table, args.tenants)
        print(f"{args.tenants} rows written in {time.monotonic() - started:.1f} s; "
              f"{args.requests} uncached answers, one at a time")
        print(f"{'generator':<40} {'maps':>6} {'srv cpu ms/answer':>18} {'p50 ms':>8} {'max ms':>8}")
        for n, source in enumerate(sources):
            folder = Path(tmp) / f"generator-{n}"
            folder.mkdir()
            expected = json.dumps({t: "active" for t in ids})
            with running_generator(cassandra, table, folder, expected, fetch_size=args.fetch_size,
                                   source=source.resolve()) as generator:
                for _ in range(3):  # connect, prepare, warm the interpreter
                    argocd_request(generator.base, "bench", {}).raise_for_status()
                latencies, cpu_before = [], server_cpu_seconds(generator.pid)
                for _ in range(args.requests):
                    start = time.perf_counter()
                    reply = argocd_request(generator.base, "bench", {})
                    latencies.append((time.perf_counter() - start) * 1000)
                    reply.raise_for_status()
                cpu_ms = (server_cpu_seconds(generator.pid) - cpu_before) * 1000 / args.requests
                maps = len(reply.json()["output"]["parameters"])
            print(f"{str(source)[-40:]:<40} {maps:>6} {cpu_ms:>18.1f} {statistics.median(latencies):>8.1f} "
                  f"{max(latencies):>8.1f}")


if __name__ == "__main__":
    main()
