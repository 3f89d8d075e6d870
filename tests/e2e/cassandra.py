"""Apache Cassandra on loopback for the e2e suite: TLS on the native port, password authentication, a CA and
server certificate generated per run, started as a plain JVM process from the jars `make engines` fetched
(tools/engines/cassandra.sh) and stopped by its PID, also when a test fails.

The JVM flags are the module exports/opens Cassandra needs on Java 17, restated from apache/cassandra
`conf/jvm17-server.options` (cassandra-5.0 line) plus the `-javaagent` jamm that `bin/cassandra.in.sh` adds;
a missing one makes the daemon die with an InaccessibleObjectException at start-up.
Start-up is kept short: one token, no bootstrap, no gossip settling, no superuser set-up delay, cheap bcrypt
rounds, C1-only JIT, a 512 MiB heap. The data centre is named after the registry's AWS region, because the
registry provider and the generator route with `DCAwareRoundRobinPolicy(local_dc=<region>)` exactly as
they do against Amazon Keyspaces (whose peers report the region as their data centre).
"""

from __future__ import annotations

import ctypes
import datetime
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from tests.processes import stop as stop_process

PROJECT = Path(__file__).resolve().parents[2]
ENGINES = PROJECT / ".engines"
ENGINE_SCRIPT = PROJECT / "tools" / "engines" / "cassandra.sh"
LISTEN = "127.0.0.1"
# Clients dial a name and the certificate carries only that name, as Keyspaces' certificate carries only
# `cassandra.<region>.amazonaws.com`: a client that checks the hostname against the resolved IP fails here too.
HOST = "localhost"
# The data centre name: the region the stacks' registry lives in, as Keyspaces reports it to the driver.
DATACENTER = "us-west-2"
START_TIMEOUT_SECONDS = 180
HEAP = "512M"

# apache/cassandra conf/jvm17-server.options, section "JPMS", and its Netty options.
JPMS_FLAGS = (
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
)
# System properties (org.apache.cassandra.config.CassandraRelevantProperties) that only shorten start-up.
FAST_START = (
    "-Dcassandra-foreground=yes",
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.ring_delay_ms=100",
    "-Dcassandra.superuser_setup_delay_ms=0",
    "-Dcassandra.auth_bcrypt_gensalt_log2_rounds=4",
    # A fixed per-row memtable overhead instead of measuring it with jamm at start (~10 s on two cores); it
    # only sizes memtable flushes.
    "-Dcassandra.memtable.row_overhead_size=200",
)


class EngineMissing(RuntimeError):
    pass


def _die_with_parent() -> None:
    """In the child before exec: a test run killed outright (no teardown) takes the JVM with it (Linux)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def cassandra_version() -> str:
    """The version tools/engines/cassandra.sh fetches (its CASSANDRA_VERSION, or the default it pins)."""
    if os.environ.get("CASSANDRA_VERSION"):
        return os.environ["CASSANDRA_VERSION"]
    pinned = re.search(r"^CASSANDRA_VERSION=\$\{CASSANDRA_VERSION:-([^}]+)\}", ENGINE_SCRIPT.read_text(), re.M)
    assert pinned, f"{ENGINE_SCRIPT} no longer pins CASSANDRA_VERSION"
    return pinned.group(1)


def cassandra_home() -> Path:
    """`.engines/cassandra-<version>` as tools/engines/cassandra.sh completed it."""
    home = ENGINES / f"cassandra-{cassandra_version()}"
    if not (home / ".complete").exists():
        raise EngineMissing(f"no Apache Cassandra jars in {home}/lib: run `make engines` "
                            "(tools/engines/cassandra.sh fetches them from Maven Central)")
    return home


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LISTEN, 0))
        return s.getsockname()[1]


def _write_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for HOST signed by it; (ca, server cert, server key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenancy e2e CQL CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


def _yaml(run: Path, native_port: int, storage_port: int, keystore: Path) -> str:
    data = run / "data"
    return f"""\
cluster_name: tenancy-e2e
num_tokens: 1
initial_token: 0
auto_bootstrap: false
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: GossipingPropertyFileSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{LISTEN}:{storage_port}"
listen_address: {LISTEN}
storage_port: {storage_port}
rpc_address: {LISTEN}
native_transport_port: {native_port}
start_native_transport: true
data_file_directories: ["{data}/data"]
commitlog_directory: {data}/commitlog
saved_caches_directory: {data}/saved_caches
hints_directory: {data}/hints
cdc_raw_directory: {data}/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
disk_failure_policy: stop
commit_failure_policy: stop
auto_snapshot: false
authenticator: PasswordAuthenticator
authorizer: CassandraAuthorizer
role_manager: CassandraRoleManager
client_encryption_options:
  enabled: true
  optional: false
  require_client_auth: false
  protocol: TLS
  accepted_protocols: [TLSv1.2, TLSv1.3]
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: {keystore}
server_encryption_options:
  internode_encryption: none
"""


@dataclass
class Cassandra:
    """One Cassandra node; `.username`/`.password` is a login role without superuser rights (grant it what a
    test needs with `.admin_execute`)."""

    home: Path
    run: Path
    host: str = HOST
    port: int = 0
    storage_port: int = 0
    username: str = "tenancy_e2e"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    admin_username: str = "e2e_admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    datacenter: str = DATACENTER
    ca_file: Path = Path()
    startup_seconds: float = 0.0
    _process: Optional[subprocess.Popen] = field(default=None, repr=False)

    def prepare(self) -> None:
        self.port, self.storage_port = free_port(), free_port()
        self.ca_file, cert_file, key_file = _write_pki(self.run)
        # PEMBasedSslContextFactory reads the private key and the certificate chain from one keystore file.
        keystore = self.run / "keystore.pem"
        keystore.write_bytes(key_file.read_bytes() + cert_file.read_bytes())
        keystore.chmod(0o600)
        (self.run / "cassandra.yaml").write_text(_yaml(self.run, self.port, self.storage_port, keystore))
        (self.run / "cassandra-rackdc.properties").write_text(f"dc={self.datacenter}\nrack=rack1\n")
        (self.run / "logback.xml").write_text(f"""\
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{self.run}/system.log</file>
    <encoder><pattern>%date %-5level [%thread] %logger{{36}} %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
