"""The stand-in aws provider's Keyspaces keyspace and table as DDL on the e2e Cassandra (tests/e2e/standin).

Driven over real gRPC as the engine drives it, with the registry's own schema definition
(components/registry.py). Upstream: terraform-provider-aws internal/service/keyspaces/table.go (added columns
update in place; keyspace_name, table_name, partition keys replace). What is asserted is what Cassandra's
system_schema shows, and that a refresh of a dropped table reports it gone.
"""

from __future__ import annotations

import os
import socket
from typing import Iterator
from unittest import mock

import pytest

from components.registry import schema_definition
from tests.e2e import standin
from tests.e2e.cassandra import Cassandra, cassandra  # noqa: F401 - `cassandra` is the fixture
from tests.e2e.standin import plugin
from tests.test_standin_provider import Resource, _stub

moto_server = pytest.importorskip("moto.server")

KEYSPACE, TABLE = "tenant_ops_standin", "tenant_configs"


@pytest.fixture(scope="module")
def aws_provider(cassandra: Cassandra) -> Iterator:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    # DDL needs a role that may create keyspaces: the node's admin (the login role has no such grant).
    backends = standin.Backends(
        aws_endpoint=f"http://127.0.0.1:{port}", vault_address="http://127.0.0.1:1", vault_token="unused",
        cql_host=cassandra.host, cql_port=cassandra.port, cql_ca_file=cassandra.ca_file,
        cql_username=cassandra.admin_username, cql_password=cassandra.admin_password)
    try:
        with mock.patch.dict(os.environ, backends.environment()):
            yield from _stub("aws", {"region": cassandra.datacenter})
    finally:
        moto.stop()


def _columns(cassandra: Cassandra) -> dict[str, str]:
    with cassandra.session(cassandra.admin_username, cassandra.admin_password) as session:
        rows = session.execute("SELECT column_name, type FROM system_schema.columns "
                               "WHERE keyspace_name = %s AND table_name = %s", (KEYSPACE, TABLE))
        return {row["column_name"]: row["type"] for row in rows}  # the node's sessions answer rows as dicts


def test_keyspace_and_table_lifecycle(aws_provider, cassandra):
    schema = plugin.to_dict(plugin.to_struct({"s": schema_definition()}))["s"]
    camel = {"columns": schema["columns"], "partitionKeys": schema["partition_keys"]}
    inputs = {"keyspaceName": KEYSPACE, "tableName": TABLE, "schemaDefinition": camel,
              "capacitySpecification": {"throughputMode": "PAY_PER_REQUEST"}}
    keyspace = Resource(aws_provider, "aws:keyspaces/keyspace:Keyspace", "keyspace")
    out = keyspace.create({"name": KEYSPACE})
    assert out["arn"].endswith(f":/keyspace/{KEYSPACE}/") and keyspace.id == KEYSPACE
    table = Resource(aws_provider, "aws:keyspaces/table:Table", "table")
    out = table.create(inputs)
    assert out["arn"].endswith(f":/keyspace/{KEYSPACE}/table/{TABLE}") and table.id == f"{KEYSPACE}/{TABLE}"
    assert _columns(cassandra) == {c["name"]: c["type"] for c in camel["columns"]}

    grown = {**inputs, "schemaDefinition": {**camel, "columns": camel["columns"] + [{"name": "owner", "type": "text"}]}}
    assert not table.diff(grown).replaces
    table.update(grown)
    assert _columns(cassandra)["owner"] == "text"
    assert list(table.diff({**grown, "tableName": "renamed"}).replaces) == ["tableName"]

    table.delete()
    assert table.read().id == ""
    keyspace.delete()
    assert keyspace.read().id == ""
