"""The ApplicationSet plugin generator, run for real: uvicorn on loopback, driven over HTTP.

The in-memory backend runs in a separate server process (as the image runs); the Keyspaces backend runs in a
uvicorn server thread around a fake driver session, since no Keyspaces endpoint is reachable from tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

PROJECT = Path(__file__).resolve().parent.parent
GENERATOR = PROJECT / "generator"
sys.path.insert(0, str(GENERATOR))

from tenancy_generator import app as service  # noqa: E402

from tests.processes import stop  # noqa: E402
from tenancy_generator.params import TenantRow  # noqa: E402
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
]
ENABLED = ["calypr-compliance", "calypr-research", "calypr-scratch"]


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
def live(tmp_path_factory, token_file):
    """A real server process with the in-memory backend; yields its base URL."""
    registry_file = tmp_path_factory.mktemp("registry") / "rows.json"
    registry_file.write_text(json.dumps(ROWS))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(GENERATOR), "REGISTRY_BACKEND": "memory",
           "REGISTRY_FILE": str(registry_file), "PLUGIN_TOKEN_FILE": str(token_file),
           "HOST": "127.0.0.1", "PORT": str(port), "CACHE_TTL_SECONDS": "30"}
    proc = subprocess.Popen([sys.executable, "-m", "tenancy_generator"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base
    finally:
        stop(proc)
        proc.stderr.close()


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
        "params": {"nextflowProfile": "k8s"}, "nextflowProfile": "k8s",
    }


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
    # calypr-retired and calypr-unset carry tier=standard too, but are not enabled.
    assert [p["tenantId"] for p in reply.json()["output"]["parameters"]] == ["calypr-research"]


def test_filter_by_label_key_alone(live):
    reply = post(live, body(filterLabelKey="tier"))
    assert [p["tenantId"] for p in reply.json()["output"]["parameters"]] == ["calypr-compliance", "calypr-research"]


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
    assert "generator_registry_rows 5.0" in text
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
           "HOST": "127.0.0.1", "PORT": str(free_port())}
    done = subprocess.run([sys.executable, "-m", "tenancy_generator"], env=env, capture_output=True, timeout=30)
    assert done.returncode != 0
    assert b"PLUGIN_TOKEN_FILE" in done.stderr and b"Traceback" not in done.stderr


# --- Keyspaces backend over a fake driver session ---------------------------------------------------------------

class FakeSession:
    """Stands in for a cassandra-driver Session: records statements, returns rows or fails like the driver."""

    def __init__(self, rows):
        self.rows, self.statements, self.failure = rows, [], None
        self.row_factory = None

    def execute(self, statement):
        self.statements.append(statement)
        if self.failure is not None:
            raise self.failure
        return iter([dict(r) for r in self.rows])


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


def keyspaces_app(token_file, connect, ttl=60.0):
    config = service.Config(token_file=token_file, backend="keyspaces", region="us-west-2",
                            keyspace="tenant_ops_dev", table="tenant_configs", cache_ttl_seconds=ttl, fetch_size=100)
    return service.build(config, connect=connect)


def test_keyspaces_backend_pages_without_allow_filtering_and_caches(token_file):
    from cassandra import ConsistencyLevel
    from cassandra.query import dict_factory

    session = FakeSession(ROWS)
    with ThreadedServer(keyspaces_app(token_file, lambda: session)) as srv:
        first = post(srv.base, body()).json()
        second = post(srv.base, body(filterLabelKey="tier")).json()
        assert httpx.get(srv.base + "/readyz").status_code == 200
    assert [p["tenantId"] for p in first["output"]["parameters"]] == ENABLED
    assert [p["tenantId"] for p in second["output"]["parameters"]] == ["calypr-compliance", "calypr-research"]
    # Two plugin calls and a readiness probe within the TTL: one read of the table.
    assert len(session.statements) == 1
    statement = session.statements[0]
    assert statement.query_string == ("SELECT tenant_id, enabled, namespace, target_cluster, repo_url, repo_path, "
                                      "labels, params FROM tenant_ops_dev.tenant_configs")
    assert "ALLOW FILTERING" not in statement.query_string.upper() and "WHERE" not in statement.query_string.upper()
    assert statement.fetch_size == 100
    assert statement.consistency_level == ConsistencyLevel.LOCAL_QUORUM
    assert session.row_factory is dict_factory


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
    assert [r.tenant_id for r in MemoryRegistry.from_file(path).rows() if r.enabled] == [
        "calypr-research", "calypr-compliance", "calypr-scratch"]


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
