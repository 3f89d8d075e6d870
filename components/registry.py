"""The tenant registry: one row per tenant in a table of Amazon Keyspaces (whose keyspace and table tenancy
creates) or of another Cassandra-compatible endpoint (`tenancy:registry.endpoint`, whose table is the platform's).

The Argo CD plugin generator reads this table, so a row is how a tenant's repository reaches the cluster.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi.dynamic as dynamic
from pulumi.dynamic.dynamic import PROVIDER_KEY, serialize_provider
import pulumi_aws as aws

from .catalogue import TenantSpec
from .naming import TenantNames
from . import sdk
from .providers import Providers, child
from .registry_provider import COLUMN_TYPES, PARTITION_KEY, RegistryProvider
from .settings import StackSettings


def registry_region(settings: StackSettings) -> str:
    return settings.registry.region or settings.region


def schema_definition() -> dict[str, Any]:
    return {"columns": [{"name": n, "type": t} for n, t in COLUMN_TYPES], "partition_keys": [{"name": PARTITION_KEY}]}


def record_row(spec: TenantSpec, names: TenantNames, settings: StackSettings) -> dict[str, Any]:
    """The row values of one tenant, as the generator will read them."""
    return {
        "tenant_id": names.registry_key,
        "enabled": spec.lifecycle == "active",
        # The generator keeps a suspended tenant's Application (automated sync off) and drops an offboarded one.
        "lifecycle": spec.lifecycle,
        "namespace": names.namespace,
        "target_cluster": settings.registry.target_cluster,
        "repo_url": spec.repo.url,
        "repo_path": spec.repo.path,
        "labels": dict(spec.labels),
        "params": dict(spec.params),
    }


@dataclass(frozen=True)
class RegistryArgs:
    settings: StackSettings
    providers: Providers
    # Service-specific credential password, a secret read from config by the composition root.
    password: Optional[pulumi.Output[str]] = None
    # PEM named by `tenancy:registry.endpoint.caCertFile`, read by the composition root.
    ca_cert: Optional[str] = None


def registry_target(settings: StackSettings, password: Optional[pulumi.Input[str]],
                    ca_cert: Optional[str] = None) -> dict[str, Any]:
    """What each tenant's RegistryRecord needs to reach the table, in the platform's stack or a shard's.

    Plain settings rather than the table's outputs, so that `pulumi preview` already knows them and a record can
    refuse a move of the rows to another table (RegistryProvider.check) before anything runs.
    """
    target: dict[str, Any] = {
        "region": registry_region(settings),
        "keyspace": settings.registry.keyspace,
        "table": settings.registry.table,
        "migrate_from": settings.registry.migrate_from,
        "auth": settings.registry.auth,
        "username": settings.registry.username,
    }
    if settings.registry.auth == "service-specific":
        target["password"] = pulumi.Output.secret(password)
    endpoint = settings.registry.endpoint
    if endpoint is not None:  # absent otherwise, so a Keyspaces stack's records keep their inputs
        target.update(endpoint=endpoint.host, port=endpoint.port, ca_cert=ca_cert)
    return target


class Registry(pulumi.ComponentResource):
    """The Keyspaces keyspace and table (none with `tenancy:registry.endpoint`, whose table is the platform's);
    `target` is what each tenant's RegistryRecord needs to reach the table."""

    def __init__(self, name: str, args: RegistryArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("tenancy:registry:Registry", name, None, opts)
        settings = args.settings
        self.table_arn: Optional[pulumi.Output[str]] = None
        self.records_depend_on: list[pulumi.Resource] = []
        outputs: dict[str, Any] = {}
        if settings.registry.in_keyspaces:
            # Platform resources carry environment/org/managed-by through the provider's default tags.
            data_opts = child(self, args.providers.aws(registry_region(settings)), protect=settings.protect_data,
                              retain_on_delete=settings.protect_data)
            keyspace = sdk.register(aws.keyspaces.Keyspace, f"{name}-keyspace", data_opts,
                                    name=settings.registry.keyspace)
            table = sdk.register(
                aws.keyspaces.Table, f"{name}-table", data_opts, ["arn"], keyspace_name=keyspace.name,
                table_name=settings.registry.table,
                schema_definition=schema_definition(),
                capacity_specification={"throughput_mode": "PAY_PER_REQUEST"},
                encryption_specification={"type": "AWS_OWNED_KMS_KEY"},
                point_in_time_recovery={"status": "ENABLED"})
            self.table_arn = table.arn
            # Records are written once the table exists (a new table is created asynchronously by Keyspaces).
            self.records_depend_on = [table]
            outputs = {"keyspace": table.keyspace_name, "table": table.table_name, "tableArn": table.arn}
        self.target = registry_target(settings, args.password, args.ca_cert)
        # Default providers are disabled for every package but `pulumi`, the dynamic provider's included, so the
        # records get an explicit one (the same plugin the engine would otherwise start as a default).
        self.record_provider = pulumi.ProviderResource("pulumi-python", f"{name}-records", {}, child(self))
        self.register_outputs(outputs)


@functools.lru_cache(maxsize=1)
def serialized_provider() -> str:
    """The RegistryProvider pickled as the SDK's dynamic.Resource pickles it into each record's `__provider` input.

    The same for every record, so it is pickled once per process rather than once per tenant (dill walks the
    provider's module every time: ~3 ms a record). The SDK's serialisation also wraps pickle's `_batch_setitems`
    in a sorting shim on every call and never unwraps it, so each call would add a stack frame to every later
    pickle (around a thousand calls hit RecursionError): the original is put back.
    """
    batch_setitems = pickle._Pickler._batch_setitems  # noqa: SLF001 - the attribute the SDK leaks
    try:
        return serialize_provider(RegistryProvider())
    finally:
        pickle._Pickler._batch_setitems = batch_setitems  # noqa: SLF001


class RegistryRecord(dynamic.Resource):
    """One tenant's row; removed on delete, or only disabled where the stack protects data."""

    def __init__(self, name: str, registry: Registry, row: dict[str, Any], disable_on_delete: bool,
                 opts: Optional[pulumi.ResourceOptions] = None):
        props = {**registry.target, **row, "disable_on_delete": disable_on_delete,
                 # As dynamic.Resource sends it: always a secret (its `serialize_as_secret_always`).
                 PROVIDER_KEY: pulumi.Output.secret(serialized_provider())}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(provider=registry.record_provider,
                                                                         depends_on=registry.records_depend_on))
        # dynamic.Resource.__init__ would pickle the provider again; register under its type token directly.
        pulumi.CustomResource.__init__(self, f"pulumi-python:{self._resource_type_name}", name, props, opts)
