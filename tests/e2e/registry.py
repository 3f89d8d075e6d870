"""The tenant registry's e2e pieces shared by the registry and ApplicationSet modules: the dev stack's registry
table created on Cassandra as declared, the registry provider driven the way the Pulumi engine drives it, and the
generator service run as its image runs it, asked as Argo CD v3.5.7 asks.

- `table` (module fixture): the keyspace and table of the dev stack, a read-only role for the generator.
- `plugin` (module fixture): the `pulumi-python` provider plugin process (`ProviderPlugin`), as `pulumi up` runs it.
- `running_generator(...)`: the generator process on a free loopback port, reading the table as that role.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import grpc
import httpx
import pytest
from google.protobuf import empty_pb2, struct_pb2

from components.registry_provider import RegistryProvider
from tests.conftest import sample
from tests.e2e.cassandra import Cassandra, free_port
from tests.processes import stop

PROJECT = Path(__file__).resolve().parents[2]
STACK = "dev"
TOKEN = "e2e-plugin-token-0123456789abcdef"
READER = "tenancy_generator"


# --- the declared table, as CQL ---------------------------------------------------------------------------------

def declared(type_token: str) -> dict[str, Any]:
    """The inputs the stack registers for its one resource of `type_token`."""
    (resource,) = sample(STACK).of_type(type_token)
    return resource["inputs"]


def create_table_cql(table: dict[str, Any]) -> str:
    """CREATE TABLE for an `aws.keyspaces.Table`'s inputs: the same columns, types and key the stack declares.

    Keyspaces' CreateTable `schemaDefinition` (allColumns, partitionKeys, clusteringKeys with orderBy, staticColumns)
    maps one to one onto a CQL primary key; nothing here restates the registry's columns.
    """
    schema = table["schemaDefinition"]
    static = {c["name"] for c in schema.get("staticColumns") or []}
    columns = [f'"{c["name"]}" {c["type"]}{" STATIC" if c["name"] in static else ""}' for c in schema["columns"]]
    partition = ", ".join(f'"{k["name"]}"' for k in schema["partitionKeys"])
    clustering = schema.get("clusteringKeys") or []
    key = ", ".join([f"({partition})", *(f'"{k["name"]}"' for k in clustering)])
    cql = f'CREATE TABLE "{table["keyspaceName"]}"."{table["tableName"]}" ({", ".join(columns)}, PRIMARY KEY ({key}))'
    if clustering:
        order = ", ".join(f'"{k["name"]}" {k["orderBy"]}' for k in clustering)
        cql += f" WITH CLUSTERING ORDER BY ({order})"
    return cql



@pytest.fixture(scope="module")
def table(cassandra: Cassandra) -> dict[str, Any]:
    """The registry keyspace and table of the dev stack, created as declared; the test role may write and read
    rows, the generator's role may only read them (as its IRSA policy allows only cassandra:Select)."""
    declaration = declared("aws:keyspaces/table:Table")
    keyspace, name = declaration["keyspaceName"], declaration["tableName"]
    assert declared("aws:keyspaces/keyspace:Keyspace")["name"] == keyspace
    reader_password = f"reader-{os.urandom(8).hex()}"
    cassandra.admin_execute(
        # Keyspaces' SingleRegionStrategy replicates three times in the region; one node has one replica.
        f"CREATE KEYSPACE \"{keyspace}\" WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', '{cassandra.datacenter}': 1}}",
        create_table_cql(declaration),
        # `pulumi up` writes the rows, `pulumi refresh` reads them back.
        f'GRANT MODIFY ON TABLE "{keyspace}"."{name}" TO {cassandra.username}',
        f'GRANT SELECT ON TABLE "{keyspace}"."{name}" TO {cassandra.username}',
        f"CREATE ROLE {READER} WITH LOGIN = true AND PASSWORD = '{reader_password}'",
        f'GRANT SELECT ON TABLE "{keyspace}"."{name}" TO {READER}')
    return {"keyspace": keyspace, "table": name, "reader_password": reader_password}


