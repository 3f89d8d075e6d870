"""The real External Secrets Operator (v0.17.0, built by tools/engines/eso.sh) against what tenancy renders.

For each stack (dev, staging, prod): a clean kube-apiserver, an OpenBao with TLS, and the stack rendered by synth
with settings that name them (`project_for`: the Vault address and CA, the Kubernetes host and CA; nothing
patched in the manifests). OpenBao is loaded from synth's Vault records (kv-v2 mount, kubernetes auth backend
and config, each tenant's policy and role, the KV entries with fresh random values). The platform's share, which
tenancy does not render, is made as the platform would: the token Vault calls TokenReview with (a `vault`
ServiceAccount bound to `system:auth-delegator`, as an in-cluster Vault's own pod token is), and in prod the
mount and auth backend tenancy adopts (`create: false`). Every rendered manifest is applied, then the ESO
controller reconciles them.

What a user sees is asserted: each tenant's SecretStore `Ready=True`, each ExternalSecret `Ready=True`
(`SecretSynced`) and its Secret holding exactly the Vault entry's keys and values; a tenant's store cannot read
another tenant's path nor log in with another tenant's role (Vault refuses, the status and events say so); a
suspended tenant's store cannot log in at all (its role is gone) and nothing reaches its namespace; the
controller's (debug) log never holds a secret value.

Upstream behaviour relied on (external-secrets v0.17.0):
- `cmd/controller/root.go`: the root command is the controller; the GeneratorState reconciler always runs, so
  every CRD of `config/crds/bases` is installed;
- `pkg/controllers/secretstore/common.go` (`reconcile`, `validateStore`): `Ready=True/Valid` after the client is
  created and validated, `Ready=False/InvalidProviderConfig` with the error only in a Warning event when the
  client (the Vault login) fails;
- `pkg/provider/vault/auth.go` (`createServiceAccountToken`: TokenRequest for `serviceAccountRef` in the store's
  namespace with its `audiences`), `auth_kubernetes.go` (login at `auth/<mountPath>/login`), `client.go`
  (`caBundle` as the only roots), `validate.go` (`auth/token/lookup-self`), `client_get.go` (`<path>/data/<key>`);
- `pkg/controllers/externalsecret/externalsecret_controller.go`: `Ready=True/SecretSynced`, or
  `Ready=False/SecretSyncedError` "could not get secret data from provider" with the provider error in an event.
And OpenBao's kubernetes auth (`builtin/credential/kubernetes`): TokenReview with the role's audience against
`kubernetes_host`, then the bound service-account name and namespace.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from components import naming, settings
from components.secrets import external_secret_manifest
from tests.e2e import eso
from tests.e2e.kube import PROJECT, install_platform_prerequisites
from tests.e2e.project import synth

STACKS = ("dev", "staging", "prod")
# A third tenant, only in dev, suspended in the catalogue: its objects stay, its Vault role goes.
SUSPENDED = {"dev": ("scratch",)}
ESO_API = "/apis/external-secrets.io/v1"
TIMEOUT = 90


def _condition(obj: dict[str, Any], type_: str = "Ready") -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def _wait_condition(cluster, path: str, status: str, what: str) -> dict[str, Any]:
    def settled():
        code, obj = cluster.request("GET", path)
        cond = _condition(obj) if code == 200 else None
        return cond if cond and cond["status"] == status else None
    try:
        return cluster.wait_for(settled, what, timeout=TIMEOUT, interval=0.5)
    except TimeoutError as exc:
        _, obj = cluster.request("GET", path)
        raise AssertionError(f"{exc}; status: {obj.get('status')}") from None


def _events(cluster, namespace: str, kind: str, name: str) -> list[str]:
    _, body = cluster.request("GET", f"/api/v1/namespaces/{namespace}/events", params={
        "fieldSelector": f"involvedObject.kind={kind},involvedObject.name={name}"})
    return [e.get("message", "") for e in body.get("items", [])]


@pytest.fixture(scope="module", params=STACKS)
def world(request, start_cluster, tmp_path_factory):
    """For one stack: a clean cluster, OpenBao, the rendered stack applied and loaded into it, ESO running."""
    eso.eso_binary()  # fail fast when not built
    stack = request.param
    folder = tmp_path_factory.mktemp(f"eso-{stack}")
    stack_settings = settings.load_stack(PROJECT, stack)
    with start_cluster(logs_name=f"external-secrets-{stack}") as cluster, \
            eso.openbao_tls(cluster.folder) as bao:
        project = eso.project_for(folder, stack, vault_url=bao.url, vault_ca=bao.ca_file,
                                  kube_url=cluster.url, kube_ca=cluster.ca_file, suspend=SUSPENDED.get(stack, ()))
        resources, manifests = synth(project, stack, folder / "out")

        # The platform's side: the identity Vault reviews tokens with (helm chart `server.authDelegator`).
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vault"}})
        cluster.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "vault", "namespace": "vault"}})
        cluster.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                       "metadata": {"name": "vault-auth-delegator"},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                   "name": "system:auth-delegator"},
                       "subjects": [{"kind": "ServiceAccount", "name": "vault", "namespace": "vault"}]})
        code, token = cluster.request("POST", "/api/v1/namespaces/vault/serviceaccounts/vault/token", json={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
        assert code == 201, token
        platform = eso.PlatformVault(cluster.url, cluster.ca_file.read_text(), token["status"]["token"])
        written = eso.load_vault(bao.client, resources, manifests, stack_settings.vault, platform)

        cluster.install_crds(eso.eso_crd_files())
        install_platform_prerequisites(cluster, stack_settings)
        stored, refused, _ = cluster.apply_all(manifests)
        ours = {"Namespace", "ServiceAccount", "SecretStore", "ExternalSecret"}
        assert not {k: v for k, v in refused.items() if k[0] in ours}, refused

        # Its log and OpenBao's sit beside the cluster's, so they are kept in .engines/e2e-logs/ too.
        with eso.eso_controller(cluster.admin_kubeconfig, cluster.folder) as controller:
            yield {"stack": stack, "cluster": cluster, "bao": bao, "settings": stack_settings,
                   "resources": resources, "manifests": manifests, "written": written, "controller": controller}


def _tenants(world) -> dict[str, naming.TenantNames]:
    """Active tenants of the stack (the ones with a Vault role), by name."""
    roles = {r["inputs"]["roleName"] for r in world["resources"] if r["type"] == eso.ROLE}
    names = {}
    for ns in (m for m in world["manifests"] if m["kind"] == "Namespace"):
        tenant = ns["metadata"].get("labels", {}).get(naming.TENANT_LABEL)
        if tenant:
            derived = naming.derive(world["settings"].org, world["stack"], tenant)
            if derived.vault_role in roles:
                names[tenant] = derived
    assert len(names) >= 2, f"{world['stack']} needs two active tenants, has {sorted(names)}"
    return names


def _rendered(world, kind: str, namespace: str) -> list[dict[str, Any]]:
    return [m for m in world["manifests"] if m["kind"] == kind and m["metadata"].get("namespace") == namespace]


def test_every_tenants_secret_store_is_ready(world):
    cluster = world["cluster"]
    for tenant, names in _tenants(world).items():
        (store,) = _rendered(world, "SecretStore", names.namespace)
        assert "caBundle" in store["spec"]["provider"]["vault"], "the stack names Vault's CA"
        cond = _wait_condition(cluster, f"{ESO_API}/namespaces/{names.namespace}/secretstores/"
                                        f"{store['metadata']['name']}", "True", f"{tenant}'s SecretStore Ready")
        assert cond["reason"] == "Valid", cond


def test_every_external_secret_syncs_exactly_the_vault_entry(world):
    cluster, mount = world["cluster"], world["settings"].vault.kv_mount.path
    synced = 0
    for tenant, names in _tenants(world).items():
        for es in _rendered(world, "ExternalSecret", names.namespace):
            name = es["metadata"]["name"]
            cond = _wait_condition(cluster, f"{ESO_API}/namespaces/{names.namespace}/externalsecrets/{name}",
                                   "True", f"ExternalSecret {names.namespace}/{name} Ready")
            assert cond["reason"] == "SecretSynced", cond
            (path,) = {item["remoteRef"]["key"] for item in es["spec"]["data"]}
            secret = cluster.get(f"/api/v1/namespaces/{names.namespace}/secrets/{es['spec']['target']['name']}")
            got = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
            assert got == world["written"][(mount, path)], f"{names.namespace}/{name}: keys or values differ"
            synced += 1
    # Every active tenant's entry reaches a Secret (static S3 keys in dev, MiniCluster passwords everywhere).
    active = [path for (_, path) in world["written"]
              if any(path.startswith(n.vault_base_path + "/") for n in _tenants(world).values())]
    assert synced == len(active) > 0, (synced, active)


def _victim(world) -> tuple[naming.TenantNames, naming.TenantNames, str, list[str]]:
    """(attacker A, victim B, one of B's Vault entries, its keys): B is a tenant with an entry in Vault."""
    tenants = _tenants(world)
    for b, names_b in tenants.items():
        entries = [(path, data) for (_, path), data in world["written"].items()
                   if path.startswith(names_b.vault_base_path + "/")]
        if entries:
            a = next(t for t in tenants if t != b)
            path, data = entries[0]
            return tenants[a], names_b, path, sorted(data)
    raise AssertionError(f"{world['stack']}: no tenant has a Vault entry")


def test_a_tenants_store_cannot_read_another_tenants_path(world):
    """An ExternalSecret of tenant A, through A's own SecretStore, asking for B's entry: Vault refuses (A's
    policy covers `argo/apps/<A>/*` only), the ExternalSecret is not Ready and no Secret appears."""
    cluster = world["cluster"]
    names_a, names_b, path_b, keys = _victim(world)
    stolen = external_secret_manifest(names_a, {}, "stolen-from-" + names_b.tenant, path_b, keys)
    cluster.apply(stolen)
    path = f"{ESO_API}/namespaces/{names_a.namespace}/externalsecrets/{stolen['metadata']['name']}"
    cond = _wait_condition(cluster, path, "False", "the cross-tenant ExternalSecret to fail")
    assert cond["reason"] == "SecretSyncedError", cond
    events = " ".join(_events(cluster, names_a.namespace, "ExternalSecret", stolen["metadata"]["name"]))
    assert "permission denied" in events and "403" in events, events
    code, _ = cluster.request("GET", f"/api/v1/namespaces/{names_a.namespace}/secrets/{stolen['metadata']['name']}")
    assert code == 404
    # A's own ExternalSecrets are untouched by the refusal.
    for es in _rendered(world, "ExternalSecret", names_a.namespace):
        _, obj = cluster.request("GET", f"{ESO_API}/namespaces/{names_a.namespace}/externalsecrets/"
                                        f"{es['metadata']['name']}")
        assert _condition(obj)["status"] == "True"


def test_a_tenants_store_cannot_log_in_with_another_tenants_role(world):
    """A's SecretStore re-pointed at B's Vault role (a tenant can edit its own store): the token ESO requests
    is for A's `external-secrets-vault` in A's namespace, and B's role is bound to B's namespace only."""
    cluster = world["cluster"]
    names_a, names_b, _, _ = _victim(world)
    (store,) = _rendered(world, "SecretStore", names_a.namespace)
    borrowed = copy.deepcopy(store)
    borrowed["metadata"] = {"name": "borrowed-role", "namespace": names_a.namespace}
    borrowed["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"] = names_b.vault_role
    cluster.apply(borrowed)
    path = f"{ESO_API}/namespaces/{names_a.namespace}/secretstores/borrowed-role"
    cond = _wait_condition(cluster, path, "False", "the store with another tenant's role to fail")
    assert cond["reason"] == "InvalidProviderConfig", cond
    events = " ".join(_events(cluster, names_a.namespace, "SecretStore", "borrowed-role"))
    assert "403" in events and "namespace not authorized" in events, events


# Only the stacks whose catalogue copy suspends a tenant (the module's `world` for those stacks is reused).
@pytest.mark.parametrize("world", sorted(SUSPENDED), indirect=True)
def test_a_suspended_tenants_store_cannot_log_in(world):
    """Suspension removes the tenant's Vault role and keeps its namespace objects (components/secrets.py): the
    real controller then cannot log in, so the store is not Ready and nothing reaches the namespace."""
    cluster = world["cluster"]
    for tenant in SUSPENDED[world["stack"]]:
        names = naming.derive(world["settings"].org, world["stack"], tenant)
        (store,) = _rendered(world, "SecretStore", names.namespace)
        name = store["metadata"]["name"]
        cond = _wait_condition(cluster, f"{ESO_API}/namespaces/{names.namespace}/secretstores/{name}", "False",
                               f"suspended {tenant}'s store to fail")
        assert cond["reason"] == "InvalidProviderConfig", cond
        events = " ".join(_events(cluster, names.namespace, "SecretStore", name))
        assert f'invalid role name "{names.vault_role}"' in events, events
        externals = _rendered(world, "ExternalSecret", names.namespace)
        assert externals, f"{tenant}'s ExternalSecrets are kept while suspended"
        for es in externals:
            code, _ = cluster.request("GET", f"/api/v1/namespaces/{names.namespace}/secrets/"
                                             f"{es['spec']['target']['name']}")
            assert code == 404, f"{names.namespace}/{es['spec']['target']['name']} delivered while suspended"


def test_the_controller_log_holds_no_secret_value(world):
    # Runs last: by now every store, sync and refusal above has been logged at debug level.
    log = world["controller"].log.read_text(errors="replace")
    assert "SecretSynced" in log or "reconcil" in log.lower(), "the controller logged nothing: wrong log file?"
    for (mount, path), data in world["written"].items():
        for key, value in data.items():
            assert value not in log, f"{mount}/{path} {key} leaked into the controller log"
