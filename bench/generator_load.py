"""Benchmark: the plugin generator under Argo-like load: 1,000 tenants in memory, 50 concurrent clients.

Starts the real server process on loopback (as in tests/test_generator_service.py), sends a bounded number of
`getparams.execute` calls from 50 concurrent httpx clients, and prints requests/second and p50/p99 latency.
Client and server share this machine's cores, so the figures are a floor for the server alone; the last
column, the server process's own CPU time per request, is what one server core can sustain.
Not a test: run `venv/bin/python bench/generator_load.py [--requests N] [--tenants N] [--concurrency N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.processes import stop  # noqa: E402
TOKEN = "bench-token-0123456789abcdef"


def rows(n: int) -> list[dict]:
    return [{"tenant_id": f"calypr-t{i:04d}", "enabled": i % 10 != 0, "namespace": f"wf-calypr-t{i:04d}",
             "target_cluster": "https://kubernetes.default.svc", "repo_url": f"https://github.com/bench/t{i:04d}.git",
             "repo_path": "deploy", "labels": {"tier": ("standard", "regulated")[i % 2]},
             "params": {"nextflowProfile": "k8s"}} for i in range(n)]


def start(workdir: Path, tenants: int) -> tuple[subprocess.Popen, str]:
    (workdir / "rows.json").write_text(json.dumps(rows(tenants)))
    (workdir / "token").write_text(TOKEN)
    # The generator refuses to answer without every tenant tenancy says must be there.
    (workdir / "expected.json").write_text(json.dumps(
        {r["tenant_id"]: "active" for r in rows(tenants) if r["enabled"]}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "generator"), "REGISTRY_BACKEND": "memory",
           "REGISTRY_FILE": str(workdir / "rows.json"), "PLUGIN_TOKEN_FILE": str(workdir / "token"),
           "EXPECTED_TENANTS_FILE": str(workdir / "expected.json"), "HOST": "127.0.0.1", "PORT": str(port),
           "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "tenancy_generator"], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not become ready")


async def drive(base: str, total: int, concurrency: int, filtered: bool) -> tuple[list[float], float, int]:
    parameters = {"filterLabelKey": "tier", "filterLabelValue": "regulated"} if filtered else {}
    payload = {"applicationSetName": "bench", "input": {"parameters": parameters}}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    latencies: list[float] = []
    remaining = [total]
    returned = [0]

    async def client(http: httpx.AsyncClient) -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            start = time.perf_counter()
            reply = await http.post("/api/v1/getparams.execute", json=payload)
            latencies.append(time.perf_counter() - start)
            reply.raise_for_status()
            if not returned[0]:  # decode one reply only: parsing every 200 KB body would bench the client
                returned[0] = len(reply.json()["output"]["parameters"])

    clients = [httpx.AsyncClient(base_url=base, headers=headers, timeout=30) for _ in range(concurrency)]
    try:
        # Open every connection before timing: Argo's controller keeps its connections, so steady state is
        # what matters, and 50 simultaneous connects would otherwise make up the whole top percentile.
        await asyncio.gather(*(http.get("/healthz") for http in clients))
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for http in clients))
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    return latencies, elapsed, returned[0]


def server_cpu_seconds(pid: int) -> float:
    """User+system CPU time of the server process (Linux /proc), to separate its cost from the client's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start(Path(tmp), args.tenants)
        try:
            asyncio.run(drive(base, args.concurrency * 2, args.concurrency, False))  # warm the reply cache
            print(f"{args.tenants} tenants, {args.concurrency} concurrent clients, {args.requests} requests each run")
            print(f"{'input':<22} {'maps/reply':>10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'srv cpu ms/req':>15}")
            for label, filtered in (("all tenants", False), ("tier=regulated", True)):
                cpu_before = server_cpu_seconds(proc.pid)
                latencies, elapsed, returned = asyncio.run(drive(base, args.requests, args.concurrency, filtered))
                cpu_ms = (server_cpu_seconds(proc.pid) - cpu_before) * 1000 / len(latencies)
                ms = [v * 1000 for v in latencies]
                print(f"{label:<22} {returned:>10} {len(latencies) / elapsed:>8.0f} {percentile(ms, 50):>8.1f} "
                      f"{percentile(ms, 99):>8.1f} {max(ms):>8.1f} {cpu_ms:>15.2f}")
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
