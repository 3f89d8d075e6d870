"""Contract: External Secrets' Vault provider, replayed on a real OpenBao with exactly what tenancy renders.

For every tenant of every stack (dev, staging, prod) the test loads the synth output into a fresh OpenBao (the
tenant's Vault policy HCL and Kubernetes-auth role as registered, the kv-v2 mount and auth path the stack
names) and performs the calls External Secrets makes for the tenant's namespaced SecretStore, in its order:

1. Kubernetes-auth login `auth/<mountPath>/login` with the store's role and a service-account token requested
   for the store's `serviceAccountRef` and audiences (`createServiceAccountToken`, `requestTokenWithKubernetesAuth`
   in auth.go / auth_kubernetes.go);
2. `GET auth/token/lookup-self` (`checkToken`, called by `Validate` in validate.go: the SecretStore is Ready
   only if this succeeds);
3. a read of `<path>/data/<key>` for every `remoteRef.key` of every ExternalSecret (`readSecret` and
   `buildPath` in client_get.go), each `property` present in the entry;
4. `PUT auth/token/revoke-self` (`revokeTokenIfValid`, called by `Close` in client.go; lookup-self first).

The same token is then refused every other tenant's entries. Upstream: external-secrets v0.17.0
`pkg/provider/vault/{auth.go,auth_kubernetes.go,client.go,client_get.go,validate.go}` and v2.9.0
`providers/v1/vault/` (same files, same calls).

The login is OpenBao's own kubernetes auth method (role binding, audience and namespace checks all real). Only
the Kubernetes API it calls back is played here: a loopback server answering TokenReview the way kube-apiserver
does for tokens it issued (openbao `builtin/credential/kubernetes/token_review.go` is the client), and the
service-account JWTs are signed by a key the auth method is configured to trust (`pem_keys`).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import hvac
import hvac.exceptions
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from components import naming, settings

from .conftest import PROJECT, sample
from . import vault_records
from .test_openbao import _free_port, bao_server

STACKS = ("dev", "staging", "prod")
POLICY = "vault:index/policy:Policy"
ROLE = "vault:kubernetes/authBackendRole:AuthBackendRole"
ISSUER = "https://kubernetes.default.svc.cluster.local"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeApiServer:
    """The TokenRequest/TokenReview pair of kube-apiserver for service-account tokens, on 127.0.0.1.

    `token_for` is what `ServiceAccounts(ns).CreateToken` returns to External Secrets: a projected-token JWT
    (`kubernetes.io` claims, `aud` = the requested audiences). The TokenReview handler authenticates only tokens
    it issued and answers the audiences the caller asked for that the token carries, as the API server does.
    """

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.issued: dict[str, dict[str, Any]] = {}
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/apis/authentication.k8s.io/v1/tokenreviews", self.path
                reply = server.review(body["spec"]["token"], body["spec"].get("audiences") or [])
                data = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                   "status": reply}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def token_for(self, namespace: str, service_account: str, audiences: list[str]) -> str:
        now = int(time.time())
        sa_uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{service_account}"))
        claims = {"iss": ISSUER, "sub": f"system:serviceaccount:{namespace}:{service_account}",
                  "aud": audiences, "iat": now, "nbf": now, "exp": now + 600,
                  "kubernetes.io": {"namespace": namespace,
                                    "serviceaccount": {"name": service_account, "uid": sa_uid}}}
        head = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
        signature = self.key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = head + "." + _b64(signature)
        self.issued[token] = claims
        return token

    def review(self, token: str, audiences: list[str]) -> dict[str, Any]:
        claims = self.issued.get(token)
        if claims is None:
            return {"authenticated": False, "error": "invalid bearer token"}
        granted = [a for a in audiences if a in claims["aud"]] if audiences else claims["aud"]
        if not granted:
            return {"authenticated": False, "error": "token audiences do not match"}
        sa = claims["kubernetes.io"]
        return {"authenticated": True, "audiences": granted,
                "user": {"username": claims["sub"], "uid": sa["serviceaccount"]["uid"],
                         "groups": ["system:serviceaccounts", f"system:serviceaccounts:{sa['namespace']}"]}}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _tenant_objects(result, names: naming.TenantNames) -> dict[str, Any]:
    """The policy, role, SecretStore and ExternalSecrets synth registered for one tenant."""
    owned = result.tenant(names.tenant)
    manifests = [m for _, m in result.manifests() if m["metadata"].get("namespace") == names.namespace]
    return {"policy": [r["inputs"] for r in owned if r["type"] == POLICY],
            "role": [r["inputs"] for r in owned if r["type"] == ROLE],
            "store": [m for m in manifests if m["kind"] == "SecretStore"],
            "externalsecrets": [m for m in manifests if m["kind"] == "ExternalSecret"]}


def _build_path(store_path: str, key: str) -> str:
    """ESO's `buildPath` for a v2 store with `path` set: strip a leading `<path>/` (and `data/`), insert `data`."""
    if key.startswith(store_path + "/"):
        key = key[len(store_path) + 1:].removeprefix("data/")
    return f"{store_path}/data/{key}"


