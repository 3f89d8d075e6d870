"""`pulumi up` of each stack (dev, staging, prod) by the real Pulumi engine, through the Automation API.

For each stack, a copy of this project whose settings name the test's engines (the kube-apiserver as kubeconfig
context `e2e`, OpenBao as Vault, Cassandra as the registry's CQL endpoint), on a fresh cluster with the platform's
prerequisites (the upstream CRDs, the Argo CD namespace; in stacks that adopt the Vault mount and auth backend,
those made as the platform makes them). The program is the copy's own `__main__.py` (tests/e2e/pulumi_engine.py);
the Pulumi CLI and the Kubernetes provider are real, the aws, vault and random providers are the test-only
stand-ins of tests/e2e/standin (they create in moto, OpenBao and Cassandra what the real providers would create in
AWS, Vault and Amazon Keyspaces).

The issue's scenario, in order, each step observed in the engines themselves:
1. `up` from an empty stack creates what the stack declares (tenant namespaces in the cluster, Vault policies,
   buckets in moto, the registry rows in Cassandra); then `preview` plans no change and `refresh`
   finds no drift (`expect_no_changes`: otherwise the CLI fails, pulumi/pulumi pkg/v3 backend/backenderr/backenderr.go
   "no changes were expected but changes were proposed").
2. No secret value (generated passwords, the IAM secret key's copy in Vault, the generator token, the configured
   registry password) is in the exported checkpoint in plain text or base64.
3. Offboarding (`lifecycle: offboarded` in the copy's catalogue, then `up`): the tenant's access objects go, its
   bucket and namespace stay, its registry row says `offboarded`; where the stack protects data, the generated
   Vault values (retainOnDelete) stay in OpenBao although the program no longer declares them.
4. `destroy`: where the stack protects data, the engine refuses (pulumi/pulumi pkg/v3 `resource/deploy/step.go`:
   `deleteProtectedError`, "... cannot be deleted because it is protected") and every protected resource stays in state and in
   the engines; elsewhere nothing the stack made is left in any engine (namespaces, Vault policies and mounts,
   buckets and IAM users, the registry rows; the keyspace and table on a `tenancy:registry.endpoint` are the
   platform's).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from components import naming
from components.naming import TenantNames
from tests.e2e.cassandra import cassandra  # noqa: F401 - the module-scoped Cassandra fixture
from tests.e2e.engine_world import STACKS, World, engine_world, grant_registry_role
from tests.e2e.pulumi_engine import EngineFailed, engine_home

pytestmark = pytest.mark.pulumi_engine

# The tenant offboarded in step 3: in every stack, with a MiniCluster (generated Vault values).
OFFBOARDED = "research"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with engine_home(tmp_path_factory.mktemp("pulumi")) as pulumi_home:
        yield pulumi_home


@pytest.fixture(scope="module")
def registry_cassandra(cassandra):  # noqa: F811 - the fixture imported above
    grant_registry_role(cassandra)
    return cassandra


@pytest.fixture(scope="module", params=STACKS)
def world(request, engines, tmp_path_factory, home, registry_cassandra):
    stack = request.param
    with engine_world(stack, tmp_path_factory.mktemp(f"pulumi-{stack}"), home, registry_cassandra, engines) as w:
        yield w


# --- what the engines hold --------------------------------------------------------------------------------------

def namespaces(world: World) -> set[str]:
    """Namespaces in the cluster that are not being deleted."""
    items = world.cluster.get("/api/v1/namespaces")["items"]
    return {n["metadata"]["name"] for n in items if n.get("status", {}).get("phase") != "Terminating"}


def vault_policies(world: World) -> set[str]:
    return set(world.bao.client.sys.list_acl_policies()["data"]["keys"]) - {"default", "root"}


def vault_mounts(world: World) -> set[str]:
    return {path.rstrip("/") for path in world.bao.client.sys.list_mounted_secrets_engines()["data"]}


def vault_auth_paths(world: World) -> set[str]:
    return {path.rstrip("/") for path in world.bao.client.sys.list_auth_methods()["data"]}


def kv_entry(world: World, path: str) -> dict[str, str] | None:
    import hvac.exceptions

    try:
        return world.bao.client.secrets.kv.v2.read_secret_version(
            path, mount_point=world.settings.vault.kv_mount.path, raise_on_deleted_version=True)["data"]["data"]
    except hvac.exceptions.InvalidPath:
        return None


def buckets(world: World) -> set[str]:
    return {b["Name"] for b in world.moto.client("s3").list_buckets().get("Buckets", [])}


def iam_users(world: World) -> set[str]:
    return {u["UserName"] for u in world.moto.client("iam").list_users()["Users"]}


def registry_rows(world: World) -> dict[str, dict[str, Any]]:
    registry = world.settings.registry
    with world.cassandra.session(world.cassandra.admin_username, world.cassandra.admin_password) as session:
        rows = session.execute(f'SELECT * FROM "{registry.keyspace}"."{registry.table}"')
        return {r["tenant_id"]: r for r in rows}


def kv_paths(world: World, tenant: TenantNames) -> list[str]:
    return [tenant.vault_s3_path, tenant.vault_minicluster_path]


# --- the scenario -----------------------------------------------------------------------------------------------

def test_up_from_empty_then_no_changes_and_no_drift(world: World):
    world.engine.up()
    tenants = world.tenants()
    assert {n.namespace for n in tenants.values()} <= namespaces(world)
    assert {n.vault_policy for n in tenants.values()} <= vault_policies(world)
    assert {n.bucket for n in tenants.values()} <= buckets(world)
    rows = registry_rows(world)
    assert {n.registry_key for n in tenants.values()} == set(rows), rows

    preview = world.engine.preview(expect_no_changes=True)
    assert preview.changes() == [], preview.changes()
    world.engine.refresh(expect_no_changes=True)


def _secret_values(world: World) -> set[str]:
    """Every secret value the stack holds: the KV entries it wrote (generated passwords, the IAM secret key), the
    Kubernetes Secrets it made (the generator token, the registry password), the registry password it was
    configured with."""
    values = {world.cassandra.password}
    for names in world.tenants().values():
        for path in kv_paths(world, names):
            # An access key's id is not secret (pulumi-aws AccessKey: only `secret` is); it is the resource id.
            values |= {v for k, v in (kv_entry(world, path) or {}).items() if k != naming.S3_ACCESS_KEY_ID_KEY}
    for secret in world.cluster.get("/api/v1/secrets")["items"]:
        if secret["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == naming.MANAGED_BY:
            values |= {base64.b64decode(v).decode() for v in (secret.get("data") or {}).values()}
    return {v for v in values if len(v) >= 8}


def _leaked(values: set[str], text: str) -> list[str]:
    return [v[:4] + "…" for v in values if v in text or base64.b64encode(v.encode()).decode() in text]


def test_state_and_engine_output_hold_no_secret_in_plain_text(world: World):
    values = _secret_values(world)
    assert len(values) >= 2, "the stack holds generated secrets to look for"
    assert not _leaked(values, json.dumps(world.engine.export())), "secret values in the exported state"
    # What the CLI printed and the engine events of every operation so far (kept as the run's logs).
    for log in sorted(world.engine.logs.iterdir()):
        if log.is_file():
            assert not _leaked(values, log.read_text(errors="replace")), f"secret values in {log}"


def test_offboarding_keeps_what_retain_on_delete_keeps(world: World):
    names = world.tenants()[OFFBOARDED]
    retained = kv_entry(world, names.vault_minicluster_path)
    assert retained, f"{OFFBOARDED}'s generated values are in Vault before offboarding"
    world.set_lifecycle(OFFBOARDED, "offboarded")
    world.engine.up()

    assert names.vault_policy not in vault_policies(world), "offboarding removes the tenant's Vault policy"
    assert names.iam_user not in iam_users(world)
    assert names.bucket in buckets(world), "the bucket outlives offboarding"
    assert names.namespace in namespaces(world), "the namespace outlives offboarding"
    assert registry_rows(world)[names.registry_key]["lifecycle"] == "offboarded"
    if world.settings.protect_data:
        assert kv_entry(world, names.vault_minicluster_path) == retained, \
            "retainOnDelete keeps the generated values in Vault"
    else:
        assert kv_entry(world, names.vault_minicluster_path) is None
    world.engine.preview(expect_no_changes=True)


def _protected(state: dict[str, Any]) -> set[str]:
    return {r["urn"] for r in state.get("resources", []) if r.get("protect")}


def test_destroy(world: World):
    before = world.engine.export()
    protected = _protected(before)
    tenants = world.tenants()
    if world.settings.protect_data:
        assert protected, "a data-protecting stack protects its data resources"
        with pytest.raises(EngineFailed) as refused:
            world.engine.destroy()
        assert "protected" in str(refused.value), refused.value
        after = world.engine.export()
        assert protected <= {r["urn"] for r in after.get("resources", [])}
        assert {n.bucket for n in tenants.values()} <= buckets(world)
        assert {n.namespace for n in tenants.values()} <= namespaces(world)
        assert {n.registry_key for n in tenants.values()} <= set(registry_rows(world))
        return
    assert not protected
    world.engine.destroy()
    assert not world.engine.export().get("resources")
    world.cluster.wait_for(lambda: not ({n.namespace for n in tenants.values()} & namespaces(world)),
                           "tenant namespaces deleted", timeout=120)
    assert world.settings.admission.namespace not in namespaces(world)
    assert not vault_policies(world)
    assert world.settings.vault.kv_mount.path not in vault_mounts(world)
    assert world.settings.vault.kubernetes_auth.path not in vault_auth_paths(world)
    assert not buckets(world)
    assert not iam_users(world)
    # The keyspace and table on the endpoint are the platform's (tenancy:registry.endpoint); the rows were the stack's.
    assert not registry_rows(world)
