"""Dynamic provider that keeps one tenant's row in the Amazon Keyspaces registry table.

No Pulumi resource writes a Keyspaces row, so this provider speaks CQL itself: TLS to
`cassandra.<region>.amazonaws.com:9142`, SigV4 or service-specific credentials, LOCAL_QUORUM (the only write
consistency Keyspaces accepts), prepared statements only, so no catalogue value is ever parsed as CQL.
Create and update are the same upsert (a CQL INSERT overwrites), so retries and re-runs are harmless. Read
(`pulumi refresh`) selects the row by key, so a row edited or removed by hand shows as drift.
The session factory is injectable: tests pass a fake session, the engine uses `connect`.
Optional props `endpoint`, `port` and `ca_cert` (PEM) point the same code at another Cassandra-compatible
endpoint: a stack sets them with `tenancy:registry.endpoint`; without them it dials Keyspaces and trusts the system
CA bundle.

Errors reach the user as one line. The `pulumi-python` plugin answers any exception from a provider method with
`context.abort(UNKNOWN, traceback.format_exc())` (pulumi/dynamic/__main__.py, `_abort_with_traceback`), and the
engine prints that text; so each failure is raised as a RegistryError whose message is the whole story, and
`configure` (called once when the plugin unpickles the provider, `get_provider`) sets `sys.tracebacklimit = 0`,
with which `traceback.format_exc` prints the exception's type and message without any frame.
"""

from __future__ import annotations

import re
import ssl
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Mapping, Optional

import pulumi.dynamic as dynamic
from cassandra import (AuthenticationFailed, ConsistencyLevel, DriverException, OperationTimedOut,
                       UnresolvableContactPoints)
from cassandra.cluster import NoHostAvailable

PORT = 9142
CONNECT_TIMEOUT_SECONDS = 10
# The registry table's columns in order, with their CQL types; `tenant_id` is the partition key.
# `lifecycle` came last and must stay last: Keyspaces (and the AWS provider) add columns in place but replace
# the table, i.e. empty it, for any other schema change. `enabled` (lifecycle == active) stays for readers
# that predate `lifecycle`.
COLUMN_TYPES = (("tenant_id", "text"), ("enabled", "boolean"), ("namespace", "text"), ("target_cluster", "text"),
                ("repo_url", "text"), ("repo_path", "text"), ("labels", "map<text, text>"),
                ("params", "map<text, text>"), ("lifecycle", "text"))
COLUMNS = tuple(name for name, _ in COLUMN_TYPES)
PARTITION_KEY = "tenant_id"
# Changing any of these moves the row to another table or key, so the old row must be removed.
_REPLACING = ("tenant_id", "region", "keyspace", "table", "endpoint", "port")
# Inputs that steer the provider but are not part of the row.
_NOT_ROW = {"__provider", "migrate_from"}
_IDENTIFIER = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$")


class RegistryError(Exception):
    """A registry write failed; the message says what and where, without a driver traceback to decode."""


class RegistryUnavailable(RegistryError):
    """Keyspaces could not be reached or refused the credentials."""


def endpoint(region: str) -> str:
    return f"cassandra.{region}.amazonaws.com"


@dataclass(frozen=True)
class Target:
    region: str
    keyspace: str
    table: str
    auth: str
    username: Optional[str] = None
    # Kept out of repr so a logged or printed Target never shows it.
    password: Optional[str] = field(default=None, repr=False)
    # Another CQL endpoint than the region's Keyspaces one, and the PEM CA(s) to trust instead of the system bundle.
    endpoint: Optional[str] = None
    port: int = PORT
    ca_cert: Optional[str] = None

    @property
    def host(self) -> str:
        return self.endpoint or endpoint(self.region)

    def qualified_table(self) -> str:
        # Identifiers cannot be bound parameters, so they are checked here rather than trusted from props.
        for identifier in (self.keyspace, self.table):
            if not _IDENTIFIER.match(identifier):
                raise RegistryError(f"{identifier!r} is not a Keyspaces identifier")
        return f'"{self.keyspace}"."{self.table}"'


def upsert_cql(target: Target) -> str:
    return f"INSERT INTO {target.qualified_table()} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"


def delete_cql(target: Target) -> str:
    return f"DELETE FROM {target.qualified_table()} WHERE {PARTITION_KEY} = ?"


def select_cql(target: Target) -> str:
    return f"SELECT {', '.join(COLUMNS)} FROM {target.qualified_table()} WHERE {PARTITION_KEY} = ?"


def disable_cql(target: Target) -> str:
    """Marks a row offboarded: the generator stops generating its Application (whose resources Argo keeps)."""
    return f"UPDATE {target.qualified_table()} SET enabled = ?, lifecycle = ? WHERE {PARTITION_KEY} = ?"


SessionFactory = Callable[[Target], ContextManager[Any]]