def _load_stack(bao: hvac.Client, api: FakeApiServer, stack: str):
    """Everything synth rendered for `stack`, written to OpenBao; returns the tenants' objects and entries."""
    result = sample(stack)
    stack_settings = settings.load_stack(PROJECT, stack)
    mount = stack_settings.vault.kv_mount.path
    auth = stack_settings.vault.kubernetes_auth
    bao.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    bao.sys.enable_auth_method("kubernetes", path=auth.path)
    # The stack's host is the in-cluster API server; here it is the loopback stand-in (plain http, so the CA is
    # required by OpenBao but never used).
    bao.write(f"auth/{auth.path}/config", kubernetes_host=api.url, pem_keys=[api.public_pem], issuer=ISSUER,
              disable_local_ca_jwt=True,
              kubernetes_ca_cert=(PROJECT / "certs" / "compliance-root-ca.pem").read_text())
    tenants: dict[str, dict[str, Any]] = {}
    for tenant in result.tenant_names():
        objects = _tenant_objects(result, naming.derive(stack_settings.org, stack, tenant))
        (policy,) = objects["policy"]
        bao.sys.create_or_update_policy(policy["name"], policy["policy"])
        for role in objects["role"]:  # none while suspended: that is what suspension revokes
            assert role["backend"] == auth.path
            bao.write(f"auth/{auth.path}/role/{role['roleName']}", **vault_records.role_payload(role))
        # The values Pulumi writes (kv.SecretV2): every property each ExternalSecret asks for.
        entries: dict[str, dict[str, str]] = {}
        for es in objects["externalsecrets"]:
            for item in es["spec"]["data"]:
                ref = item["remoteRef"]
                entries.setdefault(ref["key"], {})[ref["property"]] = f"{stack}/{tenant}/{ref['property']}"
        for key, data in entries.items():
            bao.secrets.kv.v2.create_or_update_secret(key, secret=data, mount_point=mount)
        tenants[tenant] = {**objects, "entries": entries}
    return result, tenants


@pytest.fixture(scope="module")
def api():
    server = FakeApiServer()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=STACKS)
def loaded(request, tmp_path_factory, api):
    with bao_server(tmp_path_factory) as bao:
        result, tenants = _load_stack(bao, api, request.param)
        yield request.param, bao, tenants


def _raw(client: hvac.Client, method: str, path: str) -> dict[str, Any]:
    response = client.adapter.request(method, f"/v1/{path}")
    return response if isinstance(response, dict) else (response.json() if response.content else {})


def _eso_session(bao: hvac.Client, api: FakeApiServer, store: dict[str, Any], namespace: str):
    """Login as External Secrets does for `store`; returns the client holding the Vault token."""
    vault = store["spec"]["provider"]["vault"]
    kube = vault["auth"]["kubernetes"]
    jwt = api.token_for(namespace, kube["serviceAccountRef"]["name"], kube["serviceAccountRef"]["audiences"])
    client = hvac.Client(url=bao.url, timeout=5)
    login = client.write(f"auth/{kube['mountPath']}/login", role=kube["role"], jwt=jwt)
    client.token = login["auth"]["client_token"]
    return client, login["auth"]


