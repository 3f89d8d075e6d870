"""A real control plane for the e2e suite: etcd, kube-apiserver and kube-controller-manager on loopback.

The binaries are the ones `make engines` built from the upstream Go modules (tools/engines/kube.sh, etcd.sh).
Every run generates its own CA, serving and client certificates and service-account signing key, starts each
server on free 127.0.0.1 ports, waits for its health endpoint, and stops it by PID (also when a test fails).

`Cluster` talks to the apiserver over HTTPS as a `system:masters` client certificate, the way kubectl does:
server-side apply with strict field validation, POST with impersonation (so admission runs as that user),
and SubjectAccessReview (the real RBAC authorizer).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, Optional

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests import crds
from tests.processes import stop

PROJECT = Path(__file__).resolve().parents[2]
ENGINES = PROJECT / ".engines"
FIELD_MANAGER = "tenancy-e2e"
ADMIN_USER = "tenancy-e2e-admin"


class KubeError(Exception):
    """The apiserver refused a request (or, for apply, accepted it with warnings or pruned fields)."""

    def __init__(self, status: int, message: str, warnings: tuple[str, ...] = ()):
        super().__init__(f"{status}: {message}" + (f" (warnings: {'; '.join(warnings)})" if warnings else ""))
        self.status = status
        self.message = message
        self.warnings = tuple(warnings)


# --- engines --------------------------------------------------------------------------------------------------

def pinned_version(script: str, variable: str) -> str:
    """The version a recipe under tools/engines pins (`VAR=${VAR:-vX.Y.Z}`), honouring the same override."""
    text = (PROJECT / "tools" / "engines" / script).read_text()
    match = re.search(rf"^{variable}=\$\{{{variable}:-([^}}]+)\}}", text, re.M)
    assert match, f"{script} pins no {variable}"
    return os.environ.get(variable, match.group(1))


@dataclass(frozen=True)
class Engines:
    kube_version: str
    etcd_version: str
    kube_apiserver: Path
    kube_controller_manager: Path
    etcd: Path
    crd_dir: Path                                   # .engines/crds/<project>-<version>/*.yaml (rglob it)
    crd_files: tuple[Path, ...] = field(default=())  # the files whose CRDs every cluster installs

    @classmethod
    def locate(cls) -> "Engines":
        kube_version, etcd_version = pinned_version("kube.sh", "KUBE_VERSION"), pinned_version("etcd.sh", "ETCD_VERSION")
        kube_bin = ENGINES / f"kubernetes-{kube_version}" / "bin"
        etcd_bin = ENGINES / f"etcd-{etcd_version}" / "bin"
        engines = cls(kube_version, etcd_version, kube_bin / "kube-apiserver", kube_bin / "kube-controller-manager",
                      etcd_bin / "etcd", crds.CRD_DIR,
                      tuple(sorted({c.path for c in crds.cluster_set()})))
        missing = [str(p) for p in (engines.kube_apiserver, engines.kube_controller_manager, engines.etcd)
                   if not os.access(p, os.X_OK)]
        if missing:
            raise FileNotFoundError(f"engines not built: {', '.join(missing)}; run `make engines`")
        return engines


# --- certificates ---------------------------------------------------------------------------------------------

def _name(common_name: str, organisation: Optional[str] = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(parts)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Pki:
    """A CA for one run; serving and client certificates it signs; the service-account signing key."""

    def __init__(self, folder: Path):
        self.folder = folder
        now = datetime.datetime.now(datetime.timezone.utc)
        self._validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        subject = _name("tenancy-e2e-ca")
        self._ca = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                    .public_key(self._ca_key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(self._validity[0]).not_valid_after(self._validity[1])
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                   critical=True)
                    .sign(self._ca_key, hashes.SHA256()))
        self.ca_file = self._write("ca.crt", self._ca.public_bytes(serialization.Encoding.PEM))
        # Service-account tokens: the apiserver signs with the private key and verifies with the public one.
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key_file = self._write("sa.key", _pem_key(sa_key))
        self.sa_pub_file = self._write("sa.pub", sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def issue(self, name: str, common_name: str, organisation: Optional[str] = None, *,
              server: bool = False) -> tuple[Path, Path]:
        """(certificate, key) files; a server certificate is valid for 127.0.0.1 and the in-cluster names."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(common_name, organisation))
                   .issuer_name(self._ca.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(self._validity[0]).not_valid_after(self._validity[1])
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if server:
            sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
                    *(x509.DNSName(n) for n in ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                                "kubernetes.default.svc.cluster.local"))]
            builder = (builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
                                            critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        return (self._write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
                self._write(f"{name}.key", _pem_key(key)))

    def kubeconfig(self, name: str, server: str, cert: Path, key: Path) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
            "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": name, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": name}}],
        }
        return self._write(f"{name}.kubeconfig", yaml.safe_dump(config).encode())


