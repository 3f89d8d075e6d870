"""The ApplicationSet plugin generator, run for real: uvicorn on loopback, driven over HTTP.

The in-memory backend runs in a separate server process (as the image runs); the Keyspaces backend runs in a
uvicorn server thread around a fake driver session, since no Keyspaces endpoint is reachable from tests.

What Argo CD does with an answer is read from argo-cd v3.5.7: `applicationset/services/internal/http/client.go`
(`CheckResponse`: any status outside 2xx is an error), `applicationset/controllers/applicationset_controller.go`
(`Reconcile`: a generator error returns before `createOrUpdateInCluster`/`deleteInCluster`, so nothing changes;
a successful answer deletes every current Application it lacks). Hence every registry fault below must be a
non-2xx answer, never a 200 that is missing a tenant.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

PROJECT = Path(__file__).resolve().parent.parent
GENERATOR = PROJECT / "generator"
sys.path.insert(0, str(GENERATOR))

from tenancy_generator import app as service  # noqa: E402

from tests.processes import stop  # noqa: E402
from tenancy_generator.params import COLUMNS, TenantRow  # noqa: E402
from tenancy_generator.registry import CachedRegistry, MemoryRegistry, RegistryUnavailable  # noqa: E402

TOKEN = "s3cr3t-plugin-token-0123456789"
PLUGIN = "/api/v1/getparams.execute"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = [
    {"tenant_id": "calypr-research", "enabled": True, "namespace": "wf-calypr-research",
     "target_cluster": "https://kubernetes.default.svc", "repo_url": "https://github.com/calypr/research.git",
     "repo_path": "deploy", "labels": {"tier": "standard", "data-class": "internal"},
     "params": {"nextflowProfile": "k8s"}},
    {"tenant_id": "calypr-compliance", "enabled": True, "namespace": "wf-calypr-compliance",
     "target_cluster": "https://kubernetes.default.svc", "repo_url": "https://github.com/calypr/compliance.git",
     "repo_path": "apps/prod", "labels": {"tier": "regulated"}, "params": {}},
    # A row that tries to overwrite fixed keys through params must not redirect its Application.
    {"tenant_id": "calypr-scratch", "enabled": True, "namespace": "wf-calypr-scratch",
     "target_cluster": "https://kubernetes.default.svc", "repo_url": "https://github.com/calypr/scratch.git",
     "repo_path": ".", "labels": None, "params": {"namespace": "kube-system", "team": "sandbox"}},
    {"tenant_id": "calypr-retired", "enabled": False, "namespace": "wf-calypr-retired",
     "target_cluster": "https://kubernetes.default.svc", "repo_url": "https://github.com/calypr/retired.git",
     "repo_path": "deploy", "labels": {"tier": "standard"}, "params": {}},
    {"tenant_id": "calypr-unset", "enabled": None, "namespace": "wf-calypr-unset",
     "target_cluster": "https://kubernetes.default.svc", "repo_url": "https://github.com/calypr/unset.git",
     "repo_path": "deploy", "labels": {"tier": "standard"}, "params": {}},
    # Rows tenancy writes now carry the lifecycle; a suspended tenant keeps its Application without auto-sync.
    {"tenant_id": "calypr-paused", "enabled": False, "lifecycle": "suspended", "namespace": "wf-calypr-paused",
     "target_cluster": "https://kubernetes.default.svc", "repo_url": "https://github.com/calypr/paused.git",
     "repo_path": "deploy", "labels": {"tier": "standard"}, "params": {}},
    {"tenant_id": "calypr-gone", "enabled": False, "lifecycle": "offboarded", "namespace": "wf-calypr-gone",
     "target_cluster": "https://kubernetes.default.svc", "repo_url": "https://github.com/calypr/gone.git",
     "repo_path": "deploy", "labels": {"tier": "standard"}, "params": {}},
]
ENABLED = ["calypr-compliance", "calypr-paused", "calypr-research", "calypr-scratch"]


def expected_of(tenants) -> dict[str, str]:
    """The expected-tenants document tenancy publishes: tenant id -> lifecycle."""
    return {t: "suspended" if t == "calypr-paused" else "active" for t in tenants}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen | None = None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{base} not healthy within {timeout}s")


def body(**parameters) -> dict:
    return {"applicationSetName": "tenancy-tenants", "input": {"parameters": parameters}}


@pytest.fixture(scope="module")
def token_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text(TOKEN + "\n")  # Secrets mounted from files often end in a newline
    return path


@pytest.fixture(scope="module")
def expected_file(tmp_path_factory) -> Path:
    """What tenancy publishes: every tenant whose Application must exist (active or suspended)."""
    path = tmp_path_factory.mktemp("expected") / "expected-tenants.json"
    path.write_text(json.dumps(expected_of(ENABLED)))
    return path


class Server:
    """A real generator process on loopback; `log` is everything it wrote to stderr once stopped."""

    def __init__(self, base: str, proc: subprocess.Popen, registry_file: Path, expected_file: Path):
        self.base, self.proc, self.registry_file, self.expected_file = base, proc, registry_file, expected_file
        self.log = ""


@contextmanager
def server_process(tmp_path: Path, token_file: Path, rows, expected, ttl: str = "30", **env_extra):
    registry_file, expected_file = tmp_path / "rows.json", tmp_path / "expected-tenants.json"
    registry_file.write_text(json.dumps(rows))
    expected_file.write_text(json.dumps(expected_of(expected)))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(GENERATOR), "REGISTRY_BACKEND": "memory",
           "REGISTRY_FILE": str(registry_file), "PLUGIN_TOKEN_FILE": str(token_file),
           "EXPECTED_TENANTS_FILE": str(expected_file),
           "HOST": "127.0.0.1", "PORT": str(port), "CACHE_TTL_SECONDS": ttl, **env_extra}
    proc = subprocess.Popen([sys.executable, "-m", "tenancy_generator"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Server(f"http://127.0.0.1:{port}", proc, registry_file, expected_file)
    try:
        wait_healthy(server.base, proc)
        yield server
    finally:
        stop(proc)
        server.log = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory, token_file):
    """A real server process with the in-memory backend; yields its base URL."""
    with server_process(tmp_path_factory.mktemp("live"), token_file, ROWS, ENABLED) as server:
        yield server.base


def post(base: str, payload, headers=AUTH, raw: bytes | None = None) -> httpx.Response:
    if raw is not None:
        return httpx.post(base + PLUGIN, content=raw, headers={**headers, "Content-Type": "application/json"},
                          timeout=5)
    return httpx.post(base + PLUGIN, json=payload, headers=headers, timeout=5)


# --- contract -------------------------------------------------------------------------------------------------

def test_reply_has_one_parameter_map_per_enabled_tenant(live):
    reply = post(live, body())
    assert reply.status_code == 200
    parameters = reply.json()["output"]["parameters"]
    assert [p["tenantId"] for p in parameters] == ENABLED
    research = next(p for p in parameters if p["tenantId"] == "calypr-research")
    assert research == {
        "tenantId": "calypr-research", "namespace": "wf-calypr-research",
        "cluster": "https://kubernetes.default.svc", "repoURL": "https://github.com/calypr/research.git",
        "path": "deploy", "labels": {"tier": "standard", "data-class": "internal"},
        "params": {"nextflowProfile": "k8s"}, "nextflowProfile": "k8s", "autoSync": True,
    }


def test_suspended_tenant_stays_without_auto_sync_and_offboarded_is_left_out(live):
    parameters = {p["tenantId"]: p for p in post(live, body()).json()["output"]["parameters"]}
    assert parameters["calypr-paused"]["autoSync"] is False
    assert parameters["calypr-research"]["autoSync"] is True
    assert "calypr-gone" not in parameters and "calypr-retired" not in parameters


def test_params_are_flattened_but_never_replace_fixed_keys(live):
    scratch = next(p for p in post(live, body()).json()["output"]["parameters"] if p["tenantId"] == "calypr-scratch")
    assert scratch["namespace"] == "wf-calypr-scratch"
    assert scratch["team"] == "sandbox"
    assert scratch["params"] == {"namespace": "kube-system", "team": "sandbox"}
    assert scratch["labels"] == {}


def test_input_without_parameters_is_accepted(live):
    for payload in ({"applicationSetName": "a"}, {"applicationSetName": "a", "input": {}},
                    {"applicationSetName": "a", "input": {"parameters": None}}):
        assert [p["tenantId"] for p in post(live, payload).json()["output"]["parameters"]] == ENABLED


# --- filtering ------------------------------------------------------------------------------------------------

def test_filter_by_label_key_and_value(live):
    reply = post(live, body(filterLabelKey="tier", filterLabelValue="standard"))
    # calypr-retired, calypr-unset and calypr-gone carry tier=standard too, but are not generated.
    assert [p["tenantId"] for p in reply.json()["output"]["parameters"]] == ["calypr-paused", "calypr-research"]


def test_filter_by_label_key_alone(live):
    reply = post(live, body(filterLabelKey="tier"))
    assert [p["tenantId"] for p in reply.json()["output"]["parameters"]] == [
        "calypr-compliance", "calypr-paused", "calypr-research"]


def test_filter_matching_nothing_gives_an_empty_list(live):
    assert post(live, body(filterLabelKey="tier", filterLabelValue="gold")).json() == {"output": {"parameters": []}}


# --- auth -----------------------------------------------------------------------------------------------------

def test_missing_token_is_401(live):
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        reply = post(live, body(), headers=headers)
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == "Bearer"
        assert "output" not in reply.json()


def test_wrong_token_is_403(live):
    for wrong in ("nope", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        reply = post(live, body(), headers={"Authorization": f"Bearer {wrong}"})
        assert reply.status_code == 403
        assert reply.json() == {"error": "invalid token"}


def test_auth_is_checked_before_the_body(live):
    assert post(live, None, headers={}, raw=b"{not json").status_code == 401
    assert post(live, None, headers={"Authorization": "Bearer nope"}, raw=b"{not json").status_code == 403


# --- malformed bodies -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"", b"{not json", b"[]", b'"text"', b"\xff\xfe", b'{"input": {}}', b'{"applicationSetName": 3}',
    b'{"applicationSetName": "a", "input": []}',
    b'{"applicationSetName": "a", "input": {"parameters": [1]}}',
    b'{"applicationSetName": "a", "input": {"parameters": {"filterLabelKey": 7}}}',
    b'{"applicationSetName": "a", "input": {"parameters": {"filterLabelValue": "x"}}}',
])
def test_malformed_body_is_400_with_a_json_error(live, raw):
    reply = post(live, None, raw=raw)
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert error and "Traceback" not in error and "File \"" not in error


def test_oversized_body_is_refused(live):
    reply = post(live, None, raw=b'{"applicationSetName": "' + b"a" * 70_000 + b'"}')
    assert reply.status_code == 413


# --- probes and metrics ---------------------------------------------------------------------------------------

def test_probes_and_metrics(live):
    assert httpx.get(live + "/healthz").json() == {"status": "ok"}
    assert httpx.get(live + "/readyz").json() == {"status": "ready", "rows": len(ROWS)}
    post(live, body())
    text = httpx.get(live + "/metrics").text
    assert f'generator_requests_total{{path="{PLUGIN}",status="200"}}' in text
    assert "generator_request_duration_seconds_bucket" in text
    assert f"generator_registry_rows {len(ROWS)}.0" in text
    returned = next(line for line in text.splitlines() if line.startswith("generator_parameter_sets_returned_total"))
    assert float(returned.split()[-1]) >= 3
    # Unknown paths share a label: a scanner cannot mint a series per URL.
    httpx.get(live + "/wp-admin/x")
    assert "/wp-admin" not in httpx.get(live + "/metrics").text


def test_server_without_a_token_file_refuses_to_start(tmp_path):
    registry_file = tmp_path / "rows.json"
    registry_file.write_text("[]")
    env = {**os.environ, "PYTHONPATH": str(GENERATOR), "REGISTRY_BACKEND": "memory",
           "REGISTRY_FILE": str(registry_file), "PLUGIN_TOKEN_FILE": str(tmp_path / "absent"),
           "EXPECTED_TENANTS_FILE": str(tmp_path / "expected.json"),
           "HOST": "127.0.0.1", "PORT": str(free_port())}
    done = subprocess.run([sys.executable, "-m", "tenancy_generator"], env=env, capture_output=True, timeout=30)
    assert done.returncode != 0
    assert b"PLUGIN_TOKEN_FILE" in done.stderr and b"Traceback" not in done.stderr


# --- Keyspaces backend over a fake driver session ---------------------------------------------------------------

class FakePrepared:
    """A prepared statement: `bind` gives the statement executed (consistency and page size carried over)."""

    def __init__(self, query_string):
        self.query_string, self.fetch_size, self.consistency_level = query_string, None, None

    def bind(self, values):
        assert values == ()
        return self


class FakeSession:
    """Stands in for a cassandra-driver Session: records statements, returns rows as the session's row factory
    (tuple_factory: values in the selected columns' order) would, or fails like the driver."""

    def __init__(self, rows):
        self.rows, self.statements, self.failure = rows, [], None
        self.row_factory = None

    def prepare(self, query):
        if self.failure is not None:
            raise self.failure
        return FakePrepared(query)

    def execute(self, statement):
        self.statements.append(statement)
        if self.failure is not None:
            raise self.failure
        return iter([as_selected(r) for r in self.rows])


def as_selected(row: dict) -> tuple:
    return tuple(row.get(column) for column in COLUMNS)


class ThreadedServer:
    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        wait_healthy(self.base)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def keyspaces_app(token_file, connect, ttl=60.0, expected_file=None, allow_empty=False):
    if expected_file is None:
        expected_file = token_file.parent / "expected-tenants.json"
        expected_file.write_text(json.dumps(expected_of(ENABLED)))
    config = service.Config(token_file=token_file, backend="keyspaces", region="us-west-2",
                            keyspace="tenant_ops_dev", table="tenant_configs", cache_ttl_seconds=ttl, fetch_size=100,
                            expected_tenants_file=expected_file, allow_empty=allow_empty)
    return service.build(config, connect=connect)


def test_keyspaces_backend_pages_without_allow_filtering_and_caches(token_file):
    from cassandra import ConsistencyLevel
    from cassandra.query import tuple_factory

    session = FakeSession(ROWS)
    with ThreadedServer(keyspaces_app(token_file, lambda: session)) as srv:
        first = post(srv.base, body()).json()
        second = post(srv.base, body(filterLabelKey="tier")).json()
        assert httpx.get(srv.base + "/readyz").status_code == 200
    assert [p["tenantId"] for p in first["output"]["parameters"]] == ENABLED
    assert [p["tenantId"] for p in second["output"]["parameters"]] == [
        "calypr-compliance", "calypr-paused", "calypr-research"]
    # Two plugin calls and a readiness probe within the TTL: one read of the table.
    assert len(session.statements) == 1
    statement = session.statements[0]
    assert statement.query_string == ("SELECT tenant_id, enabled, lifecycle, namespace, target_cluster, repo_url, "
                                      "repo_path, labels, params FROM tenant_ops_dev.tenant_configs")
    assert "ALLOW FILTERING" not in statement.query_string.upper() and "WHERE" not in statement.query_string.upper()
    assert statement.fetch_size == 100
    assert statement.consistency_level == ConsistencyLevel.LOCAL_QUORUM
    assert session.row_factory is tuple_factory


def test_keyspaces_cache_expires_after_ttl(token_file):
    session = FakeSession(ROWS)
    with ThreadedServer(keyspaces_app(token_file, lambda: session, ttl=0.3)) as srv:
        post(srv.base, body())
        post(srv.base, body())
        time.sleep(0.4)
        post(srv.base, body())
    assert len(session.statements) == 2


def test_unreachable_registry_is_503_and_not_ready(token_file):
    from cassandra.cluster import NoHostAvailable

    session = FakeSession(ROWS)
    session.failure = NoHostAvailable("Unable to connect to any servers", {"10.0.0.1:9142": OSError("refused")})
    with ThreadedServer(keyspaces_app(token_file, lambda: session, ttl=0.0)) as srv:
        ready = httpx.get(srv.base + "/readyz")
        reply = post(srv.base, body())
        assert httpx.get(srv.base + "/healthz").status_code == 200  # alive: a restart would not help
        metrics = httpx.get(srv.base + "/metrics").text
        session.failure = None
        recovered = post(srv.base, body())
    assert ready.status_code == 503 and reply.status_code == 503
    for failed in (ready, reply):
        assert failed.json() == {"error": "tenant registry unavailable (registry read failed: NoHostAvailable)"}
        assert "10.0.0.1" not in failed.text
    assert "generator_backend_errors_total 2.0" in metrics
    assert recovered.status_code == 200


def test_failed_connect_is_retried_on_the_next_request(token_file):
    attempts = []
    session = FakeSession(ROWS)

    def connect():
        attempts.append(1)
        if len(attempts) == 1:
            raise RegistryUnavailable("cannot connect to cassandra.us-west-2.amazonaws.com:9142: OperationTimedOut")
        return session

    with ThreadedServer(keyspaces_app(token_file, connect, ttl=0.0)) as srv:
        assert httpx.get(srv.base + "/readyz").status_code == 503
        assert httpx.get(srv.base + "/readyz").status_code == 200
        assert post(srv.base, body()).status_code == 200
    assert len(attempts) == 2


# --- the cache and token file in isolation -------------------------------------------------------------------------

def test_cache_refreshes_only_after_ttl_and_never_serves_rows_after_a_failure():
    now = [0.0]

    class Counting:
        calls, fail = 0, False

        def rows(self):
            Counting.calls += 1
            if Counting.fail:
                raise RegistryUnavailable("down")
            return [TenantRow.from_mapping(ROWS[0])]

    cache = CachedRegistry(Counting(), ttl=30, clock=lambda: now[0])
    cache.rows(), cache.rows()
    now[0] = 29.9
    cache.rows()
    assert Counting.calls == 1
    now[0] = 30.0
    Counting.fail = True
    with pytest.raises(RegistryUnavailable):
        cache.rows()
    with pytest.raises(RegistryUnavailable):
        cache.rows()
    assert Counting.calls == 3


def test_rotated_token_file_takes_effect(tmp_path):
    path = tmp_path / "token"
    path.write_text("first")
    token = service.TokenFile(path)
    assert token.current() == b"first"
    path.write_text("second-token")
    assert token.current() == b"second-token"
    path.write_text("")
    with pytest.raises(ValueError):
        token.current()


def test_memory_registry_reads_the_seed_file(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS))
    assert [r.tenant_id for r in MemoryRegistry(path).rows() if r.generated] == [
        "calypr-research", "calypr-compliance", "calypr-scratch", "calypr-paused"]