def _forbidden(call) -> bool:
    try:
        call()
    except hvac.exceptions.Forbidden:
        return True
    return False


def test_every_active_tenant_syncs_every_external_secret(loaded, api):
    stack, bao, tenants = loaded
    synced = 0
    for tenant, objects in tenants.items():
        if not objects["role"]:
            continue
        (store,) = objects["store"]
        vault = store["spec"]["provider"]["vault"]
        assert vault["version"] == "v2"
        namespace = store["metadata"]["namespace"]
        client, auth = _eso_session(bao, api, store, namespace)
        assert auth["token_policies"] == objects["role"][0]["tokenPolicies"], "no default policy slipped in"

        # Validate(): the SecretStore is Ready only if the token can look itself up.
        looked_up = _raw(client, "GET", "auth/token/lookup-self")["data"]
        assert looked_up["type"] == "service" and int(looked_up["ttl"]) > 0

        for es in objects["externalsecrets"]:
            assert es["spec"]["secretStoreRef"] == {"name": store["metadata"]["name"], "kind": "SecretStore"}
            for item in es["spec"]["data"]:
                ref = item["remoteRef"]
                data = _raw(client, "GET", _build_path(vault["path"], ref["key"]))["data"]["data"]
                assert data[ref["property"]] == f"{stack}/{tenant}/{ref['property']}"
                synced += 1

        # Close(): lookup-self again, then revoke-self; afterwards the token is gone.
        _raw(client, "GET", "auth/token/lookup-self")
        _raw(client, "PUT", "auth/token/revoke-self")
        assert _forbidden(lambda: _raw(client, "GET", "auth/token/lookup-self"))
    assert synced > 0, f"{stack}: no ExternalSecret key was replayed"


def test_a_tenants_token_is_refused_every_other_tenants_entries(loaded, api):
    stack, bao, tenants = loaded
    for tenant, objects in tenants.items():
        if not objects["role"]:
            continue
        (store,) = objects["store"]
        vault = store["spec"]["provider"]["vault"]
        client, _ = _eso_session(bao, api, store, store["metadata"]["namespace"])
        for other, other_objects in tenants.items():
            if other == tenant:
                continue
            for key in other_objects["entries"]:
                assert _forbidden(lambda: _raw(client, "GET", _build_path(vault["path"], key))), (tenant, key)
                assert _forbidden(lambda: _raw(client, "GET", f"{vault['path']}/metadata/{key}")), (tenant, key)
        # The token endpoints granted act on the caller only: no look-up or revocation of anyone else.
        other_token = bao.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
        assert _forbidden(lambda: client.write("auth/token/lookup", token=other_token))
        assert _forbidden(lambda: client.write("auth/token/revoke", token=other_token))
        _raw(client, "PUT", "auth/token/revoke-self")


def test_login_is_bound_to_the_tenants_own_namespace_and_audience(loaded, api):
    stack, bao, tenants = loaded
    active = [(t, o) for t, o in tenants.items() if o["role"]]
    assert len(active) >= 2, f"{stack}: needs two active tenants"
    (_, objects), (_, other_objects) = active[0], active[1]
    kube = objects["store"][0]["spec"]["provider"]["vault"]["auth"]["kubernetes"]
    sa = kube["serviceAccountRef"]["name"]
    other_namespace = other_objects["store"][0]["metadata"]["namespace"]
    client = hvac.Client(url=bao.url, timeout=5)
    login = f"auth/{kube['mountPath']}/login"
    # Another tenant's External Secrets account cannot use this tenant's role...
    jwt = api.token_for(other_namespace, sa, kube["serviceAccountRef"]["audiences"])
    assert _forbidden(lambda: client.write(login, role=kube["role"], jwt=jwt))
    # ...nor can another account of the tenant's own namespace, nor a token minted for another audience.
    namespace = objects["store"][0]["metadata"]["namespace"]
    assert _forbidden(lambda: client.write(login, role=kube["role"], jwt=api.token_for(namespace, "default", ["vault"])))
    assert _forbidden(lambda: client.write(login, role=kube["role"], jwt=api.token_for(namespace, sa, ["other"])))
