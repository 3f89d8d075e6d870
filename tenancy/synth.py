"""Offline synth: run the real Pulumi program under mocks and record every resource it registers.

There is no Pulumi engine here, so a recording resource monitor stands in for it. It sees exactly what the
engine would be sent (type, name, parent, provider, inputs, protect, retainOnDelete) and answers with
realistic computed outputs (ids, ARNs, generated names), so policies and manifests rendered from outputs
carry concrete values. Secret values are recorded only as "[secret]": synth output is safe to share.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import re
import runpy
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TextIO

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _sync_await

from components import settings as stack_settings_module

SECRET = "[secret]"
MOCK_ACCOUNT = "123456789012"
_SECRET_SIG = rpc._special_secret_sig  # noqa: SLF001 - the wire format has no public name
_SIG_KEY = rpc._special_sig_key  # noqa: SLF001
_RESOURCE_SIG = rpc._special_resource_sig  # noqa: SLF001


def _digest(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _mask(value: Any) -> Any:
    """Plain JSON of a wire value: secrets become "[secret]", resource references their URN, whole numbers ints,
    mappings in key order.

    A protobuf Struct's fields arrive in no fixed order (it differs between runs and processes), and what synth
    writes must be the same bytes on every run and machine.

    The wire carries every number as a double (google.protobuf Struct), so 443 arrives as 443.0; ports, sizes
    and counts are integers in every schema tenancy renders to.
    """
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return _masked_secret(value.get("value"))
        if sig == _RESOURCE_SIG:
            return value.get("urn")
        return {k: _mask(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if value == rpc.UNKNOWN:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _masked_secret(value: Any) -> Any:
    """A secret's shape without its values: a secret mapping keeps its keys (a Secret's `stringData` stays a
    valid mapping of key names), every value becomes "[secret]"."""
    if isinstance(value, dict) and value.get(_SIG_KEY) is None:
        return {k: _masked_secret(value[k]) for k in sorted(value)}
    return SECRET


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(_SIG_KEY) == _SECRET_SIG


def _unwrap(value: Any) -> Any:
    """Plain values for the mocks' computations: secrets unwrapped, resource references as their URN."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return _unwrap(value.get("value"))
        if sig == _RESOURCE_SIG:
            return value.get("urn")
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _provider_urn(reference: str) -> Optional[str]:
    # A provider reference is "<urn>::<id>"; URNs themselves contain "::".
    return reference.rsplit("::", 1)[0] if reference else None


class SynthMocks(pulumi.runtime.Mocks):
    """Computed outputs shaped like the real providers', derived deterministically from the inputs."""

    def __init__(self, stack_outputs: Optional[dict[str, dict[str, Any]]] = None) -> None:
        self.provider_regions: dict[str, str] = {}
        # Outputs of other stacks (by stack name) for the program's StackReferences: a shard reads its platform's.
        self.stack_outputs = stack_outputs or {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[Optional[str], dict]:
        inputs = dict(args.inputs)
        typ, name = args.typ, args.name
        region = self.provider_regions.get(_provider_urn(args.provider or "") or "", "us-west-2")
        if typ.startswith("pulumi:providers:"):
            return f"{name}-provider-id", inputs
        if typ == "pulumi:pulumi:StackReference":
            return _stack_reference(inputs["name"], self.stack_outputs)
        if typ.startswith("kubernetes:"):
            meta = inputs.get("metadata") or {}
            ident = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if p)
            return ident or name, inputs
        computed = _COMPUTED.get(typ)
        if computed is None:
            return f"{name}-id", inputs
        ident, outputs = computed(name, inputs, region)
        return ident, {**inputs, **outputs}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, Optional[list[tuple[str, str]]]]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": MOCK_ACCOUNT,
                "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/synth",
                "userId": "SYNTH",
            }, None
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com"}, None
        return {}, None


def _stack_reference(qualified: str, stack_outputs: dict[str, dict[str, Any]]) -> tuple[str, dict]:
    """What the engine reads for `org/project/stack`: that stack's outputs; rendered secrets stay secret."""
    stack = qualified.rsplit("/", 1)[-1]
    if stack not in stack_outputs:
        raise KeyError(f"StackReference to {qualified!r}: render stack {stack!r} first")
    outputs = stack_outputs[stack]
    secret_names = sorted(k for k, v in outputs.items() if v == SECRET)
    return qualified, {"name": qualified, "outputs": outputs, "secretOutputNames": secret_names}


