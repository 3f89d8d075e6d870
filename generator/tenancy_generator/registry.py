"""Where tenant rows come from: a JSON file (local runs, tests), Amazon Keyspaces, and a TTL cache over either."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from .params import COLUMNS, TenantRow, UndecodableRow

_IDENTIFIER = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$")


class RegistryUnavailable(RuntimeError):
    """The registry could not be read; the message names the cause without credentials or internals."""

    reason = "registry_unavailable"


class RegistryUndecodable(RegistryUnavailable):
    """The registry was read but a row cannot be decoded; the read as a whole is refused."""

    reason = "undecodable_row"


def decode(rows: Any, row: Callable[[Any], TenantRow] = TenantRow.from_mapping) -> list[TenantRow]:
    """Every row decoded by `row`, or RegistryUndecodable naming the first that is not (a skipped row could be
    active)."""
    try:
        return [row(r) for r in rows]
    except UndecodableRow as exc:
        raise RegistryUndecodable(str(exc)) from None


class Registry(Protocol):
    def rows(self) -> list[TenantRow]: ...


class Snapshots(Registry, Protocol):
    """A registry whose rows are reused between reads, told when a snapshot cannot be answered with."""

    def refused(self, rows: list[TenantRow]) -> None: ...


class MemoryRegistry:
    """Rows from a JSON file (a list of row objects), re-read on every refresh as Keyspaces would be."""

    def __init__(self, path: Path):
        self._path = path

    def rows(self) -> list[TenantRow]:
        try:
            raw = json.loads(self._path.read_text())
        except (OSError, ValueError) as exc:
            raise RegistryUnavailable(f"registry file unreadable: {type(exc).__name__}") from None
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise RegistryUndecodable("registry file is not a list of row objects")
        return decode(raw)


class KeyspacesRegistry:
    """Reads the whole registry table in pages.

    The table is keyed by tenant id and holds one small row per tenant, so a paged full read is cheap and
    needs no ALLOW FILTERING (which Keyspaces bills as a scan anyway); `enabled` is filtered in the service.
    What one read costs at 10,000 rows is measured by bench/generator_cassandra.py: rows arrive as tuples
    (no dict per row), through a statement prepared once (pages then carry no column metadata), in pages of
    `fetch_size` rows (Keyspaces ends a page at 1 MB whatever the size asked).
    """

    def __init__(self, session: Any, keyspace: str, table: str, fetch_size: int = 5000):
        for what, name in (("keyspace", keyspace), ("table", table)):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"{what} {name!r} is not a Keyspaces identifier")
        from cassandra.query import tuple_factory

        session.row_factory = tuple_factory
        self._session = session
        self._query = f"SELECT {', '.join(COLUMNS)} FROM {keyspace}.{table}"
        self._fetch_size = fetch_size
        self._prepared: Any = None

    def rows(self) -> list[TenantRow]:
        from cassandra import ConsistencyLevel

        try:
            if self._prepared is None:
                prepared = self._session.prepare(self._query)
                # Keyspaces serves reads at LOCAL_ONE or LOCAL_QUORUM only; QUORUM makes a just-written row visible.
                prepared.consistency_level = ConsistencyLevel.LOCAL_QUORUM
                prepared.fetch_size = self._fetch_size
                self._prepared = prepared
            # Iterating the result set fetches the following pages as it goes; a page that fails fails the read.
            raw = list(self._session.execute(self._prepared.bind(())))
        except Exception as exc:  # the driver raises many unrelated types for one condition: unreadable
            raise RegistryUnavailable(f"registry read failed: {type(exc).__name__}") from exc
        return decode(raw, TenantRow.from_values)


def keyspaces_session(
    region: str,
    root_cert: Optional[str],
    username: Optional[str],
    password: Optional[str],
    endpoint: Optional[str] = None,
    port: int = 9142,
) -> Any:
    """A driver session to Amazon Keyspaces in `region` over TLS (port 9142), or to `endpoint`:`port`.

    Service-specific credentials when a username is given, otherwise SigV4 with the default AWS credential
    chain (IRSA web identity in the cluster).
    """
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster
    from cassandra.policies import ConstantReconnectionPolicy, DCAwareRoundRobinPolicy

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=root_cert)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if username:
        auth = PlainTextAuthProvider(username=username, password=password or "")
    else:
        import boto3
        from cassandra_sigv4.auth import SigV4AuthProvider

        auth = SigV4AuthProvider(boto3.Session(region_name=region))
    host = endpoint or f"cassandra.{region}.amazonaws.com"
    cluster = None
    try:
        # The constructor already resolves the contact point, so a DNS failure surfaces here.
        # The driver dials the resolved IP and would check the certificate against it; Keyspaces' certificate
        # names only the endpoint, so the name to verify is given explicitly (as the registry provider does).
        cluster = Cluster(
            [host],
            port=port,
            ssl_context=context,
            ssl_options={"server_hostname": host},
            auth_provider=auth,
            load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=region),
            # A node marked down is retried every second, for ever: the driver's default
            # (ExponentialReconnectionPolicy, 1 s doubling up to 10 min) kept every answer refused
            # for 20-30 s after the registry was back (tests/e2e/test_registry_cassandra.py).
            reconnection_policy=ConstantReconnectionPolicy(delay=1.0, max_attempts=None),
            protocol_version=4,
            connect_timeout=10,
        )
        return cluster.connect()
    except Exception as exc:
        if cluster is not None:
            cluster.shutdown()
        raise RegistryUnavailable(f"cannot connect to {host}:{port}: {type(exc).__name__}") from exc


class LazyKeyspacesRegistry:
    """Connects on first use and reconnects after a failed connect, so the pod starts (and reports not
    ready) while Keyspaces is unreachable instead of crash-looping."""

    def __init__(self, connect: Callable[[], Any], keyspace: str, table: str, fetch_size: int = 5000):
        self._connect, self._keyspace, self._table, self._fetch_size = connect, keyspace, table, fetch_size
        self._inner: Optional[KeyspacesRegistry] = None
        self._lock = threading.Lock()

    def rows(self) -> list[TenantRow]:
        with self._lock:
            if self._inner is None:
                self._inner = KeyspacesRegistry(self._connect(), self._keyspace, self._table, self._fetch_size)
        return self._inner.rows()


class CachedRegistry:
    """Serves rows from memory for `ttl` seconds, so Argo's polling (every replica, every requeue) does not
    turn into Keyspaces reads. One caller refreshes at a time; the others wait for its result. Failures are
    not cached and never serve stale rows: a tenant disabled in the registry must not keep being generated.
    Neither are rows the service refused to answer with (`refused`): the next caller reads again, so a fixed
    row is answered at once rather than after the TTL."""

    def __init__(
        self,
        inner: Registry,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        on_refresh: Optional[Callable[[int], None]] = None,
    ):
        self._inner, self._ttl, self._clock = inner, ttl, clock
        self._on_refresh = on_refresh
        self._rows: Optional[list[TenantRow]] = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def rows(self) -> list[TenantRow]:
        with self._lock:
            if self._rows is None or self._clock() >= self._expires:
                self._rows = None
                rows = self._inner.rows()
                self._rows, self._expires = rows, self._clock() + self._ttl
                if self._on_refresh is not None:
                    self._on_refresh(len(rows))
            return self._rows

    def refused(self, rows: list[TenantRow]) -> None:
        with self._lock:
            if rows is self._rows:
                self._rows = None
