"""Tenant secrets under mocks: Vault paths, policy, role, SecretStore and ExternalSecrets line up with each
other and with what the artifact ConfigMap and the MiniCluster read; generated values never leave as plaintext.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from components import naming, settings
from components.secrets import (REFRESH_INTERVAL, S3_KEYS, external_secret_manifest, minicluster_keys,
                                secret_store_manifest, service_account_manifest)
from components.vault_policy import tenant_policy
from tenancy import synth

from .conftest import PROJECT, self_signed_ca_pem

POLICY = "vault:index/policy:Policy"
ROLE = "vault:kubernetes/authBackendRole:AuthBackendRole"
KV = "vault:kv/secretV2:SecretV2"
MOUNT = "vault:index/mount:Mount"
AUTH = "vault:index/authBackend:AuthBackend"
PASSWORD = "random:index/randomPassword:RandomPassword"
ACCESS_KEY = "aws:iam/accessKey:AccessKey"


def _names(stack: str, tenant: str) -> naming.TenantNames:
    return naming.derive("calypr", stack, tenant)


def _one(records, type_token, **where):
    found = [r for r in records if r["type"] == type_token
             and all(r["inputs"].get(k) == v for k, v in where.items())]
    assert len(found) == 1, (type_token, where, [r["name"] for r in found])
    return found[0]


def _manifests(result, namespace, kind):
    return {m["metadata"]["name"]: m for _, m in result.manifests()
            if m["kind"] == kind and m["metadata"].get("namespace") == namespace}


def _delivered(result, namespace) -> dict[tuple[str, str], tuple[str, str]]:
    """(Secret name, key) -> (Vault path, property) for every key an ExternalSecret writes into `namespace`."""
    out = {}
    for es in _manifests(result, namespace, "ExternalSecret").values():
        for item in es["spec"]["data"]:
            out[(es["spec"]["target"]["name"], item["secretKey"])] = (item["remoteRef"]["key"],
                                                                      item["remoteRef"]["property"])
    return out


@pytest.mark.parametrize("tenant", ["research", "compliance", "scratch"])
def test_policy_role_store_and_paths_line_up(dev, tenant):
    stack = settings.load_stack(PROJECT, "dev")
    names = _names("dev", tenant)
    owned = dev.tenant(tenant)
    mount = stack.vault.kv_mount.path
    auth = stack.vault.kubernetes_auth

    policy = _one(owned, POLICY, name=names.vault_policy)
    assert policy["inputs"]["policy"] == tenant_policy(mount, names.vault_base_path)

    role = _one(owned, ROLE, roleName=names.vault_role)["inputs"]
    sa = _manifests(dev, names.namespace, "ServiceAccount")[naming.SECRETS_SERVICE_ACCOUNT]
    assert sa["automountServiceAccountToken"] is False
    assert role["boundServiceAccountNames"] == [sa["metadata"]["name"]]
    assert role["boundServiceAccountNamespaces"] == [names.namespace]
    assert role["tokenPolicies"] == [names.vault_policy]
    assert role["tokenNoDefaultPolicy"] is True
    assert role["tokenTtl"] == role["tokenMaxTtl"] == stack.vault.token_ttl_seconds <= 3600
    assert role["backend"] == auth.path and role["audience"] == auth.audience

    store = _manifests(dev, names.namespace, "SecretStore")[naming.SECRET_STORE]["spec"]["provider"]["vault"]
    assert store["server"] == stack.vault.address
    assert (store["path"], store["version"]) == (mount, "v2")
    assert store["auth"]["kubernetes"] == {
        "mountPath": role["backend"], "role": role["roleName"],
        "serviceAccountRef": {"name": sa["metadata"]["name"], "audiences": [role["audience"]]}}

    # Every key an ExternalSecret asks for is a key of a KV entry this tenant writes, under its policy.
    kv = {r["inputs"]["name"]: r for r in owned if r["type"] == KV}
    assert all(r["inputs"]["mount"] == mount for r in kv.values())
    for es in _manifests(dev, names.namespace, "ExternalSecret").values():
        spec = es["spec"]
        assert spec["secretStoreRef"] == {"name": naming.SECRET_STORE, "kind": "SecretStore"}
        assert spec["target"] == {"name": es["metadata"]["name"], "creationPolicy": "Owner",
                                  "deletionPolicy": "Retain"}
        assert spec["refreshInterval"] == REFRESH_INTERVAL
        for item in spec["data"]:
            assert item["remoteRef"]["key"] in kv
            assert item["remoteRef"]["key"].startswith(names.vault_base_path + "/")


@pytest.mark.parametrize("tenant", ["research", "compliance", "scratch"])
def test_artifact_configmap_reads_keys_external_secrets_write(dev, tenant):
    names = _names("dev", tenant)
    delivered = _delivered(dev, names.namespace)
    assert delivered == {**delivered, **{(names.s3_credentials_secret, key): (names.vault_s3_path, key)
                                         for key in S3_KEYS}}
    configmap = _manifests(dev, names.namespace, "ConfigMap")[naming.ARTIFACT_REPOSITORIES_CONFIGMAP]
    s3 = yaml.safe_load(configmap["data"][naming.ARTIFACT_REPOSITORY_KEY])["s3"]
    for ref in (s3["accessKeySecret"], s3["secretKeySecret"]):
        assert (ref["name"], ref["key"]) in delivered


def test_minicluster_reads_keys_external_secrets_write(dev):
    names = _names("dev", "research")
    delivered = _delivered(dev, names.namespace)
    (minicluster,) = _manifests(dev, names.namespace, "MiniCluster").values()
    refs = [ref for c in minicluster["spec"]["containers"] for ref in (c.get("secrets") or {}).values()]
    assert {(r["name"], r["key"]) for r in refs} == {
        (names.minicluster_secret, key) for key in minicluster_keys(["alice"])}
    for ref in refs:
        assert delivered[(ref["name"], ref["key"])] == (names.vault_minicluster_path, ref["key"])


def test_tenant_without_minicluster_gets_no_passwords(dev):
    owned = dev.tenant("scratch")
    assert not [r for r in owned if r["type"] == PASSWORD]
    assert [r["inputs"]["name"] for r in owned if r["type"] == KV] == [_names("dev", "scratch").vault_s3_path]


def test_passwords_have_fixed_names_and_no_keepers(dev):
    owned = dev.tenant("research")
    passwords = {r["name"]: r["inputs"] for r in owned if r["type"] == PASSWORD}
    assert set(passwords) == {f"research-secrets-{key}" for key in minicluster_keys(["alice"])}
    assert all("keepers" not in inputs and inputs["length"] >= 32 for inputs in passwords.values())


def test_kv_values_are_secret_in_resources(dev):
    kv = dev.of_type(KV)
    assert len(kv) == 4  # three tenants' S3 keys, research's MiniCluster credentials
    assert all(r["inputs"]["dataJson"] == synth.SECRET for r in kv)


def test_synth_output_contains_no_generated_secret(dev, tmp_path):
    generated = []
    for record in dev.of_type(PASSWORD):
        _, state = synth._random_password(record["name"], record["inputs"], "")  # noqa: SLF001
        generated.append(state["result"])
    for record in dev.of_type(ACCESS_KEY):
        key_id, state = synth._access_key(record["name"], record["inputs"], "")  # noqa: SLF001
        generated += [key_id, state["secret"]]
    # research's three MiniCluster values and three static key pairs, plus whatever else the stack generates.
    assert len(generated) >= 3 + 2 * 3
    synth.write(dev, tmp_path)
    text = "\n".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert _names("dev", "research").vault_s3_path in text  # the dump is really there to search
    leaked = [value for value in generated if value in text]
    assert not leaked


def test_irsa_stack_stores_no_s3_key_and_delivers_no_s3_secret(staging):
    names = _names("staging", "research")
    assert [r["inputs"]["name"] for r in staging.tenant("research") if r["type"] == KV] == \
        [names.vault_minicluster_path]
    assert names.s3_credentials_secret not in _manifests(staging, names.namespace, "ExternalSecret")


def test_protected_stack_keeps_generated_values_and_the_mount(staging, dev):
    for result, retained in ((staging, True), (dev, False)):
        for record in result.tenant("research"):
            if record["type"] == PASSWORD or (record["type"] == KV and "minicluster" in record["inputs"]["name"]):
                # Retained, never protected: offboarding has to be able to drop them from the program.
                assert record["retainOnDelete"] is retained and not record["protect"], record["name"]
    (mount,) = staging.of_type(MOUNT)
    assert mount["protect"] and mount["retainOnDelete"]


def test_adopted_mount_and_backend_are_referenced_not_managed(prod):
    stack = settings.load_stack(PROJECT, "prod")
    assert not stack.vault.kv_mount.create and not stack.vault.kubernetes_auth.create
    assert not prod.of_type(MOUNT) and not prod.of_type(AUTH)
    assert not prod.of_type("vault:kubernetes/authBackendConfig:AuthBackendConfig")
    names = _names("prod", "research")
    assert _one(prod.tenant("research"), ROLE)["inputs"]["backend"] == stack.vault.kubernetes_auth.path
    assert f'"{stack.vault.kv_mount.path}/data/{names.vault_base_path}/*"' in \
        _one(prod.tenant("research"), POLICY)["inputs"]["policy"]


def test_created_mount_and_backend(dev):
    stack = settings.load_stack(PROJECT, "dev")
    (mount,) = dev.of_type(MOUNT)
    assert mount["inputs"] == {**mount["inputs"], "path": stack.vault.kv_mount.path, "type": "kv",
                               "options": {"version": "2"}}
    (backend,) = dev.of_type(AUTH)
    assert (backend["inputs"]["type"], backend["inputs"]["path"]) == ("kubernetes", stack.vault.kubernetes_auth.path)
    (config,) = dev.of_type("vault:kubernetes/authBackendConfig:AuthBackendConfig")
    assert config["inputs"]["backend"] == stack.vault.kubernetes_auth.path
    assert config["inputs"]["kubernetesHost"] == stack.vault.kubernetes_auth.host


def test_secrets_component_sits_under_its_tenant_with_explicit_providers(dev):
    tenant_urn = next(r["urn"] for r in dev.of_type("tenancy:index:Tenant") if r["name"] == "research")
    (component,) = [r for r in dev.of_type("tenancy:secrets:TenantSecrets") if r["name"] == "research-secrets"]
    assert component["parent"] == tenant_urn
    for record in dev.descendants(component["urn"]):
        assert record["name"].startswith("research-secrets-")
        assert record["provider"], record["name"]


def test_pure_builders_name_the_fixed_objects():
    stack = settings.load_stack(PROJECT, "dev")
    names = _names("dev", "t")
    assert service_account_manifest(names, {})["metadata"]["name"] == naming.SECRETS_SERVICE_ACCOUNT
    store = secret_store_manifest(names, {}, stack.vault, "kv", "kubernetes")
    assert store["apiVersion"] == "external-secrets.io/v1" and "namespace" not in store["spec"]["provider"]["vault"]
    es = external_secret_manifest(names, {}, "target", "argo/apps/t/x", ["a", "b"])
    assert [d["secretKey"] for d in es["spec"]["data"]] == ["a", "b"]
    enterprise = stack.vault.model_copy(update={"namespace": "team-a"})
    assert secret_store_manifest(names, {}, enterprise, "kv", "k")["spec"]["provider"]["vault"]["namespace"] == "team-a"


def _with_vault_setting(monkeypatch, **vault_fields):
    """Synth inputs as if Pulumi.dev.yaml's tenancy:vault also carried `vault_fields`."""
    import json

    read = settings.read_stack_file

    def patched(project_dir, stack):
        config, secret = read(project_dir, stack)
        config["tenancy:vault"] = json.dumps({**json.loads(config["tenancy:vault"]), **vault_fields})
        return config, secret

    monkeypatch.setattr(settings, "read_stack_file", patched)