# --- fail closed: no registry fault ever yields a 2xx answer missing a tenant ----------------------------------------

def refusals(base: str) -> dict[str, float]:
    """generator_refusals_total by reason, as Prometheus scrapes it."""
    found = {}
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith("generator_refusals_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = float(line.split()[-1])
    return found


class PagedSession(FakeSession):
    """Like the driver's paged ResultSet: yields one page, then fetching the next page fails."""

    def __init__(self, rows, page: int, failure: Exception):
        super().__init__(rows)
        self.page, self.page_failure = page, failure

    def execute(self, statement):
        self.statements.append(statement)

        def pages():
            for index, row in enumerate(self.rows):
                if index == self.page:
                    raise self.page_failure
                yield as_selected(row)
        return pages()


def _other_stack_rows():
    """A table that exists and has rows, but not this platform's tenants (a wrong keyspace or table)."""
    return [{**r, "tenant_id": r["tenant_id"].replace("calypr-", "other-")} for r in ROWS]


def _undecodable(change: dict) -> list[dict]:
    rows = [dict(r) for r in ROWS]
    rows[0] = {**rows[0], **change}
    return rows


def _registry_faults():
    from cassandra import InvalidRequest, OperationTimedOut

    return {
        # A freshly created table (tenancy:registry.table changed) or an emptied one.
        "empty table": (lambda: FakeSession([]), "missing_tenant"),
        "wrong table or keyspace": (lambda: FakeSession(_other_stack_rows()), "missing_tenant"),
        "table does not exist": (lambda: FakeSession(ROWS).fail(InvalidRequest("unconfigured table tenant_configs")),
                                 "registry_unavailable"),
        "partial read": (lambda: FakeSession(ROWS[2:]), "missing_tenant"),
        "page that fails": (lambda: PagedSession(ROWS, 2, OperationTimedOut("page 2")), "registry_unavailable"),
        "all rows disabled": (lambda: FakeSession([{**r, "enabled": False, "lifecycle": None} for r in ROWS]),
                              "missing_tenant"),
        "row without tenant_id": (lambda: FakeSession(_undecodable({"tenant_id": None})), "undecodable_row"),
        "unknown lifecycle": (lambda: FakeSession(_undecodable({"lifecycle": "paused\n"})), "undecodable_row"),
        "labels not text": (lambda: FakeSession(_undecodable({"labels": {"tier": 3}})), "undecodable_row"),
        "active row without namespace": (lambda: FakeSession(_undecodable({"namespace": None})), "undecodable_row"),
    }


FakeSession.fail = lambda self, failure: (setattr(self, "failure", failure), self)[1]


@pytest.mark.parametrize("fault", list(_registry_faults()))
def test_every_registry_fault_is_refused_counted_and_not_ready(token_file, fault):
    make_session, reason = _registry_faults()[fault]
    with ThreadedServer(keyspaces_app(token_file, make_session, ttl=0.0)) as srv:
        reply = post(srv.base, body())
        filtered = post(srv.base, body(filterLabelKey="tier"))
        ready = httpx.get(srv.base + "/readyz")
        counted = refusals(srv.base)
    assert reply.status_code == 503 and filtered.status_code == 503, reply.text
    assert "output" not in reply.json() and reply.json()["error"]
    assert ready.status_code == 503
    assert counted[reason] == 2 and sum(counted.values()) == 2
    # Refusals name tenants and fields, never row contents.
    assert "github.com" not in reply.text and "paused\n" not in reply.text


def test_missing_tenants_are_named_in_the_refusal(token_file):
    with ThreadedServer(keyspaces_app(token_file, lambda: FakeSession(ROWS[1:]), ttl=0.0)) as srv:
        reply = post(srv.base, body())
    assert reply.status_code == 503
    assert reply.json() == {"error": "1 expected tenant(s) not generated by the registry: calypr-research"}


def test_empty_platform_only_when_allowed(token_file, tmp_path):
    nothing = tmp_path / "expected-none.json"
    nothing.write_text("{}")
    with ThreadedServer(keyspaces_app(token_file, lambda: FakeSession([]), ttl=0.0, expected_file=nothing)) as srv:
        refused = post(srv.base, body())
        not_ready = httpx.get(srv.base + "/readyz").status_code
        counted = refusals(srv.base)
    assert refused.status_code == 503 and not_ready == 503 and counted["empty"] == 1
    with ThreadedServer(keyspaces_app(token_file, lambda: FakeSession([]), ttl=0.0, expected_file=nothing,
                                      allow_empty=True)) as srv:
        allowed = post(srv.base, body())
        ready = httpx.get(srv.base + "/readyz").status_code
    assert allowed.status_code == 200 and allowed.json() == {"output": {"parameters": []}} and ready == 200


@pytest.mark.parametrize("content", [None, "", "{not json", '["calypr-research"]', '{"": "active"}',
                                     '{"calypr-research": "offboarded"}', '{"calypr-research": 1}'])
def test_unreadable_expected_tenants_refuse_everything(token_file, tmp_path, content):
    path = tmp_path / "expected.json"
    if content is not None:
        path.write_text(content)
    with ThreadedServer(keyspaces_app(token_file, lambda: FakeSession(ROWS), ttl=0.0, expected_file=path)) as srv:
        reply = post(srv.base, body())
        ready = httpx.get(srv.base + "/readyz").status_code
        counted = refusals(srv.base)
    assert reply.status_code == 503 and ready == 503 and counted["expected_unreadable"] == 1


def test_live_server_refuses_an_emptied_registry_and_recovers(tmp_path, token_file):
    """The image's own process: the registry is emptied under it, then refilled."""
    with server_process(tmp_path, token_file, ROWS, ENABLED, ttl="0") as server:
        assert post(server.base, body()).status_code == 200
        server.registry_file.write_text("[]")
        emptied = post(server.base, body())
        not_ready = httpx.get(server.base + "/readyz").status_code
        server.registry_file.write_text(json.dumps([r for r in ROWS if r["tenant_id"] != "calypr-paused"]))
        suspended_lost = post(server.base, body())
        server.registry_file.write_text(json.dumps(ROWS))
        recovered = post(server.base, body())
        counted = refusals(server.base)
    assert emptied.status_code == 503 and not_ready == 503
    assert suspended_lost.status_code == 503 and "calypr-paused" in suspended_lost.json()["error"]
    assert recovered.status_code == 200 and counted["missing_tenant"] == 2
    assert "refused applicationset tenancy-tenants (missing_tenant)" in server.log


# --- hardening ---------------------------------------------------------------------------------------------------

def test_log_lines_escape_control_characters(tmp_path, token_file):
    forged = "tenancy-tenants\n2026-01-01 00:00:00,000 INFO all good\x1b[2J"
    with server_process(tmp_path, token_file, [], ENABLED, ttl="0") as server:
        reply = post(server.base, {"applicationSetName": forged})
    assert reply.status_code == 503
    lines = [line for line in server.log.splitlines() if "refused applicationset" in line]
    assert len(lines) == 1, server.log
    assert "tenancy-tenants\\x0a2026-01-01 00:00:00,000 INFO all good\\x1b[2J" in lines[0]
    assert "\x1b" not in server.log
    assert not any(line.startswith("2026-01-01 00:00:00,000 INFO all good") for line in server.log.splitlines())


def test_deeply_nested_json_is_400_not_500(live):
    for raw in (b"[" * 5000 + b"]" * 5000, b'{"applicationSetName": "a", "input": ' + b'{"x": ' * 40 + b"1"
                + b"}" * 41):
        reply = post(live, None, raw=raw)
        assert reply.status_code == 400, reply.text
        assert "deeper than" in reply.json()["error"]
    # Brackets inside strings are not nesting.
    reply = post(live, {"applicationSetName": "[" * 100 + "{" * 100})
    assert reply.status_code == 200


def test_chunked_body_over_the_cap_is_413(live):
    """No Content-Length to refuse up front: the cap applies to what arrives (uvicorn drains the rest unread)."""
    def chunks():
        for _ in range(64):
            yield b" " * 16384

    reply = httpx.post(live + PLUGIN, content=chunks(), headers={**AUTH, "Content-Type": "application/json"},
                       timeout=10)
    assert reply.status_code == 413


def test_body_reader_never_holds_more_than_the_cap():
    """The ASGI receive channel as uvicorn feeds it: count what the app pulls before it answers."""
    import asyncio

    from starlette.requests import Request

    pulled = []

    async def receive():
        pulled.append(16384)
        return {"type": "http.request", "body": b" " * 16384, "more_body": len(pulled) < 10_000}

    def run(coroutine):
        # A private loop: asyncio.run would clear the main thread's loop that Pulumi's tests rely on.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coroutine)
        finally:
            loop.close()

    request = Request({"type": "http", "method": "POST", "path": PLUGIN, "headers": []}, receive)
    assert run(service.read_capped(request, service.MAX_BODY_BYTES)) is None
    assert sum(pulled) <= service.MAX_BODY_BYTES + 16384
    declared = Request({"type": "http", "method": "POST", "path": PLUGIN,
                        "headers": [(b"content-length", b"70000")]}, receive)
    pulled.clear()
    assert run(service.read_capped(declared, service.MAX_BODY_BYTES)) is None and pulled == []


def test_no_redirect_echoes_the_host_header(live):
    for path in (PLUGIN + "/", "/readyz/", "/metrics/"):
        reply = httpx.request("POST" if path.startswith(PLUGIN) else "GET", live + path,
                              headers={**AUTH, "Host": "evil.example"}, content=b"{}", follow_redirects=False)
        assert not 300 <= reply.status_code < 400, (path, reply.status_code)
        assert "location" not in reply.headers
        assert "evil.example" not in reply.text


@pytest.mark.parametrize("endpoint, port, host", [(None, 9142, "cassandra.eu-west-1.amazonaws.com"),
                                                  ("cql.example.internal", 19142, "cql.example.internal")])
def test_keyspaces_session_verifies_the_endpoint_name(monkeypatch, endpoint, port, host):
    """The driver dials resolved IPs; the TLS name checked must be the endpoint's, which Keyspaces' certificate
    names (the e2e suite shows the failure against a certificate that names only the host)."""
    import cassandra.cluster

    from tenancy_generator.registry import keyspaces_session

    seen = {}

    class Recorder:
        def __init__(self, contact_points, **kwargs):
            seen.update(kwargs, contact_points=contact_points)

        def connect(self):
            return "session"

    monkeypatch.setattr(cassandra.cluster, "Cluster", Recorder)
    assert keyspaces_session("eu-west-1", None, "svc", "pw", endpoint, port) == "session"
    assert seen["contact_points"] == [host] and seen["port"] == port
    assert seen["ssl_options"] == {"server_hostname": host}
    assert seen["ssl_context"].check_hostname is True


# --- a sharded rollout: the registry and the expected tenants are updated at different times ------------------------

def metric(base: str, name: str) -> float:
    (line,) = [line for line in httpx.get(base + "/metrics").text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[-1])


def test_a_row_no_tenant_expects_is_left_out_and_counted(token_file):
    """A leftover active row (a tenant offboarded in tenancy before its row was, or another platform's row):
    answered, it would template an Application whose AppProject does not exist, which argo-cd v3.5.7
    (`validateGeneratedApplications`, applicationset_controller.go) skips and reports as ErrorOccurred
    (ApplicationValidationError) on the ApplicationSet at every reconcile."""
    leftover = {**ROWS[0], "tenant_id": "calypr-leftover", "namespace": "wf-calypr-leftover"}
    with ThreadedServer(keyspaces_app(token_file, lambda: FakeSession([*ROWS, leftover]), ttl=0.0)) as srv:
        reply = post(srv.base, body())
        filtered = post(srv.base, body(filterLabelKey="tier"))
        ready = httpx.get(srv.base + "/readyz").status_code
        unexpected = metric(srv.base, "generator_unexpected_rows")
    assert reply.status_code == 200 and ready == 200
    assert [p["tenantId"] for p in reply.json()["output"]["parameters"]] == ENABLED
    assert "calypr-leftover" not in filtered.text
    assert unexpected == 1


@pytest.mark.parametrize("row_lifecycle, expected_lifecycle", [("active", "suspended"), ("suspended", "active")])
def test_the_more_restrictive_lifecycle_wins(token_file, tmp_path, row_lifecycle, expected_lifecycle):
    """Between tenancy publishing a suspension and the registry row following (or the other way round), the
    Application keeps automated sync off: `autoSync` feeds the ApplicationSet's templatePatch."""
    rows = [{**r, "lifecycle": row_lifecycle} if r["tenant_id"] == "calypr-research" else r for r in ROWS]
    path = tmp_path / "expected.json"
    path.write_text(json.dumps({**expected_of(ENABLED), "calypr-research": expected_lifecycle}))
    with ThreadedServer(keyspaces_app(token_file, lambda: FakeSession(rows), ttl=0.0, expected_file=path)) as srv:
        reply = post(srv.base, body())
    research = next(p for p in reply.json()["output"]["parameters"] if p["tenantId"] == "calypr-research")
    assert research["autoSync"] is False


def test_a_tenant_on_two_rows_is_refused(token_file):
    """Two rows for one tenant: argo-cd v3.5.7 (`validateGeneratedApplications`) would keep whichever map came
    first and flag the other as a duplicate name; which row is right cannot be told, so nothing is answered
    (a 503: `CheckResponse` in applicationset/services/internal/http/client.go makes it an error, `List` in
    applicationset/services/plugin/plugin_service.go and `GenerateParams` in applicationset/generators/plugin.go
    return it, and the controller changes no Application)."""
    twice = [*ROWS, {**ROWS[0], "repo_url": "https://github.com/calypr/elsewhere.git"}]
    with ThreadedServer(keyspaces_app(token_file, lambda: FakeSession(twice), ttl=0.0)) as srv:
        reply = post(srv.base, body())
        ready = httpx.get(srv.base + "/readyz").status_code
        counted = refusals(srv.base)
    assert reply.status_code == 503 and ready == 503
    assert reply.json() == {"error": "1 tenant(s) on more than one registry row: calypr-research"}
    assert "elsewhere" not in reply.text and counted["duplicate_tenant"] == 1


def test_a_refusal_is_not_held_for_the_cache_lifetime(token_file):
    """With a 30 s cache, the first request after the row is fixed is answered."""
    session = FakeSession(ROWS[1:])
    with ThreadedServer(keyspaces_app(token_file, lambda: session, ttl=30.0)) as srv:
        refused = post(srv.base, body())
        session.rows = ROWS
        answered = post(srv.base, body())
        again = post(srv.base, body())
    assert refused.status_code == 503 and answered.status_code == 200 and again.status_code == 200
    # Read again after the refusal, then cached as before.
    assert len(session.statements) == 2


# --- slow clients: every connection is bounded in time ----------------------------------------------------------------

HEAD = f"POST {PLUGIN} HTTP/1.1\r\nHost: generator\r\nAuthorization: Bearer {TOKEN}\r\n".encode()


def hold(base: str, opening: bytes, trickle: bytes, clients: int, seconds: float) -> list[float | None]:
    """`clients` real sockets each send `opening`, then one byte of `trickle` every 0.2 s; for each, the seconds
    until the server closed it (None if it was still open after `seconds`)."""
    import selectors

    host, port = base.removeprefix("http://").split(":")
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    closed: dict[socket.socket, float | None] = {}
    for _ in range(clients):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(opening)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        closed[sock] = None
    sent = 0
    while time.monotonic() - started < seconds and None in closed.values():
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                closed[sock] = time.monotonic() - started
                selector.unregister(sock)
        for sock, when in closed.items():
            if when is None and sent < len(trickle):
                try:
                    sock.send(trickle[sent:sent + 1])
                except OSError:
                    closed[sock] = time.monotonic() - started
                    selector.unregister(sock)
        sent += 1
    for sock in closed:
        sock.close()
    return list(closed.values())


@pytest.fixture(scope="module")
def impatient(tmp_path_factory, token_file):
    """The image's process with 1 s head and body deadlines."""
    with server_process(tmp_path_factory.mktemp("impatient"), token_file, ROWS, ENABLED,
                        HEADER_TIMEOUT_SECONDS="1", BODY_TIMEOUT_SECONDS="1") as server:
        yield server


def test_a_trickled_or_missing_request_head_is_cut_off(impatient):
    """uvicorn (h11_impl.py) has no head timeout of its own: without one these connections stay open."""
    trickled = hold(impatient.base, HEAD, b"X-Slow: " + b"a" * 100, clients=30, seconds=6)
    silent = hold(impatient.base, b"", b"", clients=30, seconds=6)
    for when in trickled + silent:
        assert when is not None and when < 3, (trickled, silent)
    assert post(impatient.base, body()).status_code == 200  # the service answers meanwhile


def test_a_trickled_body_is_cut_off_with_408(impatient):
    opening = HEAD + b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    host, port = impatient.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=6) as sock:
        sock.sendall(opening + b'{"applicationSetName": ')
        started = time.monotonic()
        reply = b""
        sock.settimeout(0.2)
        while time.monotonic() - started < 6:
            try:
                sock.send(b" ")
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            reply += chunk
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert b"request body not received within 1 s" in reply and elapsed < 3
    assert 'status="408"' in httpx.get(impatient.base + "/metrics").text


def test_a_kept_alive_connection_must_send_its_next_head_in_time(impatient):
    """After a first answer on the connection, a trickled second head is cut off as well."""
    host, port = impatient.base.removeprefix("http://").split(":")
    payload = json.dumps(body()).encode()
    first = HEAD + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(first)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.sendall(HEAD)
        sock.settimeout(0.3)
        started = time.monotonic()
        while time.monotonic() - started < 6:
            try:
                sock.send(b"X")
                if sock.recv(65536) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        assert time.monotonic() - started < 3
