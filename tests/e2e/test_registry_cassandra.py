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

from typing import Any, Iterator

import grpc
import httpx
import pytest

from components.naming import GENERATOR_EXPECTED_KEY
from components.registry_provider import COLUMNS, _target, row_values, upsert_cql
from tests.conftest import sample
from tests.e2e.cassandra import Cassandra, cassandra  # noqa: F401 - `cassandra` is the fixture
from tests.e2e.registry import (  # noqa: F401 - `table` and `plugin` are fixtures
    STACK, argocd_request, create_table_cql, plugin, pointed_at, running_generator, table, table_rows)


def test_table_ddl_follows_the_declaration():
    """The DDL builder itself, on a declaration with every schemaDefinition part the registry does not use."""
    table = {"keyspaceName": "ks", "tableName": "t", "schemaDefinition": {
        "columns": [{"name": "a", "type": "text"}, {"name": "b", "type": "int"}, {"name": "s", "type": "text"}],
        "partitionKeys": [{"name": "a"}], "clusteringKeys": [{"name": "b", "orderBy": "DESC"}],
        "staticColumns": [{"name": "s"}]}}
    assert create_table_cql(table) == ('CREATE TABLE "ks"."t" ("a" text, "b" int, "s" text STATIC, '
                                       'PRIMARY KEY (("a"), "b")) WITH CLUSTERING ORDER BY ("b" DESC)')


def records() -> dict[str, dict[str, Any]]:
    """The RegistryRecord inputs the dev stack registers, by URN, without the synth's masked `__provider`."""
    return {r["urn"]: {k: v for k, v in r["inputs"].items() if k != "__provider"}
            for r in sample(STACK).of_type("pulumi-python:dynamic:Resource")}


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
    untrusted = {k: v for k, v in props.items() if k != "ca_cert"}  # the system bundle does not know our CA
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


@pytest.fixture(scope="module")
def generator(cassandra, table, tmp_path_factory) -> Iterator[str]:
    """The generator process reading the registry table as its own read-only role; yields its base URL."""
    # The tenants the stack tells the generator every answer must hold, as its pod mounts them.
    (expected,) = [m for _, m in sample(STACK).manifests()
                   if m["kind"] == "ConfigMap" and GENERATOR_EXPECTED_KEY in m.get("data", {})]
    with running_generator(cassandra, table, tmp_path_factory.mktemp("generator"),
                           expected["data"][GENERATOR_EXPECTED_KEY], fetch_size=FETCH_SIZE) as running:
        yield running.base


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
