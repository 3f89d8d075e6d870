"""Benchmark: synth cost per tenant against the bare Pulumi-SDK floor, at 10, 100 and 1000 tenants.

For each size N it generates a catalogue of N tenants with every feature on (dedicated nodes and a MiniCluster on
alternate tenants, which the catalogue refuses together), renders the dev stack offline in a
fresh process (wall time of the run, peak RSS of the process), then, also in a fresh process, registers the same
number of plain resources under the same recording mocks: the floor no program can beat. A second floor registers
plain resources carrying exactly the inputs synth recorded, which separates the program's own overhead
(components, outputs, typed SDK classes) from the cost of the payload itself. Prints a table with both ratios
and the per-tenant cost, so linearity can be read off. Not a test: run `make bench`.
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

TENANT = """  - name: t{i:04d}
    displayName: Tenant {i}
    team: team-{i}
    region: {region}
    repo: {{url: https://github.com/bench/t{i:04d}.git, defaultBranch: main, path: deploy}}
    owners: {{admins: [t{i:04d}-admins], developers: [t{i:04d}-devs]}}
    labels: {{tier: bench}}
    params: {{profile: k8s}}
    artifacts: {{keyPrefix: runs/, encryption: kms, storageClass: archive, garbageCollection: true}}
    isolation: {{nodes: {nodes}}}
    network:
      ingress: {{podLabels: {{app.kubernetes.io/name: traefik}}, namespaceLabels: {{kubernetes.io/metadata.name: traefik}}}}
      loadBalancerCidrs: [203.0.113.0/24]
      allowEgressToInternet: true
    minicluster: {minicluster}
    supplyChain:
      enabled: true
      certificateFile: certs/compliance-root-ca.pem
      trustedIdentities: ["C=US, ST=Oregon, O=calypr, CN=compliance image signer"]
"""

# The catalogue refuses MiniCluster settings on a tenant whose MiniCluster is off: they would act nowhere.
MINICLUSTER_ON = '{enabled: true, size: 2, command: "flux run hostname", users: [alice]}'
MINICLUSTER_OFF = "{enabled: false}"


def catalogue(n: int) -> str:
    regions = ["us-west-2", "eu-west-1", "us-east-1"]
    # Half the tenants run on dedicated nodes, half a MiniCluster: no Flux Operator release lets MiniCluster pods
    # tolerate a dedicated tenant's taint, so the catalogue refuses both on one tenant in the dev stack.
    return "tenants:\n" + "".join(TENANT.format(i=i, region=regions[i % 3], nodes="dedicated" if i % 2 else "shared",
                                                minicluster=MINICLUSTER_OFF if i % 2 else MINICLUSTER_ON) for i in range(n))


def _import_sdks() -> None:
    # Import cost is paid once per process whatever the size; keep it out of both timings.
    import pulumi_aws  # noqa: F401
    import pulumi_kubernetes  # noqa: F401
    import pulumi_random  # noqa: F401
    import pulumi_vault  # noqa: F401


def child_synth(tenants_file: str) -> dict:
    from tenancy import inputs, synth

    _import_sdks()
    # A one-tenant warm-up pays the lazy SDK imports and first-use costs that do not grow with size.
    warmup = Path(tenants_file).with_name("warmup.yaml")
    warmup.write_text(catalogue(1))
    synth.run(PROJECT, "dev", warmup)

    started, cpu = time.perf_counter(), time.process_time()
    inputs.load_inputs(PROJECT, "dev", Path(tenants_file))
    result = synth.run(PROJECT, "dev", Path(tenants_file))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    # What each resource carried, for the payload floor: plain resources with these very inputs.
    Path(tenants_file).with_suffix(".inputs.json").write_text(json.dumps([r["inputs"] for r in result.resources]))
    return {"seconds": seconds, "cpu": cpu, "resources": len(result.resources)}


def child_floor(kind: str, value: str) -> dict:
    """`plain N`: N resources with two small inputs. `payload FILE`: one resource per recorded input set."""
    import pulumi
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.sync_await import _sync_await

    from tenancy import synth

    _import_sdks()
    payloads = (json.loads(Path(value).read_text()) if kind == "payload"
                else [{"value": str(i), "labels": {"a": "b"}} for i in range(int(value))])

    def register(props: list[dict]) -> tuple[float, float, int]:
        mocks = synth.SynthMocks()
        monitor = synth.RecordingMonitor(mocks)
        runtime_settings.ROOT.set(None)
        started, cpu = time.perf_counter(), time.process_time()
        pulumi.runtime.set_mocks(mocks, project="bench", stack="dev", preview=False, monitor=monitor)
        # The runtime settings synth.run gives the program (garbage collection), so the ratio measures the program.
        with synth.fewer_collections():
            _sync_await(pulumi.runtime.stack.run_pulumi_func(
                lambda: [pulumi.CustomResource("bench:index:Plain", f"plain-{i}", p) for i, p in enumerate(props)]))
        return time.perf_counter() - started, time.process_time() - cpu, len(monitor.records)

    register(payloads[:10])  # the same kind of warm-up as the synth side
    seconds, cpu, registered = register(payloads)
    return {"seconds": seconds, "cpu": cpu, "resources": registered}


def run_child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, value = args.child
        result = child_synth(value) if kind == "synth" else child_floor(kind, value)
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    # Wall seconds, then CPU seconds in brackets: the machine's cores may be shared, and CPU is what the program
    # itself costs. Both ratios are synth over floor, wall and CPU alike.
    print(f"{'tenants':>8} {'resources':>9} {'synth s (cpu)':>14} {'floor s (cpu)':>14} {'ratio (cpu)':>12} "
          f"{'payload s (cpu)':>16} {'ratio (cpu)':>12} {'ms/tenant':>9} {'synth MB':>8} {'floor MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(PROJECT / "certs", Path(tmp) / "certs")
        for n in args.sizes:
            path = Path(tmp) / f"tenants-{n}.yaml"
            path.write_text(catalogue(n))
            synth = run_child("synth", str(path))
            floor = run_child("plain", str(synth["resources"]))
            payload = run_child("payload", str(path.with_suffix(".inputs.json")))

            def both(row: dict) -> str:
                return f"{row['seconds']:.2f} ({row['cpu']:.2f})"

            def ratio(base: dict) -> str:
                return f"{synth['seconds'] / base['seconds']:.2f} ({synth['cpu'] / base['cpu']:.2f})"

            print(f"{n:>8} {synth['resources']:>9} {both(synth):>14} {both(floor):>14} {ratio(floor):>12} "
                  f"{both(payload):>16} {ratio(payload):>12} {1000 * synth['seconds'] / n:>9.1f} "
                  f"{synth['peak_mb']:>8.0f} {floor['peak_mb']:>8.0f}", flush=True)

if __name__ == "__main__":
    main()
