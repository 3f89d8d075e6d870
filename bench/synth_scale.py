"""Benchmark: synth cost per tenant against the bare Pulumi-SDK floor, at 10, 100 and 1000 tenants.

For each size N it generates a catalogue of N tenants with every feature on (dedicated nodes and a MiniCluster on
alternate tenants, which the catalogue refuses together), renders the dev stack offline in a
fresh process (wall time of the run, peak RSS of the process), then, also in a fresh process, registers the same
number of plain resources under the same recording mocks: the floor no program can beat. A second floor registers
plain resources carrying exactly the inputs synth recorded, which separates the cost of the payload itself. A third
replays synth's own registration requests through the bare SDK in one flat loop: the same types, names, parents,
providers, inputs, dependencies, aliases and options, with no program around them (no components' code, no typed
classes, no Output chains). That is what the SDK costs for these very resources; synth over it is the program's own
overhead. Prints a table with the three ratios and the per-tenant cost, so linearity can be read off. Not a test:
run `make bench`.
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
from typing import Callable

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
    """`plain N`: N resources with two small inputs. `payload FILE`: one resource per recorded input set.
    `requests FILE`: synth's own registration requests for the catalogue FILE, replayed flat."""
    import pulumi
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.sync_await import _sync_await

    from tenancy import synth

    _import_sdks()
    if kind == "requests":
        requests = _captured_requests(value)
        warmup, program = _replay(requests[:10]), _replay(requests)
    else:
        payloads = (json.loads(Path(value).read_text()) if kind == "payload"
                    else [{"value": str(i), "labels": {"a": "b"}} for i in range(int(value))])

        def plain(props: list[dict]) -> Callable[[], None]:
            return lambda: [pulumi.CustomResource("bench:index:Plain", f"plain-{i}", p) for i, p in enumerate(props)]
        warmup, program = plain(payloads[:10]), plain(payloads)

    def register(flat_program: Callable[[], None]) -> tuple[float, float, int]:
        mocks = synth.SynthMocks()
        monitor = synth.RecordingMonitor(mocks)
        runtime_settings.ROOT.set(None)
        started, cpu = time.perf_counter(), time.process_time()
        pulumi.runtime.set_mocks(mocks, project="bench", stack="dev", preview=False, monitor=monitor)
        # The runtime settings synth.run gives the program (garbage collection), so the ratio measures the program.
        with synth.fewer_collections():
            _sync_await(pulumi.runtime.stack.run_pulumi_func(flat_program))
        return time.perf_counter() - started, time.process_time() - cpu, len(monitor.records)

    register(warmup)  # the same kind of warm-up as the synth side
    seconds, cpu, registered = register(program)
    if kind == "requests" and registered != len(requests):
        raise SystemExit(f"the replay registered {registered} of synth's {len(requests)} requests")
    return {"seconds": seconds, "cpu": cpu, "resources": registered}


def capturing_monitor(requests: list) -> type:
    """synth's RecordingMonitor, also keeping every RegisterResource request but the stack's in `requests`."""
    from tenancy import synth

    class Capturing(synth.RecordingMonitor):
        def RegisterResource(self, request):  # noqa: N802 - gRPC method name
            if request.type != "pulumi:pulumi:Stack":
                requests.append(request)
            return super().RegisterResource(request)
    return Capturing


def _captured_requests(tenants_file: str) -> list:
    """Synth's RegisterResource requests with their URNs (untimed), in the order the program constructed them."""
    from tenancy import synth

    requests: list = []
    # synth.run builds its own monitor; this bench child swaps the class for one run that is not timed.
    recording, synth.RecordingMonitor = synth.RecordingMonitor, capturing_monitor(requests)
    try:
        result = synth.run(PROJECT, "dev", Path(tenants_file))
    finally:
        synth.RecordingMonitor = recording
    urns = {(r["type"], r["name"]): (i, r["urn"]) for i, r in enumerate(result.resources)}
    return sorted(((urns[(request.type, request.name)][1], request) for request in requests),
                  key=lambda pair: urns[(pair[1].type, pair[1].name)][0])


def _replay(requests: list) -> Callable[[], None]:
    """A flat program registering each request again with the bare SDK classes."""
    import pulumi
    from google.protobuf import json_format

    from tenancy import synth

    def provider_urn(reference: str) -> str:
        return reference.rsplit("::", 1)[0]

    def aliases(request) -> list:
        return [alias.urn if alias.WhichOneof("alias") == "urn"
                else pulumi.Alias(type_=alias.spec.type or ..., name=alias.spec.name or ...)
                for alias in request.aliases]

    # Inputs as plain values (secrets unwrapped, resource references as URNs), decoded before the clock starts.
    plans = [(urn, request, synth._unwrap(json_format.MessageToDict(request.object,  # noqa: SLF001
                                                                      preserving_proto_field_name=True)))
             for urn, request in requests]

    def program() -> None:
        made: dict[str, pulumi.Resource] = {}
        for urn, request, inputs in plans:
            opts = pulumi.ResourceOptions(
                parent=made.get(request.parent), provider=made.get(provider_urn(request.provider)),
                depends_on=[made[dependency] for dependency in request.dependencies if dependency in made] or None,
                protect=request.protect or None, retain_on_delete=request.retainOnDelete or None,
                additional_secret_outputs=list(request.additionalSecretOutputs) or None,
                aliases=aliases(request) or None)
            if request.type.startswith("pulumi:providers:"):
                made_now = pulumi.ProviderResource(request.type.split(":")[-1], request.name, inputs, opts)
            elif request.custom:
                made_now = pulumi.CustomResource(request.type, request.name, inputs, opts)
            else:
                made_now = pulumi.ComponentResource(request.type, request.name, None, opts)
                made_now.register_outputs({})
            made[urn] = made_now
    return program


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
          f"{'payload s (cpu)':>16} {'ratio (cpu)':>12} {'requests s (cpu)':>17} {'ratio (cpu)':>12} "
          f"{'ms/tenant':>9} {'synth MB':>8} {'floor MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(PROJECT / "certs", Path(tmp) / "certs")
        for n in args.sizes:
            path = Path(tmp) / f"tenants-{n}.yaml"
            path.write_text(catalogue(n))
            synth = run_child("synth", str(path))
            floor = run_child("plain", str(synth["resources"]))
            payload = run_child("payload", str(path.with_suffix(".inputs.json")))
            requests = run_child("requests", str(path))

            def both(row: dict) -> str:
                return f"{row['seconds']:.2f} ({row['cpu']:.2f})"

            def ratio(base: dict) -> str:
                return f"{synth['seconds'] / base['seconds']:.2f} ({synth['cpu'] / base['cpu']:.2f})"

            print(f"{n:>8} {synth['resources']:>9} {both(synth):>14} {both(floor):>14} {ratio(floor):>12} "
                  f"{both(payload):>16} {ratio(payload):>12} {both(requests):>17} {ratio(requests):>12} "
                  f"{1000 * synth['seconds'] / n:>9.1f} "
                  f"{synth['peak_mb']:>8.0f} {floor['peak_mb']:>8.0f}", flush=True)

if __name__ == "__main__":
    main()
