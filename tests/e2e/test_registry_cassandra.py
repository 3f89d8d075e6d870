"""The tenant registry against a real CQL engine: Apache Cassandra 5.0 with TLS and password authentication.

* The registry's dynamic provider runs the way `pulumi up` runs it: inside the `pulumi-python` provider plugin
  (`python -m pulumi.dynamic`, pulumi SDK `pulumi/dynamic/__main__.py`), driven over gRPC with the engine's
  Configure/Check/Create/Diff/Update/Read/Delete requests, the provider pickled by the SDK's own
  `serialize_provider`. The rows are the `RegistryRecord` inputs the dev stack registers (synth), and the table
  is created from the `schemaDefinition` the `aws.keyspaces.Table` resource declares.
* The generator service runs as its image runs it (`python -m tenancy_generator`) and is asked exactly as Argo CD
  v3.5.7 asks (argo-cd `applicationset/services/plugin/plugin_service.go` and
  `applicationset/services/internal/http/client.go`: JSON from a Go encoder, so a trailing newline and no empty
  `parameters`; `Content-Type`, `Authorization: Bearer`, `User-Agent: argocd-applicationset`).

Keyspaces behaviours Cassandra cannot reproduce, and where each is covered instead: docs/architecture.md,
"The registry against Cassandra".
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import httpx
import pytest
from google.protobuf import empty_pb2, struct_pb2

from components.naming import GENERATOR_EXPECTED_KEY
from components.registry_provider import COLUMNS, RegistryProvider, _target, row_values, upsert_cql
from tests.conftest import sample
from tests.e2e.cassandra import Cassandra, cassandra, free_port  # noqa: F401 - `cassandra` is the fixture
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


def test_table_ddl_follows_the_declaration():
    """The DDL builder itself, on a declaration with every schemaDefinition part the registry does not use."""
    table = {"keyspaceName": "ks", "tableName": "t", "schemaDefinition": {
        "columns": [{"name": "a", "type": "text"}, {"name": "b", "type": "int"}, {"name": "s", "type": "text"}],
        "partitionKeys": [{"name": "a"}], "clusteringKeys": [{"name": "b", "orderBy": "DESC"}],
        "staticColumns": [{"name": "s"}]}}
    assert create_table_cql(table) == ('CREATE TABLE "ks"."t" ("a" text, "b" int, "s" text STATIC, '
                                       'PRIMARY KEY (("a"), "b")) WITH CLUSTERING ORDER BY ("b" DESC)')


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


def records() -> dict[str, dict[str, Any]]:
    """The RegistryRecord inputs the dev stack registers, by URN, without the synth's masked `__provider`."""
    return {r["urn"]: {k: v for k, v in r["inputs"].items() if k != "__provider"}
            for r in sample(STACK).of_type("pulumi-python:dynamic:Resource")}


def pointed_at(cassandra: Cassandra, props: dict[str, Any]) -> dict[str, Any]:
    """Record props aimed at this Cassandra with service-specific credentials (what the e2e settings add)."""
    return {**props, "auth": "service-specific", "username": cassandra.username, "password": cassandra.password,
            "endpoint": cassandra.host, "port": cassandra.port, "ca_file": str(cassandra.ca_file)}


def expected_row(props: dict[str, Any]) -> dict[str, Any]:
    """The row the provider's own upsert writes for `props`."""
    return dict(zip(COLUMNS, row_values(props)))


