"""The HTTP service: the plugin endpoint, health probes and Prometheus metrics."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from .params import (
    GENERATED,
    Answerable,
    BadRequest,
    Incomplete,
    LabelFilter,
    answerable,
    generate,
    json_depth_exceeds,
    named,
    parse_request,
)
from .registry import Registry, RegistryUnavailable, Snapshots

PLUGIN_PATH = "/api/v1/getparams.execute"
MAX_BODY_BYTES = 64 * 1024
# Argo sends a flat map of parameters; anything nested deeper is not a plugin request, and Python's parser
# would recurse on it (a RecursionError, i.e. a 500) long before the body cap stops it.
MAX_JSON_DEPTH = 32
# Every reason the service refuses to answer; the label set of generator_refusals_total is fixed.
REFUSAL_REASONS = (
    "registry_unavailable",
    "undecodable_row",
    "expected_unreadable",
    "duplicate_tenant",
    "missing_tenant",
    "empty",
)
log = logging.getLogger("tenancy_generator")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """Control characters (newlines included) as visible escapes: one log record stays one line, and
    nothing a caller or a registry row sends can forge a log line or drive a terminal."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


class EscapingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return escape_control(super().format(record))


@dataclass(frozen=True)
class Config:
    """Environment configuration (names as in the Deployment and the README)."""

    token_file: Path
    port: int = 4355
    host: str = "0.0.0.0"
    backend: str = "keyspaces"
    registry_file: Optional[Path] = None
    region: Optional[str] = None
    root_cert: Optional[str] = None
    # Another CQL endpoint than the region's Keyspaces one (tests against Cassandra); unset in the cluster.
    endpoint: Optional[str] = None
    endpoint_port: int = 9142
    username: Optional[str] = None
    password: Optional[str] = None
    keyspace: str = "tenant_ops"
    table: str = "tenant_configs"
    cache_ttl_seconds: float = 30.0
    fetch_size: int = 5000
    expected_tenants_file: Optional[Path] = None
    allow_empty: bool = False
    # A request head, and then its body, must arrive whole within these; an idle kept-alive connection is closed
    # after the first.
    header_timeout_seconds: float = 5.0
    body_timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Config":
        def need(key: str) -> str:
            if not env.get(key):
                raise SystemExit(f"tenancy-generator: {key} must be set")
            return env[key]

        backend = env.get("REGISTRY_BACKEND", "keyspaces")
        if backend not in ("keyspaces", "memory"):
            raise SystemExit("tenancy-generator: REGISTRY_BACKEND must be keyspaces or memory")
        return cls(
            token_file=Path(need("PLUGIN_TOKEN_FILE")),
            port=int(env.get("PORT", "4355")),
            host=env.get("HOST", "0.0.0.0"),
            backend=backend,
            registry_file=Path(need("REGISTRY_FILE")) if backend == "memory" else None,
            region=need("AWS_REGION") if backend == "keyspaces" else env.get("AWS_REGION"),
            root_cert=env.get("KEYSPACES_ROOT_CERT") or None,
            endpoint=env.get("KEYSPACES_ENDPOINT") or None,
            endpoint_port=int(env.get("KEYSPACES_PORT", "9142")),
            username=env.get("KEYSPACES_USERNAME") or None,
            password=env.get("KEYSPACES_PASSWORD") or None,
            keyspace=env.get("KEYSPACE", "tenant_ops"),
            table=env.get("TABLE", "tenant_configs"),
            cache_ttl_seconds=float(env.get("CACHE_TTL_SECONDS", "30")),
            fetch_size=int(env.get("FETCH_SIZE", "5000")),
            expected_tenants_file=Path(need("EXPECTED_TENANTS_FILE")),
            allow_empty=_flag(env.get("ALLOW_EMPTY", "false"), "ALLOW_EMPTY"),
            header_timeout_seconds=_seconds(env.get("HEADER_TIMEOUT_SECONDS", "5"), "HEADER_TIMEOUT_SECONDS"),
            body_timeout_seconds=_seconds(env.get("BODY_TIMEOUT_SECONDS", "5"), "BODY_TIMEOUT_SECONDS"),
        )


def _flag(value: str, key: str) -> bool:
    if value not in ("true", "false"):
        raise SystemExit(f"tenancy-generator: {key} must be true or false")
    return value == "true"


