"""The Keyspaces registry provider against a fake CQL session: bound values only, idempotent, delete vs disable."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import NoHostAvailable

from components import registry_provider
from components.registry_provider import RegistryError, RegistryProvider, RegistryUnavailable
# The `pulumi-python` provider plugin process, as `pulumi up` starts it: no engine build needed.
from tests.e2e.registry import plugin  # noqa: F401 - a fixture

PROJECT = Path(__file__).resolve().parent.parent
HOSTILE = "x'); DROP TABLE tenant_configs; --"


def props(**overrides):
    base = {
        "region": "us-west-2", "keyspace": "tenant_ops", "table": "tenant_configs", "auth": "sigv4",
        "tenant_id": "calypr-research", "enabled": True, "lifecycle": "active", "namespace": "wf-calypr-research",
        "target_cluster": "https://kubernetes.default.svc",
        "repo_url": "https://github.com/calypr/research-workflows.git", "repo_path": "deploy",
        "labels": {"tier": "standard"}, "params": {"nextflowProfile": "k8s"}, "disable_on_delete": False,
    }
    return {**base, **overrides}


class FakePrepared:
    def __init__(self, cql):
        self.cql = cql
        self.consistency_level = None


class FakeKeyspaces:
    """A table that applies statements by their shape, never by reading values out of the CQL text."""

    _INSERT = re.compile(r'^INSERT INTO "(\w+)"\."(\w+)" \(([\w, ]+)\) VALUES \(([?, ]+)\)$')
    _DELETE = re.compile(r'^DELETE FROM "(\w+)"\."(\w+)" WHERE tenant_id = \?$')
    _DISABLE = re.compile(r'^UPDATE "(\w+)"\."(\w+)" SET enabled = \?, lifecycle = \? WHERE tenant_id = \?$')
    _SELECT = re.compile(r'^SELECT ([\w, ]+) FROM "(\w+)"\."(\w+)" WHERE tenant_id = \?$')

    def __init__(self):
        self.rows: dict[str, dict] = {}
        self.executed: list[tuple[str, list, object]] = []
        self.targets = []

    def prepare(self, cql):
        return FakePrepared(cql)

    def execute(self, prepared, values):
        cql = prepared.cql
        assert cql.count("?") == len(values), cql
        self.executed.append((cql, list(values), prepared.consistency_level))
        if match := self._INSERT.match(cql):
            self.rows[values[0]] = dict(zip([c.strip() for c in match.group(3).split(",")], values))
        elif self._DELETE.match(cql):
            self.rows.pop(values[0], None)
        elif self._DISABLE.match(cql):
            self.rows.setdefault(values[2], {"tenant_id": values[2]}).update(enabled=values[0], lifecycle=values[1])
        elif match := self._SELECT.match(cql):
            row = self.rows.get(values[0])
            # Rows as tuples in the selected order; an empty map reads back as null, as Cassandra returns it.
            return [tuple(None if row.get(c) == {} else row.get(c) for c in match.group(1).split(", "))] if row else []
        else:
            raise AssertionError(f"unexpected statement {cql!r}")
        return []

    def factory(self, target):
        @contextmanager
        def session():
            self.targets.append(target)
            yield self
        return session()


@pytest.fixture
def keyspaces():
    return FakeKeyspaces()


@pytest.fixture
def provider(keyspaces):
    return RegistryProvider(session_factory=keyspaces.factory)


def test_create_writes_the_row(provider, keyspaces):
    result = provider.create(props())
    assert result.id == "calypr-research"
    assert keyspaces.rows["calypr-research"] == {
        "tenant_id": "calypr-research", "enabled": True, "lifecycle": "active", "namespace": "wf-calypr-research",
        "target_cluster": "https://kubernetes.default.svc",
        "repo_url": "https://github.com/calypr/research-workflows.git", "repo_path": "deploy",
        "labels": {"tier": "standard"}, "params": {"nextflowProfile": "k8s"}}
    (target,) = keyspaces.targets
    assert target.host == "cassandra.us-west-2.amazonaws.com"


def test_every_statement_is_parameterised_at_local_quorum(provider, keyspaces):
    provider.create(props())
    provider.update("calypr-research", props(), props(enabled=False))
    provider.delete("calypr-research", props())
    provider.delete("calypr-research", props(disable_on_delete=True))
    assert len(keyspaces.executed) == 4
    for cql, values, consistency in keyspaces.executed:
        assert consistency == ConsistencyLevel.LOCAL_QUORUM
        for value in values:
            if isinstance(value, str):
                assert value not in cql, f"{value!r} was formatted into {cql!r}"


def test_upsert_is_idempotent(provider, keyspaces):
    provider.create(props())
    first = dict(keyspaces.rows)
    provider.create(props())
    provider.update("calypr-research", props(), props())
    assert keyspaces.rows == first
    assert len(keyspaces.rows) == 1


def test_update_changes_the_row(provider, keyspaces):
    provider.create(props())
    provider.update("calypr-research", props(), props(repo_path="argo", enabled=False))
    assert keyspaces.rows["calypr-research"]["repo_path"] == "argo"
    assert keyspaces.rows["calypr-research"]["enabled"] is False


def test_delete_removes_the_row_and_is_idempotent(provider, keyspaces):
    provider.create(props())
    provider.create(props(tenant_id="calypr-other"))
    provider.delete("calypr-research", props())
    provider.delete("calypr-research", props())
    assert set(keyspaces.rows) == {"calypr-other"}


def test_protected_delete_only_disables(provider, keyspaces):
    provider.create(props(disable_on_delete=True))
    provider.delete("calypr-research", props(disable_on_delete=True))
    row = keyspaces.rows["calypr-research"]
    assert row["enabled"] is False and row["lifecycle"] == "offboarded"
    assert row["repo_url"] == "https://github.com/calypr/research-workflows.git"
    assert not any(cql.startswith("DELETE") for cql, _, _ in keyspaces.executed)


def test_hostile_values_stay_data(provider, keyspaces):
    hostile = props(repo_path=HOSTILE, labels={"note": HOSTILE}, params={"q": "it's \"quoted\""})
    provider.create(hostile)
    row = keyspaces.rows["calypr-research"]
    assert row["repo_path"] == HOSTILE
    assert row["labels"] == {"note": HOSTILE}
    assert row["params"] == {"q": "it's \"quoted\""}
    assert all("DROP" not in cql for cql, _, _ in keyspaces.executed)


def test_identifiers_are_checked_not_trusted(provider, keyspaces):
    with pytest.raises(RegistryError, match="not a Keyspaces identifier"):
        provider.create(props(table='tenant_configs"; DROP TABLE x; --'))
    assert keyspaces.executed == []


def test_diff_replaces_only_on_row_identity(provider):
    assert provider.diff("id", props(), props()).changes is False
    changed = provider.diff("id", props(), props(repo_path="argo"))
    assert changed.changes is True and changed.replaces == []
    moved = provider.diff("id", props(), props(tenant_id="calypr-renamed", keyspace="other"))
    assert sorted(moved.replaces) == ["keyspace", "tenant_id"]


def test_read_returns_the_row_as_stored(provider, keyspaces):
    provider.create(props())
    keyspaces.rows["calypr-research"].update(enabled=False, labels={})  # edited by hand
    outs = provider.read("calypr-research", props()).outs
    assert outs["enabled"] is False and outs["labels"] == {} and outs["params"] == {"nextflowProfile": "k8s"}
    assert outs["region"] == "us-west-2"  # settings that are not columns are kept
    assert provider.diff("calypr-research", outs, props()).changes is True  # so the next `up` restores it
    (cql, values, consistency) = keyspaces.executed[-1]
    assert cql.startswith("SELECT ") and values == ["calypr-research"] and consistency == ConsistencyLevel.LOCAL_QUORUM


def test_read_of_a_removed_row_reports_it_gone(provider, keyspaces):
    assert provider.read("calypr-research", props()).id == ""


def test_unreachable_registry_gives_a_clear_error():
    def unreachable(target):
        raise NoHostAvailable("Unable to connect to any servers",
                              {"3.4.5.6:9142": ConnectionRefusedError(111, "Connection refused")})

    with pytest.raises(RegistryUnavailable) as raised:
        RegistryProvider(session_factory=unreachable).create(props())
    message = str(raised.value)
    assert "cassandra.us-west-2.amazonaws.com:9142" in message
    assert "tenant_ops.tenant_configs" in message
    assert "nothing was written" in message
    assert raised.value.__suppress_context__  # the driver's traceback is not chained onto the report


def test_real_driver_path_reports_unresolvable_endpoint(monkeypatch):
    # The shipped factory with an endpoint that cannot resolve: the user sees RegistryUnavailable, not a driver trace.
    monkeypatch.setattr(registry_provider, "endpoint", lambda region: f"cassandra.{region}.invalid")
    with pytest.raises(RegistryUnavailable, match=r"cassandra\.us-west-2\.invalid:9142"):
        RegistryProvider().create(props(auth="service-specific", username="svc", password="pw"))



def test_provider_survives_the_engine_round_trip(keyspaces):
    # The engine runs the provider from its dill pickle in another process; it must unpickle to a working one.
    import base64

    import dill
    from pulumi.dynamic.dynamic import serialize_provider

    restored = dill.loads(base64.b64decode(serialize_provider(RegistryProvider())))
    assert isinstance(restored, RegistryProvider)
    restored._session_factory = keyspaces.factory  # noqa: SLF001 - inject the fake after the round trip
    restored.create(props())
    assert "calypr-research" in keyspaces.rows


def test_password_not_in_target_repr():
    target = registry_provider.Target("us-west-2", "tenant_ops", "tenant_configs", "service-specific", "svc", "pw-123")
    assert "pw-123" not in repr(target)


# Columns of the table as first shipped: Keyspaces adds columns in place, any other change replaces (empties) it.
SHIPPED_COLUMNS = {("tenant_id", "text"), ("enabled", "boolean"), ("namespace", "text"), ("target_cluster", "text"),
                   ("repo_url", "text"), ("repo_path", "text"), ("labels", "map<text, text>"),
                   ("params", "map<text, text>")}


def test_schema_only_ever_adds_columns():
    assert SHIPPED_COLUMNS <= set(registry_provider.COLUMN_TYPES)


@pytest.mark.parametrize("lifecycle, generated, auto_sync", [
    ("active", True, True), ("suspended", True, False), ("offboarded", False, False)])
def test_generator_reads_what_tenancy_writes(provider, keyspaces, lifecycle, generated, auto_sync):
    """The row as the provider writes it, decoded by the generator the way it decodes a Keyspaces row."""
    import sys

    sys.path.insert(0, str(PROJECT / "generator"))
    from tenancy_generator.params import TenantRow

    provider.create(props(lifecycle=lifecycle, enabled=lifecycle == "active"))
    row = TenantRow.from_mapping(keyspaces.rows["calypr-research"])
    assert (row.generated, row.auto_sync) == (generated, auto_sync)
    provider.delete("calypr-research", props(disable_on_delete=True))
    assert TenantRow.from_mapping(keyspaces.rows["calypr-research"]).generated is False


def test_moving_the_rows_to_another_table_needs_confirmation(provider):
    old = props(disable_on_delete=True)
    assert provider.check({}, old).failures == []  # a new record
    assert provider.check(old, props(repo_path="argo")).failures == []  # an ordinary change
    for moved in (props(table="tenant_configs_v2"), props(keyspace="tenant_ops_v2")):
        (failure,) = provider.check(old, moved).failures
        assert failure.property == "table" and "tenant_ops.tenant_configs" in failure.reason
        assert "migrateFrom" in failure.reason
        assert provider.check(old, {**moved, "migrate_from": "tenant_ops.elsewhere"}).failures
        assert provider.check(old, {**moved, "migrate_from": "tenant_ops.tenant_configs"}).failures == []
    # The confirmation itself is not part of the row: setting or clearing it rewrites nothing.
    assert provider.diff("id", old, {**old, "migrate_from": "tenant_ops.tenant_configs"}).changes is False


def test_records_know_their_table_at_preview(dev):
    """The move check needs the keyspace and table as plain values, not the table's (unknown in preview) outputs."""
    (table,) = dev.of_type("aws:keyspaces/table:Table")
    for record in dev.of_type("pulumi-python:dynamic:Resource"):
        inputs = record["inputs"]
        assert (inputs["keyspace"], inputs["table"]) == (table["inputs"]["keyspaceName"], table["inputs"]["tableName"])
        assert inputs.get("migrate_from") is None


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_records_dial_keyspaces(stack):
    """No shipped stack sets `tenancy:registry.endpoint`: every record a stack registers dials the region's
    Keyspaces endpoint on 9142 and trusts the system CA bundle."""
    from tests.conftest import sample

    records = sample(stack).of_type("pulumi-python:dynamic:Resource")
    assert records
    for record in records:
        assert not {"endpoint", "port", "ca_cert"} & set(record["inputs"])
        target = registry_provider._target(record["inputs"])  # noqa: SLF001 - how the provider reads its props
        assert (target.host, target.port, target.ca_cert) == (
            f"cassandra.{record['inputs']['region']}.amazonaws.com", 9142, None)