def test_provider_creates_updates_and_deletes_the_stacks_rows(cassandra, table, plugin):
    stack_records = records()
    assert len(stack_records) >= 2, "the dev catalogue should register several tenants"
    state: dict[str, tuple[str, dict[str, Any]]] = {}
    for urn, props in stack_records.items():
        assert (props["keyspace"], props["table"]) == (table["keyspace"], table["table"])
        state[urn] = plugin.create(urn, pointed_at(cassandra, props))
    rows = table_rows(cassandra, table)
    assert rows == {p["tenant_id"]: expected_row(p) for p in stack_records.values()}
    assert {id_ for id_, _ in state.values()} == set(rows)

    # A catalogue edit (labels, params, suspension): an in-place update of the same row.
    urn, (id_, olds) = next(iter(state.items()))
    news = {**olds, "labels": {**olds["labels"], "tier": "e2e"}, "params": {}, "enabled": False}
    news.pop("__provider")
    diff = plugin.diff(urn, id_, olds, news)
    assert diff.changes == plugin.pb.DiffResponse.DIFF_SOME and list(diff.replaces) == []
    olds = plugin.update(urn, id_, olds, news)
    assert table_rows(cassandra, table)[id_] == expected_row(news)

    # A refresh sees a row edited by hand, so the next update writes it back; and sees one removed by hand.
    qualified = f'"{table["keyspace"]}"."{table["table"]}"'
    cassandra.admin_execute(f"UPDATE {qualified} SET enabled = true, labels = {{}} WHERE tenant_id = '{id_}'")
    read_id, refreshed = plugin.read(urn, id_, olds, news)
    assert read_id == id_ and refreshed["enabled"] is True and refreshed["labels"] == {}
    assert plugin.diff(urn, id_, refreshed, news).changes == plugin.pb.DiffResponse.DIFF_SOME
    olds = plugin.update(urn, id_, refreshed, news)
    assert table_rows(cassandra, table)[id_] == expected_row(news)
    cassandra.admin_execute(f"DELETE FROM {qualified} WHERE tenant_id = '{id_}'")
    assert plugin.read(urn, id_, olds, news)[0] == ""
    olds = plugin.create(urn, pointed_at(cassandra, news))[1]

    # Moving a row to another key replaces it.
    moved = {**news, "tenant_id": f"{id_}-moved"}
    assert list(plugin.diff(urn, id_, olds, moved).replaces) == ["tenant_id"]

    # A protected stack only disables the row; an unprotected one removes it.
    disabled_urn, (disabled_id, disabled_state) = list(state.items())[1]
    plugin.delete(disabled_urn, disabled_id, {**disabled_state, "disable_on_delete": True})
    plugin.delete(urn, id_, olds)
    rows = table_rows(cassandra, table)
    assert id_ not in rows
    untouched = ("namespace", "target_cluster", "repo_url", "repo_path", "labels", "params")
    assert rows[disabled_id]["enabled"] is False
    assert {k: rows[disabled_id][k] for k in untouched} == {k: expected_row(disabled_state)[k] for k in untouched}


def test_provider_refuses_an_untrusted_certificate_and_wrong_credentials(cassandra, table, plugin):
    """TLS is verified and credentials are checked; the failure names the endpoint but never the password."""
    props = pointed_at(cassandra, {**next(iter(records().values())), "tenant_id": "never-written"})
    untrusted = {k: v for k, v in props.items() if k != "ca_file"}  # the system bundle does not know our CA
    wrong_password = {**props, "password": "not-the-password"}
    for case in (untrusted, wrong_password):
        with pytest.raises(grpc.RpcError) as failure:
            plugin.create("urn:pulumi:e2e::tenancy::pulumi-python:dynamic:Resource::refused", case)
        message = failure.value.details()
        assert "tenant registry unreachable" in message and f"{cassandra.host}:{cassandra.port}" in message
        assert cassandra.password not in message and "not-the-password" not in message
    assert "never-written" not in table_rows(cassandra, table)


# --- the generator, asked like Argo CD asks ---------------------------------------------------------------------

FILLER = 23  # more rows than one page of the generator's fetch size below
FETCH_SIZE = 5


def argocd_request(base: str, appset_name: str, parameters: dict[str, Any]) -> httpx.Response:
    """One getparams call as Argo CD's plugin client sends it."""
    request: dict[str, Any] = {"applicationSetName": appset_name, "input": {}}
    if parameters:  # PluginInput.Parameters is `json:"parameters,omitempty"`
        request["input"]["parameters"] = parameters
    body = json.dumps(request, separators=(",", ":"), sort_keys=False) + "\n"  # json.Encoder.Encode adds "\n"
    return httpx.post(f"{base}/api/v1/getparams.execute", content=body.encode(), timeout=30,
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}",
                               "User-Agent": "argocd-applicationset", "Accept-Encoding": "gzip"})