# --- processes --------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def start_server(name: str, argv: list[str], folder: Path) -> Server:
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        # Its own session, so a stray child never outlives the stop below.
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    return Server(name, process, log)


def _wait_healthy(server: Server, probe, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "not probed"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.tail()}")
        try:
            status, text = probe()
            if status == 200:
                return
            last = f"{status} {text[:300]}"
        except (httpx.HTTPError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{server.name} not healthy after {timeout:.0f}s ({last}):\n{server.tail()}")


# --- the cluster ------------------------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
_SUFFIX = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10) ** 3,
           "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15,
           "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
           "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}


def _quantity(value: Any) -> Optional[Decimal]:
    match = _QUANTITY.match(str(value))
    if not match:
        return None
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    return number * (Decimal(10) ** int(suffix[1:]) if suffix[:1] in "eE" and suffix else _SUFFIX[suffix])


def dropped_fields(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Paths of `sent` the apiserver did not keep as sent (pruned or changed); quantities compare by value."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path or "<root>"]
        return [p for k, v in sent.items() for p in
                (dropped_fields(v, stored[k], f"{path}.{k}") if k in stored else [f"{path}.{k}"])]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [path]
        return [p for i, v in enumerate(sent) for p in dropped_fields(v, stored[i], f"{path}[{i}]")]
    if sent == stored or (sent is not None and _quantity(sent) is not None and _quantity(sent) == _quantity(stored)):
        return []
    return [f"{path}: sent {sent!r}, stored {stored!r}"]


# Dependency order for applying a rendered stack: what others refer to first.
APPLY_ORDER = ("CustomResourceDefinition", "Namespace", "PriorityClass", "ClusterRole", "ServiceAccount",
               "Secret", "ConfigMap", "ResourceQuota", "LimitRange", "Role", "ClusterRoleBinding", "RoleBinding",
               "NetworkPolicy", "Service", "Deployment")


def apply_rank(manifest: dict[str, Any]) -> tuple[int, str]:
    kind = manifest.get("kind", "")
    return (APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER), kind)