def _one_line_failure(call) -> str:
    import grpc

    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.details()


@pytest.mark.parametrize("endpoint, why", [
    ("registry.invalid", "the host name 'registry.invalid' does not resolve"),
    ("127.0.0.1", "NoHostAvailable: ('Unable to connect to any servers'"),
])
def test_an_unreachable_registry_is_one_readable_line_from_the_plugin(plugin, endpoint, why):
    """What the engine prints for a failed create or update is the `details` of the plugin's gRPC error, which
    pulumi/dynamic/__main__.py (`_abort_with_traceback`) fills with `traceback.format_exc()`: it must be the
    provider's one-line report, naming where it dialled, why it failed and which setting says where, without
    traceback frames."""
    from tests.e2e.cassandra import free_port

    port = free_port()  # nothing listens there
    news = props(auth="service-specific", username="svc", password="pw", endpoint=endpoint, port=port)
    urn = "urn:pulumi:dev::tenancy::pulumi-python:dynamic:Resource::research-registry-record"
    for call in (lambda: plugin.create(urn, news), lambda: plugin.update(urn, "calypr-research", news, news)):
        details = _one_line_failure(call)
        assert "Traceback" not in details and 'File "' not in details
        assert len(details.strip().splitlines()) == 1, details
        assert details.startswith("components.registry_provider.RegistryUnavailable: tenant registry unreachable: "
                                  f"tenant_ops.tenant_configs at {endpoint}:{port}")
        assert why in details and "tenancy:registry.endpoint" in details and "nothing was written" in details
        assert "pw" not in details.split()