""")

    def command(self) -> list[str]:
        if shutil.which("java") is None:
            raise EngineMissing("Cassandra needs a JDK 17 `java` on PATH")
        lib = self.home / "lib"
        jamm = sorted(lib.glob("jamm-*.jar"))
        if not jamm:
            raise EngineMissing(f"{lib} has no jamm jar: rerun `make engines`")
        return ["java", f"-javaagent:{jamm[-1]}", f"-Xms{HEAP}", f"-Xmx{HEAP}", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", *JPMS_FLAGS, *FAST_START,
                f"-Dcassandra.config=file://{self.run}/cassandra.yaml",
                f"-Dcassandra-rackdc.properties=file://{self.run}/cassandra-rackdc.properties",
                f"-Dlogback.configurationFile={self.run}/logback.xml",
                f"-Dcassandra.logdir={self.run}", f"-Dcassandra.storagedir={self.run}/data",
                "-cp", f"{lib}/*", "org.apache.cassandra.service.CassandraDaemon"]

    def start(self) -> None:
        """Start the daemon and wait until CQL answers over TLS; idempotent."""
        if self._process is not None and self._process.poll() is None:
            return
        begin = time.monotonic()
        out = open(self.run / "stdout.log", "ab")
        self._process = subprocess.Popen(self.command(), cwd=self.run, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        out.close()
        try:
            self._wait_for_cql(begin + START_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - begin

    def stop(self) -> None:
        """Stop the daemon by its PID (TERM, then KILL); idempotent."""
        if self._process is not None and self._process.poll() is None:
            stop_process(self._process, grace_seconds=20)
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ssl_context(self):
        import ssl

        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    @contextmanager
    def session(self, username: Optional[str] = None, password: Optional[str] = None) -> Iterator[Any]:
        """A driver session over TLS as `username` (the test role by default); rows come back as dicts."""
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy
        from cassandra.query import dict_factory

        profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=self.datacenter),
                                   request_timeout=30, row_factory=dict_factory)
        cluster = Cluster([self.host], port=self.port, ssl_context=self.ssl_context(),
                          ssl_options={"server_hostname": self.host},
                          auth_provider=PlainTextAuthProvider(username or self.username,
                                                              password if password is not None else self.password),
                          execution_profiles={EXEC_PROFILE_DEFAULT: profile}, protocol_version=4,
                          connect_timeout=10)
        try:
            yield cluster.connect()
        finally:
            cluster.shutdown()

    def admin_execute(self, *statements: str) -> None:
        """Run CQL (DDL, grants) as the run's superuser."""
        with self.session(self.admin_username, self.admin_password) as session:
            for statement in statements:
                session.execute(statement)

    def _wait_for_cql(self, deadline: float) -> None:
        """Until a TLS + password login succeeds; on the first start also replace the default superuser."""
        # The driver logs every refused connection while the node boots; a failing test's log should not drown.
        driver_log = logging.getLogger("cassandra")
        level = driver_log.level
        driver_log.setLevel(logging.CRITICAL)
        try:
            self._login(deadline)
        finally:
            driver_log.setLevel(level)

    def _login(self, deadline: float) -> None:
        from cassandra.cluster import NoHostAvailable

        first_start = not (self.run / ".roles").exists()
        user, password = ("cassandra", "cassandra") if first_start else (self.admin_username, self.admin_password)
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Cassandra exited with {self._process.returncode} during start-up:\n"
                                   f"{self.log_tail()}")
            try:
                with self.session(user, password) as session:
                    if first_start:
                        self._create_roles(session)
                    return
            except (NoHostAvailable, OSError) as exc:
                last = exc
                time.sleep(0.5)
        raise TimeoutError(f"Cassandra's CQL port {self.host}:{self.port} did not answer within "
                           f"{START_TIMEOUT_SECONDS}s ({last}):\n{self.log_tail()}")

    def _create_roles(self, session: Any) -> None:
        # The well-known default superuser gives way to one with a per-run password, as an operator would.
        session.execute(f"CREATE ROLE {self.admin_username} WITH SUPERUSER = true AND LOGIN = true "
                        f"AND PASSWORD = %s", (self.admin_password,))
        session.execute(f"CREATE ROLE {self.username} WITH LOGIN = true AND PASSWORD = %s", (self.password,))
        with self.session(self.admin_username, self.admin_password) as admin:
            admin.execute("ALTER ROLE cassandra WITH SUPERUSER = false AND LOGIN = false")
        (self.run / ".roles").touch()

    def log_tail(self, lines: int = 40) -> str:
        text = []
        for name in ("system.log", "stdout.log"):
            path = self.run / name
            if path.exists():
                text.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(text)


@contextmanager
def running_cassandra(run: Path) -> Iterator[Cassandra]:
    node = Cassandra(home=cassandra_home(), run=run)
    node.prepare()
    try:
        node.start()
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def cassandra(tmp_path_factory) -> Iterator[Cassandra]:
    """One fresh Cassandra node per test module, stopped by PID when the module ends, however it ends."""
    with running_cassandra(tmp_path_factory.mktemp("cassandra")) as node:
        yield node