class Cluster:
    """A running control plane; every call is made as the admin (system:masters) client certificate."""

    def __init__(self, url: str, pki: Pki, folder: Path, servers: list[Server]):
        self.url = url
        self.folder = folder
        self.servers = servers
        self.ca_file = pki.ca_file
        cert, key = pki.issue("admin", ADMIN_USER, "system:masters")
        self.admin_kubeconfig = pki.kubeconfig("admin", url, cert, key)
        tls = ssl.create_default_context(cafile=str(pki.ca_file))
        tls.load_cert_chain(str(cert), str(key))
        self._http = httpx.Client(base_url=url, verify=tls, timeout=60)
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}
        self.last_warnings: tuple[str, ...] = ()

    def close(self) -> None:
        self._http.close()

    # raw requests
    def request(self, method: str, path: str, json: Any = None, params: Optional[dict] = None,
                headers: Optional[dict] = None, content: Optional[bytes] = None) -> tuple[int, dict]:
        response = self._http.request(method, path, json=json, params=params, headers=headers, content=content)
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text}
        self.last_warnings = tuple(_warnings(response))
        return response.status_code, body

    def get(self, path: str, params: Optional[dict] = None) -> dict:
        status, body = self.request("GET", path, params=params)
        if status != 200:
            raise KubeError(status, body.get("message", str(body)))
        return body

    # REST mapping: apiVersion + kind -> plural resource, namespaced?
    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        key = (api_version, kind)
        if key not in self._resources:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            status, body = self.request("GET", path)
            if status != 200:
                raise KubeError(status, f"{api_version} is not served: {body.get('message', '')}")
            for r in body.get("resources", []):
                if "/" not in r["name"]:
                    self._resources[(api_version, r["kind"])] = (r["name"], r["namespaced"])
        if key not in self._resources:
            raise KubeError(404, f"{api_version} serves no kind {kind}")
        return self._resources[key]

    def path(self, api_version: str, kind: str, namespace: Optional[str] = None, name: Optional[str] = None) -> str:
        plural, namespaced = self.resource(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            assert namespace, f"{kind} is namespaced"
            base += f"/namespaces/{namespace}"
        return f"{base}/{plural}" + (f"/{name}" if name else "")

    def object_path(self, obj: dict[str, Any]) -> str:
        meta = obj.get("metadata", {})
        return self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

    # writes
    def apply(self, obj: dict[str, Any], dry_run: bool = False, warnings_ok: bool = False) -> dict[str, Any]:
        """Server-side apply with strict field validation; refused, warned-about or pruned fields raise."""
        params = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict", "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        status, body = self.request("PATCH", self.object_path(obj), params=params,
                                    content=json.dumps(obj).encode(),
                                    headers={"Content-Type": "application/apply-patch+yaml"})
        warnings = self.last_warnings
        if status not in (200, 201):
            raise KubeError(status, body.get("message", str(body)), warnings)
        if warnings and not warnings_ok:
            raise KubeError(status, f"{_describe(obj)} accepted with warnings", warnings)
        # A Secret's stringData is write-only: the apiserver merges it into data.
        sent = {k: v for k, v in obj.items() if k not in ("metadata", "stringData")}
        dropped = dropped_fields(sent, {k: v for k, v in body.items() if k != "metadata"})
        dropped += [f"stringData.{k}" for k in obj.get("stringData") or {} if k not in (body.get("data") or {})]
        dropped += [f"metadata.{p}" for part in ("labels", "annotations")
                    for p in dropped_fields(obj.get("metadata", {}).get(part, {}),
                                            body.get("metadata", {}).get(part) or {}, part)]
        if dropped:
            raise KubeError(status, f"{_describe(obj)}: the apiserver did not keep {dropped}", warnings)
        return body

    def create(self, obj: dict[str, Any], dry_run: bool = False, as_user: Optional[str] = None,
               as_groups: tuple[str, ...] | list[str] = ()) -> tuple[int, dict]:
        """POST `obj`; with `as_user` the request is impersonated, so authorization and admission see that user."""
        meta = obj.get("metadata", {})
        headers = {}
        if as_user:
            headers["Impersonate-User"] = as_user
        params = {"fieldValidation": "Strict"}
        if dry_run:
            params["dryRun"] = "All"
        path = self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        # httpx merges repeated headers from a list of pairs; one Impersonate-Group per group.
        header_list = list(headers.items()) + [("Impersonate-Group", g) for g in as_groups]
        response = self._http.post(path, params=params, content=json.dumps(obj).encode(),
                                   headers=[("Content-Type", "application/json"), *header_list])
        self.last_warnings = tuple(_warnings(response))
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"message": response.text}

    def delete(self, obj: dict[str, Any]) -> int:
        status, _ = self.request("DELETE", self.object_path(obj))
        return status

    # authorization
    def can(self, user: str, groups: tuple[str, ...] | list[str], verb: str, resource: str, namespace: str,
            api_group: str = "", subresource: str = "", name: str = "") -> bool:
        """The real authorizer's answer (SubjectAccessReview) for `user` in `groups`."""
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": user, "groups": list(groups),
            "resourceAttributes": {"namespace": namespace, "verb": verb, "group": api_group,
                                   "resource": resource, "subresource": subresource, "name": name}}}
        status, body = self.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", json=review)
        if status != 201:
            raise KubeError(status, body.get("message", str(body)))
        return bool(body["status"].get("allowed"))

    # rendered stacks
    def apply_rendered(self, out_dir: Path) -> list[dict[str, Any]]:
        """Apply every manifest synth wrote under `out_dir/manifests`, in dependency order; return what is stored.
        Raises the first refusal (see `apply_all` for a run that collects every refusal)."""
        manifests = [yaml.safe_load(p.read_text()) for p in sorted((Path(out_dir) / "manifests").rglob("*.yaml"))]
        stored, refused, skipped = self.apply_all(manifests)
        if refused or skipped:
            (kind, namespace, name), why = next(iter({**refused, **skipped}.items()))
            raise KubeError(422, f"{kind} {namespace}/{name}: {why}")
        return stored

    def apply_all(self, manifests: list[dict[str, Any]]):
        """Apply `manifests` in dependency order, each on its own: (stored, refused, skipped).

        Nothing is created that the manifests do not hold: an object in a namespace the platform has not made
        (install_platform_prerequisites) is refused by the apiserver, as on a real cluster. A custom kind whose CRD
        could not be fetched here is skipped, not refused, and reported as such."""
        stored, refused, skipped = [], {}, {}
        for manifest in sorted(manifests, key=apply_rank):
            meta = manifest["metadata"]
            key = (manifest["kind"], meta.get("namespace", ""), meta["name"])
            missing = crds.unavailable_group(manifest["apiVersion"])
            if missing:
                skipped[key] = f"CRD not fetchable from the Go module proxy ({missing})"
                continue
            try:
                stored.append(self.apply(applicable(manifest)))
            except KubeError as exc:
                refused[key] = str(exc)
        return stored, refused, skipped

    def install_crds(self, files: list[Path] | tuple[Path, ...]) -> None:
        names = []
        for path in files:
            for doc in crds.definitions(path):
                self.apply(doc)
                names.append(doc["metadata"]["name"])
        self.wait_for(lambda: all(self._established(n) for n in names), "CRDs established", timeout=120)
        self._resources.clear()

    def _established(self, name: str) -> bool:
        crd = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        # A CRD just created may carry `status.conditions: null` until apiextensions first names it.
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    @staticmethod
    def wait_for(predicate, what: str, timeout: float = 60, interval: float = 0.3):
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)