# What the mocks make up that only the real provider knows after apply: KMS key ids (and every ARN holding one),
# access key and IAM unique ids, Vault auth accessors (see the _COMPUTED functions below), and the account of an
# ARN otherwise derived from known names (`arn:aws:iam::<account>:role/<name>`).
_KEY_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}"
_MADE_UP = re.compile(
    "|".join(
        [
            rf"arn:aws:[a-z0-9-]*:[a-z0-9-]*:{MOCK_ACCOUNT}:[^\s\"',\]}}]*?{_KEY_ID}\b",
            rf"\b{_KEY_ID}\b",
            r"\bAKIA[0-9A-F]{16}\b",
            r"\bAID[0-9A-F]{17}\b",
            r"\bauth_[0-9a-f]{8}\b",
        ]
    )
)
_MOCK_ACCOUNT_IN_ARN = re.compile(rf"(?<=arn:aws:)([a-z0-9-]*:[a-z0-9-]*:){MOCK_ACCOUNT}:")
KNOWN_AFTER_APPLY = "(known after apply)"


def after_apply(text: str) -> str:
    """`text` with every value the mocks made up shown as `pulumi preview` shows an output it cannot know yet."""
    return _MOCK_ACCOUNT_IN_ARN.sub(rf"\1{KNOWN_AFTER_APPLY}:", _MADE_UP.sub(KNOWN_AFTER_APPLY, text))