@pytest.fixture(scope="module")
def generator(cassandra, table, tmp_path_factory) -> Iterator[str]:
    """The generator process reading the registry table as its own read-only role; yields its base URL."""
    token_file = tmp_path_factory.mktemp("generator") / "token"
    token_file.write_text(TOKEN + "\n")
    # The tenants the stack tells the generator every answer must hold, as its pod mounts them.
    (expected,) = [m for _, m in sample(STACK).manifests()
                   if m["kind"] == "ConfigMap" and GENERATOR_EXPECTED_KEY in m.get("data", {})]
    expected_file = token_file.parent / GENERATOR_EXPECTED_KEY
    expected_file.write_text(expected["data"][GENERATOR_EXPECTED_KEY])
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "generator"), "PLUGIN_TOKEN_FILE": str(token_file),
           "EXPECTED_TENANTS_FILE": str(expected_file),
           "HOST": "127.0.0.1", "PORT": str(port), "AWS_REGION": cassandra.datacenter,
           "KEYSPACES_ENDPOINT": cassandra.host, "KEYSPACES_PORT": str(cassandra.port),
           "KEYSPACES_ROOT_CERT": str(cassandra.ca_file), "KEYSPACES_USERNAME": READER,
           "KEYSPACES_PASSWORD": table["reader_password"], "KEYSPACE": table["keyspace"], "TABLE": table["table"],
           # Every request reads the table, so a stopped Cassandra shows at once.
           "FETCH_SIZE": str(FETCH_SIZE), "CACHE_TTL_SECONDS": "0"}
    log = tmp_path_factory.mktemp("generator-log") / "generator.log"
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
        yield base
    finally:
        stop(process)


def filler_rows(cassandra: Cassandra, table: dict[str, Any]) -> list[str]:
    """More enabled tenants, written with the provider's own statement and row values over one session."""
    template = next(p for p in records().values() if p["enabled"])
    ids = [f"e2e-filler-{i:02d}" for i in range(FILLER)]
    with cassandra.session() as session:
        insert = session.prepare(upsert_cql(_target(template)))
        for i, tenant_id in enumerate(ids):
            session.execute(insert, row_values({
                **template, "tenant_id": tenant_id, "namespace": f"wf-{tenant_id}",
                "labels": {"tier": "filler", "parity": "even" if i % 2 == 0 else "odd"}, "params": {"n": str(i)}}))
    return ids


def test_generator_serves_every_enabled_row_across_pages(cassandra, table, plugin, generator):
    """Argo CD's request for the rendered ApplicationSet gets one parameter map per enabled row, all pages read."""
    for urn, props in records().items():  # the rows the stack publishes, whatever earlier tests did to them
        plugin.create(urn, pointed_at(cassandra, props))
    filler = filler_rows(cassandra, table)
    rows = table_rows(cassandra, table)
    assert len(rows) > 4 * FETCH_SIZE
    (appset,) = [m for _, m in sample(STACK).manifests() if m["kind"] == "ApplicationSet"]
    (plugin_generator,) = [g["plugin"] for g in appset["spec"]["generators"]]
    reply = argocd_request(generator, appset["metadata"]["name"], plugin_generator["input"].get("parameters") or {})
    assert reply.status_code == 200, reply.text
    parameters = reply.json()["output"]["parameters"]
    enabled = sorted(tenant_id for tenant_id, row in rows.items() if row["enabled"])
    assert [p["tenantId"] for p in parameters] == enabled
    assert set(filler) <= set(enabled)
    for p in parameters:
        row = rows[p["tenantId"]]
        assert (p["namespace"], p["cluster"], p["repoURL"], p["path"], p["labels"], p["params"]) == (
            row["namespace"], row["target_cluster"], row["repo_url"], row["repo_path"], row["labels"], row["params"])

    # A label filter, as an ApplicationSet with input.parameters sends it.
    reply = argocd_request(generator, "tenancy-tenants", {"filterLabelKey": "parity", "filterLabelValue": "odd"})
    assert [p["tenantId"] for p in reply.json()["output"]["parameters"]] == filler[1::2]


def test_generator_answers_non_2xx_when_cassandra_stops(cassandra, table, generator):
    """Argo CD changes no Application on a non-2xx answer; a 200 without the tenants would delete them.

    Stops the module's Cassandra, so it runs last in this module.
    """
    assert argocd_request(generator, "tenancy-tenants", {}).status_code == 200
    cassandra.stop()
    for _ in range(3):
        reply = argocd_request(generator, "tenancy-tenants", {})
        assert not 200 <= reply.status_code < 300, reply.text
        assert "output" not in reply.json()
    assert httpx.get(f"{generator}/readyz", timeout=30).status_code == 503