@contextmanager
def connect(target: Target) -> Iterator[Any]:
    """A driver session to Keyspaces in `target.region`, closed on exit."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    context = ssl.create_default_context(cadata=target.ca_cert)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if target.auth == "sigv4":
        import boto3
        from cassandra_sigv4.auth import SigV4AuthProvider

        auth = SigV4AuthProvider(boto3.Session(region_name=target.region))
    else:
        auth = PlainTextAuthProvider(username=target.username, password=target.password)
    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=target.region),
                               consistency_level=ConsistencyLevel.LOCAL_QUORUM)
    cluster = Cluster(
        [target.host], port=target.port, ssl_context=context, auth_provider=auth,
        # Peers are advertised by IP; every Keyspaces node presents the regional endpoint's certificate.
        ssl_options={"server_hostname": target.host},
        execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=CONNECT_TIMEOUT_SECONDS,
        protocol_version=4)
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def _target(props: Mapping[str, Any]) -> Target:
    return Target(region=props["region"], keyspace=props["keyspace"], table=props["table"], auth=props["auth"],
                  username=props.get("username"), password=props.get("password"), endpoint=props.get("endpoint"),
                  port=int(props.get("port") or PORT), ca_cert=props.get("ca_cert"))


# Where the dialled endpoint comes from, for a report that says what to change.
_WHICH_ENDPOINT = ("tenancy:registry.endpoint (unset: Amazon Keyspaces in tenancy:registry.region, default "
                   "aws:region)")


def _one_line(exc: BaseException) -> str:
    """The driver's error as `Type: message` on one line (its messages embed reprs of per-host errors)."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def row_values(props: Mapping[str, Any]) -> list[Any]:
    return [props["tenant_id"], bool(props["enabled"]), props["namespace"], props["target_cluster"],
            props["repo_url"], props["repo_path"], dict(props.get("labels") or {}), dict(props.get("params") or {}),
            props["lifecycle"]]


class RegistryProvider(dynamic.ResourceProvider):
    """Upserts a tenant's row; on delete removes it, or only disables it when `disable_on_delete` is set."""

    def __init__(self, session_factory: Optional[SessionFactory] = None):
        self._session_factory = session_factory

    def _execute(self, target: Target, statements: list[tuple[str, list[Any]]], reading: bool = False) -> list[Any]:
        """Runs `statements` in order; the rows the last one returned."""
        factory = self._session_factory or connect
        where = f"{target.keyspace}.{target.table} at {target.host}:{target.port}"
        rows: list[Any] = []
        try:
            with factory(target) as session:
                for cql, values in statements:
                    prepared = session.prepare(cql)
                    prepared.consistency_level = ConsistencyLevel.LOCAL_QUORUM
                    rows = list(session.execute(prepared, values) or ())
        except UnresolvableContactPoints:
            raise RegistryUnavailable(
                f"tenant registry unreachable: {where}: the host name {target.host!r} does not resolve. Check "
                f"{_WHICH_ENDPOINT}; nothing was {'read' if reading else 'written'}.") from None
        except (NoHostAvailable, OperationTimedOut, AuthenticationFailed, OSError) as exc:
            raise RegistryUnavailable(
                f"tenant registry unreachable: {where} ({_one_line(exc)}). Check network access to port "
                f"{target.port}, the {target.auth} credentials and {_WHICH_ENDPOINT}; nothing was "
                f"{'read' if reading else 'written'}.") from None
        except DriverException as exc:
            raise RegistryError(f"tenant registry {'read from' if reading else 'write to'} {where} failed: "
                                f"{_one_line(exc)}") from None
        return rows

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        # The plugin process serves only this provider: its error reports are our one-line messages (module doc).
        sys.tracebacklimit = 0

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        """Refuses to move a row to another keyspace or table unless `migrate_from` names where it lives now.

        A new table starts empty; the generator refuses to answer until it holds every expected tenant, and
        Argo CD keeps every Application meanwhile, but a move is still a decision, not a side effect of a typo.
        """
        if not olds or not news.get("keyspace") or not news.get("table"):
            return dynamic.CheckResult(news, [])
        old, new = f"{olds.get('keyspace')}.{olds.get('table')}", f"{news['keyspace']}.{news['table']}"
        if old != new and news.get("migrate_from") != old:
            return dynamic.CheckResult(news, [dynamic.CheckFailure(
                "table", f"the tenant registry would move from {old} to {new}, a table that starts empty; set "
                         f"tenancy:registry.migrateFrom: {old} to confirm (see docs/argocd.md)")])
        return dynamic.CheckResult(news, [])

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        target = _target(props)
        self._execute(target, [(upsert_cql(target), row_values(props))])
        return dynamic.CreateResult(id_=props["tenant_id"], outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        keys = (set(olds) | set(news)) - _NOT_ROW
        changed = sorted(k for k in keys if olds.get(k) != news.get(k))
        return dynamic.DiffResult(changes=bool(changed), replaces=[k for k in changed if k in _REPLACING],
                                  delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        target = _target(news)
        self._execute(target, [(upsert_cql(target), row_values(news))])
        return dynamic.UpdateResult(outs=news)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        """`pulumi refresh`: the row as the table holds it, so a row edited or removed by hand shows as drift
        and the next `pulumi up` writes it back."""
        target = _target(props)
        rows = self._execute(target, [(select_cql(target), [id_])], reading=True)
        if not rows:
            return dynamic.ReadResult(id_="", outs={})  # an empty id tells the engine the row is gone
        stored = dict(zip(COLUMNS, rows[0]))
        for column, cql_type in COLUMN_TYPES:
            if cql_type.startswith("map<"):  # Cassandra returns null for an empty map
                stored[column] = dict(stored[column] or {})
        return dynamic.ReadResult(id_=id_, outs={**props, **stored})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        target = _target(props)
        if props.get("disable_on_delete"):
            self._execute(target, [(disable_cql(target), [False, "offboarded", props["tenant_id"]])])
        else:
            self._execute(target, [(delete_cql(target), [props["tenant_id"]])])