def _seconds(value: str, key: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 300:
        raise SystemExit(f"tenancy-generator: {key} must be a number of seconds between 0 and 300")
    return seconds


class TokenFile:
    """The shared token, re-read when the file changes so a rotated Secret takes effect without a restart."""

    def __init__(self, path: Path):
        self._path = path
        self._stamp: Optional[tuple[int, int, int]] = None
        self._token = b""

    def current(self) -> bytes:
        """The token; OSError or ValueError when it cannot be read or is empty (then nobody is let in)."""
        st = self._path.stat()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            token = self._path.read_bytes().strip()
            if not token:
                raise ValueError("token file is empty")
            self._token, self._stamp = token, stamp
        return self._token


class ExpectedTenants:
    """The registry keys tenancy published as generated (active or suspended), re-read when the file changes.

    A JSON object {tenant id: "active" | "suspended"}, from a ConfigMap tenancy renders beside the Deployment.
    It is what makes a new, wrong or truncated table detectable: the registry alone cannot tell "no rows" from
    "rows lost".
    """

    def __init__(self, path: Path):
        self._path = path
        self._stamp: Optional[tuple[int, int, int]] = None
        self._expected: Mapping[str, str] = {}

    def current(self) -> Mapping[str, str]:
        """Tenant id -> lifecycle, the same object until the file changes; OSError or ValueError when the file is
        missing or malformed (then every answer is refused)."""
        st = self._path.stat()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            expected = json.loads(self._path.read_bytes())
            if not isinstance(expected, dict) or not all(
                isinstance(k, str) and k and v in GENERATED for k, v in expected.items()
            ):
                raise ValueError("expected tenants file is not a JSON object of tenant id to active or suspended")
            self._expected, self._stamp = expected, stamp
        return self._expected


class Refused(Exception):
    """No answer can be given without risking Argo CD deleting a tenant's Application."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Metrics:
    def __init__(self) -> None:
        # A registry per app keeps two apps in one process (tests) from colliding on metric names.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "generator_requests_total",
            "HTTP requests by path and status code.",
            ["path", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "generator_request_duration_seconds",
            "HTTP request latency by path.",
            ["path"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.parameters = Counter(
            "generator_parameter_sets_returned_total",
            "Tenant parameter maps returned to Argo CD.",
            registry=self.registry,
        )
        self.registry_rows = Gauge(
            "generator_registry_rows", "Rows read from the registry at the last refresh.", registry=self.registry
        )
        self.backend_errors = Counter(
            "generator_backend_errors_total", "Failed registry reads.", registry=self.registry
        )
        self.unexpected_rows = Gauge(
            "generator_unexpected_rows",
            "Active or suspended registry rows of tenants tenancy does not expect (left out of every answer), "
            "at the last check.",
            registry=self.registry,
        )
        self.refusals = Counter(
            "generator_refusals_total",
            "Plugin requests refused (non-2xx) rather than answered without a tenant, by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in REFUSAL_REASONS:
            self.refusals.labels(reason)  # every series exists at 0, so an alert can compare against it


class _MetricsMiddleware:
    """Counts and times every request; unknown paths share one label so scanners cannot explode cardinality."""

    def __init__(self, app: Any, metrics: Metrics, known_paths: frozenset[str]):
        self.app, self.metrics, self.known = app, metrics, known_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in self.known else "other"
        status = {"code": 500}
        start = time.perf_counter()

        async def capture(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)
            self.metrics.requests.labels(path, str(status["code"])).inc()


class _Replies:
    """Encoded replies per filter for one answerable snapshot.

    Argo asks the same question on every poll. Building and encoding a thousand maps costs ~6 ms of CPU; a
    cached reply costs the server ~0.5 ms a request (bench/generator_load.py). The bytes are dropped as soon
    as the cache hands out a new snapshot of rows.
    """

    MAX_ENTRIES = 64  # distinct filters per snapshot; an ApplicationSet author picks them, a caller could vary them

    def __init__(self) -> None:
        self._snapshot: Optional[Answerable] = None
        self._encoded: dict[LabelFilter, tuple[bytes, int]] = {}
        self._lock = threading.Lock()

    def get(self, answer: Answerable, label_filter: LabelFilter) -> tuple[bytes, int]:
        with self._lock:
            if answer is not self._snapshot or len(self._encoded) >= self.MAX_ENTRIES:
                self._snapshot, self._encoded = answer, {}
            hit = self._encoded.get(label_filter)
        if hit is None:
            parameters = generate(answer, label_filter)
            # Maps built just above hold no cycle; skipping the check saves a tenth of the encoding.
            encoded = json.dumps({"output": {"parameters": parameters}}, separators=(",", ":"), check_circular=False)
            hit = (encoded.encode(), len(parameters))
            with self._lock:
                if answer is self._snapshot:
                    self._encoded[label_filter] = hit
        return hit


class _BodyOverdue(Exception):
    pass


class _BodyDeadline:
    """A request's body must arrive whole within `seconds` of its head, or the request is answered 408 and the
    connection closed. uvicorn has no body timeout: its only timer is the keep-alive one (below), so a client
    trickling a declared body would hold the request, and its connection, for as long as it likes."""

    def __init__(self, app: Any, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        state = {"body_done": False, "started": False}

        async def bounded_receive():
            if state["body_done"]:  # a later receive only waits for a disconnect; not the body's deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise _BodyOverdue from None
            state["body_done"] = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except _BodyOverdue:
            if state["started"]:
                raise
            await _error(408, f"request body not received within {self.seconds:g} s", {"Connection": "close"})(
                scope, receive, send
            )


def _error(status: int, message: str, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def read_capped(request: Request, cap: int) -> Optional[bytes]:
    """The body, or None once it exceeds `cap`: a declared length over the cap is refused unread, and a
    streamed body is never held beyond the cap (the chunk that would cross it is dropped, not appended)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        return None
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > cap:
            return None
        body += chunk
    return bytes(body)


def create_app(
    registry: Snapshots,
    token: TokenFile,
    expected: ExpectedTenants,
    allow_empty: bool = False,
    metrics: Optional[Metrics] = None,
    body_timeout: float = Config.body_timeout_seconds,
) -> FastAPI:
    """The service around `registry` (already cached by the caller); `token` guards the plugin endpoint, and
    `expected` lists the tenants every answer must contain and the only ones it may contain."""
    metrics = metrics or Metrics()
    replies = _Replies()
    # The last (rows, expected, answerable) found complete: the cache hands out the same objects until it
    # refreshes, so the check runs once per snapshot rather than once per request. References, not ids: holding
    # them means a new snapshot can never be mistaken for a checked one.
    checked: list[tuple[object, object, Optional[Answerable]]] = [(None, None, None)]
    app = FastAPI(title="tenancy ApplicationSet plugin generator", docs_url=None, redoc_url=None, openapi_url=None)
    # Starlette answers `/path/` with a redirect to `/path` built from the request's Host header: a caller
    # could make the service point Argo (or a browser) anywhere. Unknown paths are plain 404s instead.
    app.router.redirect_slashes = False

    def read_rows() -> list:
        try:
            return registry.rows()
        except RegistryUnavailable:
            metrics.backend_errors.inc()
            raise
        except Exception as exc:
            metrics.backend_errors.inc()
            log.exception("registry read failed")
            raise RegistryUnavailable(f"registry read failed: {type(exc).__name__}") from exc

    def complete_rows() -> tuple[list, Answerable]:
        """The rows read and what they allow to be answered; Refused whenever an answer could lack a tenant that
        must be there."""
        try:
            rows = read_rows()
        except RegistryUnavailable as exc:
            raise Refused(exc.reason, f"tenant registry unavailable ({exc})") from None
        try:
            wanted = expected.current()
        except (OSError, ValueError) as exc:
            raise Refused("expected_unreadable", f"expected tenants unreadable ({type(exc).__name__})") from None
        last_rows, last_wanted, answer = checked[0]
        if rows is not last_rows or wanted is not last_wanted or answer is None:
            try:
                answer = answerable(rows, wanted, allow_empty)
            except Incomplete as exc:
                # A refused snapshot is not kept for the cache's lifetime: the next request reads the registry
                # again, so answers resume as soon as the row is fixed.
                registry.refused(rows)
                raise Refused(exc.reason, str(exc)) from None
            checked[0] = (rows, wanted, answer)
            metrics.unexpected_rows.set(len(answer.unexpected))
            if answer.unexpected:
                log.warning(
                    "left out %d registry row(s) no tenant expects: %s",
                    len(answer.unexpected),
                    named(answer.unexpected),
                )
        return rows, answer

    def unauthorized(request: Request) -> Optional[JSONResponse]:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _error(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        try:
            current = token.current()
        except (OSError, ValueError):
            log.error("plugin token file unreadable or empty; refusing every request")
            return _error(503, "service token not configured")
        if not hmac.compare_digest(presented.strip().encode(), current):
            return _error(403, "invalid token")
        return None

    @app.post(PLUGIN_PATH)
    async def getparams(request: Request) -> Response:
        refused = unauthorized(request)
        if refused is not None:
            return refused
        raw = await read_capped(request, MAX_BODY_BYTES)
        if raw is None:
            return _error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        if json_depth_exceeds(raw, MAX_JSON_DEPTH):
            return _error(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            appset, label_filter = parse_request(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, str(exc) if isinstance(exc, BadRequest) else "request body is not valid JSON")
        try:
            _, answer = await run_in_threadpool(complete_rows)
        except Refused as exc:
            # Argo CD treats any non-2xx answer as "change nothing, retry later".
            metrics.refusals.labels(exc.reason).inc()
            log.warning("refused applicationset %s (%s): %s", appset, exc.reason, exc)
            return _error(503, str(exc))
        encoded, count = replies.get(answer, label_filter)
        metrics.parameters.inc(count)
        return Response(encoded, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        # The same checks as the plugin endpoint, through the cache: not ready exactly when it would refuse.
        try:
            rows, _ = await run_in_threadpool(complete_rows)
        except Refused as exc:
            return _error(503, str(exc))
        return JSONResponse({"status": "ready", "rows": len(rows)})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return _error(500, "internal error")

    # Inside the metrics middleware, so a 408 is counted as one.
    app.add_middleware(_BodyDeadline, seconds=body_timeout)
    app.add_middleware(
        _MetricsMiddleware, metrics=metrics, known_paths=frozenset({PLUGIN_PATH, "/healthz", "/readyz", "/metrics"})
    )
    app.state.metrics = metrics
    return app


def build(config: Config, connect: Optional[Callable[[], Any]] = None) -> FastAPI:
    """The app as configured by the environment; `connect` replaces the Keyspaces connection (tests)."""
    from .registry import CachedRegistry, LazyKeyspacesRegistry, MemoryRegistry, keyspaces_session

    metrics = Metrics()
    if config.backend == "memory":
        inner: Registry = MemoryRegistry(config.registry_file)
    else:
        inner = LazyKeyspacesRegistry(
            connect
            or (
                lambda: keyspaces_session(
                    config.region,
                    config.root_cert,
                    config.username,
                    config.password,
                    config.endpoint,
                    config.endpoint_port,
                )
            ),
            config.keyspace,
            config.table,
            config.fetch_size,
        )
    if config.expected_tenants_file is None:
        raise ValueError("expected_tenants_file is required: without it an emptied table could not be told apart")
    cached = CachedRegistry(inner, config.cache_ttl_seconds, on_refresh=metrics.registry_rows.set)
    return create_app(
        cached,
        TokenFile(config.token_file),
        ExpectedTenants(config.expected_tenants_file),
        config.allow_empty,
        metrics,
        config.body_timeout_seconds,
    )


def _head_deadline_protocol() -> type:
    """uvicorn's h11 protocol with a deadline on every request head.

    uvicorn's own timer is only `timeout_keep_alive`, armed once a response is complete
    (`on_response_complete`) and cancelled by any byte received (`data_received`), in
    uvicorn/protocols/http/h11_impl.py (0.29 to 0.55); `Config` has no header-read timeout. So a connection that
    sends nothing, or trickles a head one byte at a time, is held forever. Here a head must be complete within
    `header_timeout` of the connection opening or of the previous response, whatever arrives meanwhile; the
    head's size stays bounded by h11's `max_incomplete_event_size` (`h11_max_incomplete_event_size`).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadDeadlineProtocol(H11Protocol):
        def __init__(self, *args: Any, header_timeout: float, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._header_timeout = header_timeout
            self._head_timer: Optional[asyncio.TimerHandle] = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._await_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._await_head()

        def connection_lost(self, exc: Optional[Exception]) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(self._header_timeout, self._head_overdue, self.cycle)

        def _head_overdue(self, cycle: Any) -> None:
            # No new request since the timer was armed: the cycle is the same one, absent or already answered.
            # A request being answered (a slow registry read) is not the client's fault and is left alone.
            if self.cycle is cycle and (cycle is None or cycle.response_complete) and not self.transport.is_closing():
                self.transport.close()

    return HeadDeadlineProtocol


def main() -> None:
    import uvicorn

    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), handlers=[handler])
    config = Config.from_env(os.environ)
    try:
        TokenFile(config.token_file).current()  # fail fast at start rather than refuse every request later
    except (OSError, ValueError) as exc:
        raise SystemExit(f"tenancy-generator: PLUGIN_TOKEN_FILE {config.token_file}: {exc}") from None
    protocol = functools.partial(_head_deadline_protocol(), header_timeout=config.header_timeout_seconds)
    # An idle kept-alive connection is closed by the head deadline too; uvicorn's own keep-alive timer is set to
    # the same value so neither outlives the other. Heads are capped at h11's default 16 KiB, stated here.
    uvicorn.run(
        build(config),
        host=config.host,
        port=config.port,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_config=None,
        http=protocol,
        timeout_keep_alive=max(1, round(config.header_timeout_seconds)),
        h11_max_incomplete_event_size=16 * 1024,
    )