@pytest.fixture
def in_project() -> Path:
    """A scratch folder inside the project (under the ignored out/): certificate files must be inside it."""
    (PROJECT / "out").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="test-vault-ca-", dir=PROJECT / "out"))
    yield folder
    shutil.rmtree(folder)


def test_vault_server_ca_becomes_every_secret_stores_ca_bundle(monkeypatch, in_project):
    import base64

    from .conftest import render

    pem = self_signed_ca_pem("vault test CA")
    (in_project / "vault-ca.pem").write_text(pem)
    _with_vault_setting(monkeypatch, caCertFile=str((in_project / "vault-ca.pem").relative_to(PROJECT)))
    result = render("dev")
    stores = [m for _, m in result.manifests() if m["kind"] == "SecretStore"]
    assert len(stores) == len(result.tenant_names())
    for store in stores:
        assert base64.b64decode(store["spec"]["provider"]["vault"]["caBundle"]).decode() == pem
    from tests import schema_check

    assert schema_check.problems(stores[0]) == []


def test_without_the_setting_the_store_trusts_the_system_roots(dev):
    for _, store in dev.manifests():
        if store["kind"] == "SecretStore":
            assert "caBundle" not in store["spec"]["provider"]["vault"]
            assert "caProvider" not in store["spec"]["provider"]["vault"]


@pytest.mark.parametrize("content, message", [
    (None, "tenancy:vault.caCertFile: cannot read"),
    ("not a certificate", "tenancy:vault.caCertFile: .* must hold PEM CERTIFICATE blocks and nothing else"),
])
def test_a_bad_vault_ca_file_stops_validation_with_both_files_problems(monkeypatch, in_project, content, message):
    from tenancy import inputs
    from components.problems import InvalidInput

    if content is not None:
        (in_project / "vault-ca.pem").write_text(content)
    relative = in_project.relative_to(PROJECT)
    _with_vault_setting(monkeypatch, caCertFile=str(relative / "vault-ca.pem"),
                        kubernetesAuth={"path": "kubernetes-dev", "caCertFile": str(relative / "missing.pem")})
    with pytest.raises(InvalidInput, match=message) as raised:
        inputs.load_inputs(PROJECT, "dev", None)
    assert "tenancy:vault.kubernetesAuth.caCertFile: cannot read" in str(raised.value)