def install_platform_prerequisites(cluster: Cluster, stack_settings: Any) -> None:
    """What the platform provides before tenancy's first `pulumi up`, made as a platform would make it.

    Of the namespaces tenancy's objects live in, tenancy renders the tenants' and the admission policies' own
    (`tenancy:admission.namespace`); the others are the platform's: Argo CD's (`tenancy:argocd.namespace`, made
    by Argo CD's install; the generator, the ApplicationSet and the tenants' AppProjects go there) and the DNS
    namespace (`tenancy:kubernetes.dnsNamespace`, kube-system, the apiserver's own). The upstream CRDs are
    installed with the cluster (running_cluster)."""
    if stack_settings.argocd.enabled:
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": stack_settings.argocd.namespace}})
    cluster.get(f"/api/v1/namespaces/{stack_settings.kubernetes.dns_namespace}")  # raises if the cluster lacks it


def applicable(manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest` as a cluster would receive it. Synth masks secret values as "[secret]" (a Secret's whole
    stringData, say); their shape is unknowable offline, so a masked field is sent empty of the right type."""
    manifest = json.loads(json.dumps(manifest))
    if manifest.get("kind") == "Secret":
        for key in ("stringData", "data"):
            if manifest.get(key) == "[secret]":
                manifest[key] = {}
            elif isinstance(manifest.get(key), dict):
                manifest[key] = {k: ("redacted" if v == "[secret]" else v) for k, v in manifest[key].items()}
    return manifest


def _describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')} {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}{meta.get('name')}"


def _warnings(response: httpx.Response) -> list[str]:
    # RFC 7234 warning headers: `299 - "text"`; one header per warning.
    return [re.sub(r'^\d{3} \S+ "(.*)"$', r"\1", w) for w in response.headers.get_list("warning")]


# --- starting and stopping --------------------------------------------------------------------------------------

@contextlib.contextmanager
def running_cluster(engines: Engines, *, controller_manager: bool = True, crd_files=None,
                    keep_logs: Optional[Path] = None) -> Iterator[Cluster]:
    """A clean etcd + kube-apiserver (+ kube-controller-manager) with the upstream CRDs installed."""
    folder = Path(tempfile.mkdtemp(prefix="tenancy-e2e-"))
    servers: list[Server] = []
    cluster: Optional[Cluster] = None
    try:
        pki = Pki(folder)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = start_server("etcd", [
            str(engines.etcd), "--name", "e2e", "--data-dir", str(folder / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"e2e=http://127.0.0.1:{peer_port}",
            # A throwaway store on a loaded CI machine: durability buys nothing here.
            "--unsafe-no-fsync", "--quota-backend-bytes", str(2 << 30), "--log-level", "warn",
        ], folder)
        servers.append(etcd)
        _wait_healthy(etcd, lambda: _probe(httpx.get(f"{etcd_url}/health", timeout=5)), timeout=60)

        serving_cert, serving_key = pki.issue("apiserver", "kube-apiserver", server=True)
        url = f"https://127.0.0.1:{api_port}"
        apiserver = start_server("kube-apiserver", [
            str(engines.kube_apiserver), "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(api_port),
            "--tls-cert-file", str(serving_cert), "--tls-private-key-file", str(serving_key),
            "--client-ca-file", str(pki.ca_file),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pki.sa_pub_file),
            "--service-account-signing-key-file", str(pki.sa_key_file),
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--authorization-mode", "RBAC",
            # The plugins a managed cluster (EKS) runs that decide what tenancy's objects allow; PodSecurity
            # and ValidatingAdmissionPolicy are the point. Privileged containers are allowed by the cluster
            # so that refusing them is Pod Security's decision, as on EKS.
            "--enable-admission-plugins", ",".join((
                "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "DefaultTolerationSeconds",
                "PodSecurity", "Priority", "ResourceQuota", "ValidatingAdmissionPolicy",
                "MutatingAdmissionWebhook", "ValidatingAdmissionWebhook")),
            "--allow-privileged=true",
            "--profiling=false", "--enable-priority-and-fairness=false",
            "--cert-dir", str(folder / "apiserver-certs"), "-v", "1",
        ], folder)
        servers.append(apiserver)
        cluster = Cluster(url, pki, folder, servers)
        _wait_healthy(apiserver, lambda: _probe_cluster(cluster), timeout=180)

        # CRDs before the controller-manager, so its quota controller discovers them from the start.
        cluster.install_crds(engines.crd_files if crd_files is None else crd_files)
        if controller_manager:
            cm_cert, cm_key = pki.issue("controller-manager", "system:kube-controller-manager")
            kubeconfig = pki.kubeconfig("controller-manager", url, cm_cert, cm_key)
            cm_port = free_port()
            kcm = start_server("kube-controller-manager", [
                str(engines.kube_controller_manager), "--kubeconfig", str(kubeconfig),
                "--authentication-kubeconfig", str(kubeconfig), "--authorization-kubeconfig", str(kubeconfig),
                "--bind-address", "127.0.0.1", "--secure-port", str(cm_port),
                "--cert-dir", str(folder / "kcm-certs"),
                "--leader-elect=false", "--use-service-account-credentials=true",
                "--service-account-private-key-file", str(pki.sa_key_file), "--root-ca-file", str(pki.ca_file),
                # Only what the checks rely on: quota status, namespaces, service accounts and their tokens,
                # the aggregated default ClusterRoles (admin/edit/view) and garbage collection.
                "--controllers", "resourcequota-controller,namespace-controller,serviceaccount-controller,"
                                 "serviceaccount-token-controller,clusterrole-aggregation-controller,"
                                 "garbage-collector-controller",
                "--resource-quota-sync-period", "5s", "-v", "1",
            ], folder)
            servers.append(kcm)
            _wait_healthy(kcm, lambda: _probe(httpx.get(f"https://127.0.0.1:{cm_port}/healthz", verify=False,
                                                        timeout=5)), timeout=120)

        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        for server in reversed(servers):
            if server.process.poll() is None:
                stop(server.process, group=True)
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for log in folder.glob("*.log"):
                shutil.copy(log, keep_logs / log.name)
        shutil.rmtree(folder, ignore_errors=True)


def _probe(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.text


def _probe_cluster(cluster: Cluster) -> tuple[int, str]:
    status, body = cluster.request("GET", "/readyz")
    return status, json.dumps(body)