def _arn(service: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{MOCK_ACCOUNT}:{resource}"


def _bucket(name, inputs, region):
    bucket = inputs.get("bucket") or f"{name}-{_digest(name, length=7)}"
    return bucket, {
        "bucket": bucket,
        "arn": f"arn:aws:s3:::{bucket}",
        "region": region,
        "bucketDomainName": f"{bucket}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com",
    }


def _iam(kind):
    def computed(name, inputs, region):
        iam_name = inputs.get("name") or f"{name}-{_digest(name, length=7)}"
        path = inputs.get("path", "/")
        return iam_name, {
            "name": iam_name,
            "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:{kind}{path}{iam_name}",
            "uniqueId": f"AID{_digest(kind, iam_name, length=17).upper()}",
        }

    return computed


def _access_key(name, inputs, region):
    key_id = f"AKIA{_digest('key', name).upper()}"
    return key_id, {
        "user": inputs.get("user"),
        "status": inputs.get("status", "Active"),
        "secret": f"mock-secret-{_digest('secret', name, length=32)}",
    }


def _kms_key(name, inputs, region):
    key_id = (
        f"{_digest('kms', name, length=8)}-{_digest('kms2', name, length=4)}-4{_digest('k3', name, length=3)}-"
        f"8{_digest('k4', name, length=3)}-{_digest('k5', name, length=12)}"
    )
    return key_id, {"keyId": key_id, "arn": _arn("kms", region, f"key/{key_id}")}


def _kms_alias(name, inputs, region):
    alias = inputs.get("name") or f"alias/{name}"
    return alias, {"name": alias, "arn": _arn("kms", region, alias), "targetKeyArn": inputs.get("targetKeyId")}


def _keyspace(name, inputs, region):
    ks = inputs.get("name") or name
    return ks, {"name": ks, "arn": f"arn:aws:cassandra:{region}:{MOCK_ACCOUNT}:/keyspace/{ks}/"}


def _table(name, inputs, region):
    ks, table = inputs.get("keyspaceName"), inputs.get("tableName")
    return f"{ks}/{table}", {"arn": f"arn:aws:cassandra:{region}:{MOCK_ACCOUNT}:/keyspace/{ks}/table/{table}"}


def _random_password(name, inputs, region):
    length = int(inputs.get("length", 32))
    value = (_digest("password", name, length=64) * 4)[:length]
    return "none", {"result": value, "bcryptHash": f"$2a$10${_digest('bcrypt', name, length=53)}"}


def _vault_path(name, inputs, region):
    return inputs.get("path") or inputs.get("name") or name, {"accessor": f"auth_{_digest('acc', name, length=8)}"}


_COMPUTED = {
    "aws:s3/bucket:Bucket": _bucket,
    "aws:iam/user:User": _iam("user"),
    "aws:iam/role:Role": _iam("role"),
    "aws:iam/policy:Policy": _iam("policy"),
    "aws:iam/accessKey:AccessKey": _access_key,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:keyspaces/keyspace:Keyspace": _keyspace,
    "aws:keyspaces/table:Table": _table,
    "random:index/randomPassword:RandomPassword": _random_password,
    "vault:index/mount:Mount": _vault_path,
    "vault:index/authBackend:AuthBackend": _vault_path,
}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that records each registration as the engine would receive it."""

    def __init__(self, mocks: SynthMocks, progress: Optional["Progress"] = None):
        super().__init__(mocks)
        self.synth_mocks = mocks
        self.progress = progress
        self.records: list[dict[str, Any]] = []
        # The SDK sends RegisterResource from a thread pool once each resource's inputs resolve, so records
        # arrive in a different order from run to run. The order the program constructed them in is noted
        # synchronously (by a stack transformation, which runs in every Resource constructor) and restored.
        self.construction_order: dict[tuple[str, str], int] = {}
        # Secret values the mocks generated (passwords, key secrets): kept in memory so tests can prove that
        # none of them reaches resources.json, outputs.json or a manifest. Never written anywhere.
        self.generated_secrets: list[str] = []

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        wire_inputs = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
        if request.type == "pulumi:providers:aws":
            self.synth_mocks.provider_regions[urn] = wire_inputs.get("region", "us-west-2")
        recorded = _mask(wire_inputs)
        if "__provider" in recorded:
            # A dynamic resource carries its pickled provider; it is code, not configuration worth reviewing.
            recorded["__provider"] = "[dynamic provider]"
        record = {
            "urn": urn,
            "type": request.type,
            "name": request.name,
            "parent": request.parent or None,
            "custom": bool(request.custom),
            "provider": _provider_urn(request.provider),
            "inputs": recorded,
            "protect": bool(request.protect),
            "retainOnDelete": bool(request.retainOnDelete),
        }
        self.records.append(record)
        if self.progress is not None:
            self.progress.registered(record)
        resource_args = pulumi.runtime.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=_unwrap(wire_inputs),
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        id_, state = self.mocks.new_resource(resource_args)
        # Inputs go back in their wire form, so a secret input stays secret as an output, as with the engine;
        # only computed outputs are added. This skips the SDK's deserialise/serialise round trip per resource.
        response = {**wire_inputs, **{k: v for k, v in state.items() if k not in wire_inputs}}
        # The engine marks provider-declared secret outputs (access key secrets, generated passwords);
        # the stock mock monitor does not, so do it here or they would leak as plain values.
        for key in request.additionalSecretOutputs:
            if key in response and not _is_secret(response[key]):
                if isinstance(response[key], str):
                    self.generated_secrets.append(response[key])
                response[key] = {_SIG_KEY: _SECRET_SIG, "value": response[key]}
        obj_proto = struct_pb2.Struct()
        obj_proto.update(response)
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto)

    def note_construction(self, args: pulumi.ResourceTransformationArgs) -> None:
        """Stack transformation: remember when the program constructed each resource; changes nothing."""
        # A URN is unique per type chain and name; tenancy prefixes every child's name with its parent's, so
        # type and name alone identify a resource here.
        self.construction_order.setdefault((args.type_, args.name), len(self.construction_order))

    def ordered_records(self) -> list[dict[str, Any]]:
        """Records in the order the program constructed the resources (parents before their children)."""
        last = len(self.construction_order)
        return sorted(self.records, key=lambda r: self.construction_order.get((r["type"], r["name"]), last))


class Progress:
    """Progress of a long render on stderr, never stdout (stdout carries the tables and JSON machines read).

    Silent for the first `delay` seconds; then a bar redrawn in place on a terminal, or a plain line every
    `interval` seconds elsewhere (CI logs keep every line, so a redrawn bar would flood them).
    """

    def __init__(
        self,
        label: str,
        tenants: int,
        stream: Optional[TextIO] = None,
        delay: float = 2.0,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        width: int = 30,
    ):
        self.label, self.tenants, self.width = label, tenants, width
        self.stream = stream if stream is not None else sys.stderr
        self.delay, self.interval, self.clock = delay, interval, clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = clock()
        self.resources = self.tenants_seen = 0
        self.shown_at: Optional[float] = None
        self._lock = threading.Lock()

    def registered(self, record: dict[str, Any]) -> None:
        self.add(record["type"] == "tenancy:index:Tenant", 1)

    def cached(self, resources: int) -> None:
        """A tenant taken from the cache with its `resources`: counted as if it had registered them."""
        self.add(1, resources)

    def add(self, tenants: int, resources: int) -> None:
        """Tenants begun and resources registered (in this process, or reported by a render worker)."""
        with self._lock:
            self.resources += resources
            self.tenants_seen += tenants
            now = self.clock()
            if now - self.started < self.delay:
                return
            if self.shown_at is None or now - self.shown_at >= (0.1 if self.tty else self.interval):
                self._show(now)

    def done(self) -> None:
        with self._lock:
            if self.shown_at is not None:
                self._show(self.clock(), final=True)

    def _show(self, now: float, final: bool = False) -> None:
        elapsed = now - self.started
        counts = f"{self.tenants_seen}/{self.tenants} tenants, {self.resources} resources, {elapsed:.1f}s"
        if self.tty:
            filled = self.width if final else self.width * min(self.tenants_seen, self.tenants) // max(self.tenants, 1)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {counts}" + ("\n" if final else ""))
        else:
            self.stream.write(f"{self.label}: {'done, ' if final else ''}{counts}\n")
        self.stream.flush()
        self.shown_at = now


@dataclass
class SynthResult:
    stack: str
    resources: list[dict[str, Any]]
    outputs: dict[str, Any] = field(default_factory=dict)
    generated_secrets: list[str] = field(default_factory=list, repr=False)

    def of_type(self, type_token: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_token]

    def descendants(self, urn: str) -> list[dict[str, Any]]:
        """Every resource parented (transitively) under `urn`, in registration order."""
        inside = {urn}
        found = []
        for record in self.resources:  # registration order puts parents before their children
            if record["parent"] in inside:
                inside.add(record["urn"])
                found.append(record)
        return found

    def tenant(self, name: str) -> list[dict[str, Any]]:
        """The resources of one Tenant component."""
        urn = next(r["urn"] for r in self.of_type("tenancy:index:Tenant") if r["name"] == name)
        return self.descendants(urn)

    def tenant_names(self) -> list[str]:
        return [r["name"] for r in self.of_type("tenancy:index:Tenant")]

    def manifests(self) -> list[tuple[str, dict[str, Any]]]:
        """(relative path, manifest) for every Kubernetes object, as `manifests/<ns|_cluster>/<kind>-<name>.yaml`."""
        found = []
        for record in self.resources:
            if (
                not record["custom"]
                or not record["type"].startswith("kubernetes:")
                or record["type"].startswith("kubernetes:helm")
                or "apiVersion" not in record["inputs"]
            ):
                continue
            manifest = _ordered_manifest(record["inputs"])
            meta = manifest.get("metadata") or {}
            folder = meta.get("namespace") or "_cluster"
            found.append((f"{folder}/{manifest['kind'].lower()}-{meta.get('name', record['name'])}.yaml", manifest))
        return found


def _ordered_manifest(inputs: dict[str, Any]) -> dict[str, Any]:
    # Recorded inputs are in key order; manifests read best with the conventional fields first.
    first = ("apiVersion", "kind", "metadata")
    return {**{k: inputs[k] for k in first if k in inputs}, **{k: v for k, v in inputs.items() if k not in first}}


# Allocations between young-generation collections while a program runs under the mocks (CPython's default: 700).
# The SDK allocates futures, tasks and Outputs by the hundred per resource and keeps most of them until the end, so
# at the default nearly every collection traverses survivors only: half the CPU of a large synth (measured at
# 200 tenants: 25 s with the defaults, 13 s with these).
GC_THRESHOLDS = (100_000, 50, 100)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run with GC_THRESHOLDS, then restore the process's own (garbage cycles are collected later, not never)."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def run(
    project_dir: Path,
    stack: str,
    tenants_file: Optional[Path] = None,
    progress: Optional[Progress] = None,
    stack_outputs: Optional[dict[str, dict[str, Any]]] = None,
) -> SynthResult:
    """Run the program in `project_dir` for `stack` under mocks; the caller validates inputs first.

    `stack_outputs` answers the program's StackReferences (a shard stack needs its platform stack's outputs).
    `progress` hears of every registration; its owner says when the whole render is done."""
    from components.sharding import is_shard_stack

    # What Pulumi hands the program: the stack's own file (a shard stack may have none; the program reads its
    # environment's settings and refuses any in the shard's).
    config, secret_keys = (
        ({}, frozenset())
        if is_shard_stack(stack) and not (project_dir / f"Pulumi.{stack}.yaml").exists()
        else stack_settings_module.read_stack_file(project_dir, stack)
    )
    if tenants_file is not None:
        config["tenancy:catalogue"] = str(tenants_file.resolve())
    mocks = SynthMocks(stack_outputs)
    monitor = RecordingMonitor(mocks, progress)
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_all_config(config, sorted(secret_keys))
    pulumi.runtime.set_mocks(mocks, project="tenancy", stack=stack, preview=False, monitor=monitor)
    program = str(project_dir / "__main__.py")
    sys.path.insert(0, str(project_dir))
    try:
        with fewer_collections():
            _sync_await(pulumi.runtime.stack.run_pulumi_func(lambda: _run_program(program, monitor)))
            outputs = _resolve_outputs(runtime_settings.get_root_resource())
    finally:
        sys.path.remove(str(project_dir))
    return SynthResult(
        stack=stack, resources=monitor.ordered_records(), outputs=outputs, generated_secrets=monitor.generated_secrets
    )


def _run_program(program: str, monitor: RecordingMonitor) -> None:
    pulumi.runtime.register_stack_transformation(monitor.note_construction)
    runpy.run_path(program, run_name="__main__")


def _resolve_outputs(root: Any) -> dict[str, Any]:
    resolved = {}
    for key, value in (getattr(root, "outputs", None) or {}).items():
        output = pulumi.Output.from_input(value)
        is_secret = _sync_await(output.is_secret())
        resolved[key] = SECRET if is_secret else _sync_await(output.future())
    return resolved


def write(result: SynthResult, out_dir: Path) -> None:
    import shutil

    from components.yaml_emit import dump

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "resources.json").write_text(json.dumps(result.resources, indent=2, sort_keys=False) + "\n")
    (out_dir / "outputs.json").write_text(json.dumps(result.outputs, indent=2, sort_keys=True, default=str) + "\n")
    manifests_dir = out_dir / "manifests"
    if manifests_dir.exists():
        shutil.rmtree(manifests_dir)
    for relative, manifest in result.manifests():
        path = manifests_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(manifest))


# The summary's columns, explained under the table so a first-time reader needs no other document.
SUMMARY_COLUMNS = {
    "tenant": "catalogue name",
    "lifecycle": "active, suspended (no access, data kept) or offboarded (identities gone, data kept)",
    "namespace": "the tenant's Kubernetes namespace",
    "region": "AWS region of its bucket and key (the AWS provider it uses)",
    "bucket": "S3 artifact bucket",
    "kv/eso": "Vault KV entries written / ExternalSecrets delivering them into the namespace",
    "resources": "resources registered under the tenant's component",
}


def tenant_summary(result: SynthResult, lifecycles: Optional[dict[str, str]] = None) -> list[dict[str, Any]]:
    """One row per Tenant component, with the columns of SUMMARY_COLUMNS; `lifecycles` from the catalogue."""
    rows = []
    for name in result.tenant_names():
        owned = result.tenant(name)
        namespaces = [r for r in owned if r["type"] == "kubernetes:core/v1:Namespace"]
        buckets = [r for r in owned if r["type"] == "aws:s3/bucket:Bucket"]
        kv = sum(r["type"] == "vault:kv/secretV2:SecretV2" for r in owned)
        delivered = sum(r["type"].endswith(":ExternalSecret") for r in owned)
        rows.append(
            {
                "tenant": name,
                "lifecycle": (lifecycles or {}).get(name, "-"),
                "namespace": namespaces[0]["inputs"]["metadata"]["name"] if namespaces else "-",
                "region": buckets[0]["provider"].rsplit("::", 1)[-1].removeprefix("aws-") if buckets else "-",
                "bucket": buckets[0]["inputs"].get("bucket", "-") if buckets else "-",
                "kv/eso": f"{kv}/{delivered}",
                "resources": len(owned),
            }
        )
    return rows


# Text output fits a terminal or a CI log of this many columns.
WIDTH = 120


def format_table(rows: list[dict[str, Any]]) -> str:
    """A column per field; where long names make that wider than WIDTH, a block per tenant instead."""
    import textwrap

    if not rows:
        return "(no tenants in this stack)"
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers}
    lines = ["  ".join(h.upper().ljust(widths[h]) for h in headers).rstrip()]
    lines += ["  ".join(str(r[h]).ljust(widths[h]) for h in headers).rstrip() for r in rows]
    if max(map(len, lines)) > WIDTH:
        lines = [
            line
            for r in rows
            for line in textwrap.wrap(
                "  ".join([str(r[headers[0]])] + [f"{h}={r[h]}" for h in headers[1:]]),
                WIDTH,
                subsequent_indent="    ",
                break_on_hyphens=False,
            )
        ]
    key_width = max(len(h) for h in headers)
    lines += [""] + [
        line
        for h in headers
        for line in textwrap.wrap(
            f"  {h.upper().ljust(key_width)}  {SUMMARY_COLUMNS[h]}", WIDTH, subsequent_indent=" " * (key_width + 4)
        )
    ]
    return "\n".join(lines)