def table_rows(cassandra: Cassandra, table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every row, read back by the run's superuser; maps come back as plain dicts, unset maps as {}."""
    with cassandra.session(cassandra.admin_username, cassandra.admin_password) as session:
        rows = session.execute(f'SELECT * FROM "{table["keyspace"]}"."{table["table"]}"')
        return {r["tenant_id"]: {**r, "labels": dict(r["labels"] or {}), "params": dict(r["params"] or {})}
                for r in rows}


# --- the provider, driven like the engine drives it -----------------------------------------------------------

class ProviderPlugin:
    """The `pulumi-python` resource provider plugin process and the engine's side of its gRPC protocol."""

    def __init__(self, process: subprocess.Popen, port: int):
        from pulumi.dynamic.dynamic import serialize_provider
        from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

        self.process, self.pb = process, provider_pb2
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        # What RegistryRecord's constructor puts in `__provider` (pulumi/dynamic/dynamic.py).
        self.serialized = serialize_provider(RegistryProvider())
        self.stub.Configure(provider_pb2.ConfigureRequest(args=struct_pb2.Struct()), timeout=30)

    @staticmethod
    def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
        from pulumi.runtime import rpc

        # A private loop, as the plugin itself uses: asyncio.run would unset the loop the Pulumi SDK (synth) uses.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(rpc.serialize_properties(props, {}))
        finally:
            loop.close()

    @staticmethod
    def _plain(struct: struct_pb2.Struct) -> dict[str, Any]:
        from pulumi.runtime import rpc

        return rpc.deserialize_properties(struct)

    def _with_provider(self, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, "__provider": self.serialized}

    def create(self, urn: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        news = self._with_provider(props)
        checked = self.stub.Check(self.pb.CheckRequest(urn=urn, olds=self._struct({}), news=self._struct(news)),
                                  timeout=60)
        assert not checked.failures
        created = self.stub.Create(self.pb.CreateRequest(urn=urn, properties=checked.inputs), timeout=60)
        return created.id, self._plain(created.properties)

    def diff(self, urn: str, id_: str, olds: dict[str, Any], news: dict[str, Any]):
        return self.stub.Diff(self.pb.DiffRequest(id=id_, urn=urn, olds=self._struct(olds),
                                                  news=self._struct(self._with_provider(news))), timeout=60)

    def update(self, urn: str, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        updated = self.stub.Update(self.pb.UpdateRequest(id=id_, urn=urn, olds=self._struct(olds),
                                                         news=self._struct(self._with_provider(news))), timeout=60)
        return self._plain(updated.properties)

    def read(self, urn: str, id_: str, state: dict[str, Any], inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A refresh: the engine sends the stored outputs and inputs; an empty id back means the row is gone."""
        read = self.stub.Read(self.pb.ReadRequest(id=id_, urn=urn, properties=self._struct(state),
                                                  inputs=self._struct(self._with_provider(inputs))), timeout=60)
        return read.id, self._plain(read.properties)

    def delete(self, urn: str, id_: str, state: dict[str, Any]) -> None:
        result = self.stub.Delete(self.pb.DeleteRequest(id=id_, urn=urn, properties=self._struct(state)),
                                  timeout=60)
        assert isinstance(result, empty_pb2.Empty)


@pytest.fixture(scope="module")
def plugin() -> Iterator[ProviderPlugin]:
    """`python -m pulumi.dynamic` from the project directory, as the engine starts the plugin for the program."""
    process = subprocess.Popen([sys.executable, "-m", "pulumi.dynamic"], cwd=PROJECT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    try:
        port = int(process.stdout.readline().decode().strip())  # the plugin announces its port on stdout
        client = ProviderPlugin(process, port)
        yield client
        client.channel.close()
    finally:
        stop(process)
        process.stdout.close()
        process.stderr.close()



def pointed_at(cassandra: Cassandra, props: dict[str, Any]) -> dict[str, Any]:
    """Record props aimed at this Cassandra with service-specific credentials (what the e2e settings add)."""
    return {**props, "auth": "service-specific", "username": cassandra.username, "password": cassandra.password,
            "endpoint": cassandra.host, "port": cassandra.port, "ca_cert": cassandra.ca_file.read_text()}



def argocd_request(base: str, appset_name: str, parameters: dict[str, Any]) -> httpx.Response:
    """One getparams call as Argo CD's plugin client sends it."""
    request: dict[str, Any] = {"applicationSetName": appset_name, "input": {}}
    if parameters:  # PluginInput.Parameters is `json:"parameters,omitempty"`
        request["input"]["parameters"] = parameters
    body = json.dumps(request, separators=(",", ":"), sort_keys=False) + "\n"  # json.Encoder.Encode adds "\n"
    return httpx.post(f"{base}/api/v1/getparams.execute", content=body.encode(), timeout=30,
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}",
                               "User-Agent": "argocd-applicationset", "Accept-Encoding": "gzip"})



# --- the generator, as its image runs it ------------------------------------------------------------------------

@dataclass
class Generator:
    base: str             # http://127.0.0.1:<port>
    expected_file: Path   # what the pod mounts from the expected-tenants ConfigMap; rewrite it to change the set
    log: Path


@contextmanager
def running_generator(cassandra: Cassandra, table: dict[str, Any], folder: Path, expected: str,
                      fetch_size: Optional[int] = None) -> Iterator[Generator]:
    """The generator process reading the registry table as its own read-only role, with `expected` (the
    rendered expected-tenants JSON) as its expected-tenants file and TOKEN as its bearer token."""
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    expected_file = folder / "expected-tenants.json"
    expected_file.write_text(expected)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "generator"), "PLUGIN_TOKEN_FILE": str(token_file),
           "EXPECTED_TENANTS_FILE": str(expected_file),
           "HOST": "127.0.0.1", "PORT": str(port), "AWS_REGION": cassandra.datacenter,
           "KEYSPACES_ENDPOINT": cassandra.host, "KEYSPACES_PORT": str(cassandra.port),
           "KEYSPACES_ROOT_CERT": str(cassandra.ca_file), "KEYSPACES_USERNAME": READER,
           "KEYSPACES_PASSWORD": table["reader_password"], "KEYSPACE": table["keyspace"], "TABLE": table["table"],
           # Every request reads the table, so a stopped Cassandra or a changed row shows at once.
           "CACHE_TTL_SECONDS": "0"}
    if fetch_size is not None:
        env["FETCH_SIZE"] = str(fetch_size)
    log = folder / "generator.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "tenancy_generator"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"generator exited: {log.read_text()}"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"generator not healthy: {log.read_text()}"
                time.sleep(0.1)
        yield Generator(base, expected_file, log)
    finally:
        stop(process)
