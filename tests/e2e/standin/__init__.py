"""TEST-ONLY STAND-IN provider plugins for `aws`, `vault` and `random`, installed into a test's own PULUMI_HOME.

The real providers cannot be obtained on these machines (../shared/reference.md section 9), so the e2e run of the
whole program through the Pulumi engine uses these stand-ins (tests/e2e/standin/plugin.py): the same provider
gRPC protocol, the resource types the program creates, backed by the e2e engines. Never install them anywhere
but a test's throw-away PULUMI_HOME: a stand-in registered as `aws` in a real Pulumi home would answer for AWS.

Interface for the harness (the engine-e2e scenario):

    from tests.e2e.standin import Backends, install
    backends = Backends(aws_endpoint="http://127.0.0.1:5000",            # moto server (S3, IAM, KMS, STS)
                        vault_address="http://127.0.0.1:8200", vault_token="root",   # OpenBao
                        cql_host="localhost", cql_port=9142, cql_ca_file=Path(...),   # Cassandra (TLS)
                        cql_username="...", cql_password="...")
    versions = install(pulumi_home, pulumi_cli, backends)   # {"aws": "7.51.1", "vault": "7.14.0", ...}

`install` writes one executable script `pulumi-resource-<package>` per package (shebang: this venv's python)
and runs `pulumi plugin install resource <package> <version> --file <script>` with PULUMI_HOME=pulumi_home, at
the version the installed SDK requests (its `pulumi-plugin.json`), so the engine loads it for the program's
resources. The script exports the backends as environment variables (`Backends.environment()`, names in
plugin.py: STANDIN_AWS_ENDPOINT, STANDIN_VAULT_ADDR, STANDIN_VAULT_TOKEN, STANDIN_CQL_*) before serving, so
the harness need not pass them through the CLI; variables already set in the engine's environment win.
The Cassandra fields may be None when a scenario creates no Keyspaces resources.

Provider configuration still comes from the stack: the aws provider's `region` (ARNs, the Cassandra data centre
the keyspace replicates to) and `defaultTags`, the vault provider's `namespace`. The stand-in vault talks to
`vault_address`, not the stack's `tenancy:vault` address (which names the cluster-internal service).
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import plugin

PACKAGES = ("aws", "vault", "random")
PROJECT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Backends:
    """Where the stand-ins' backends listen."""

    aws_endpoint: str
    vault_address: str
    vault_token: str
    cql_host: Optional[str] = None
    cql_port: Optional[int] = None
    cql_ca_file: Optional[Path] = None
    cql_username: Optional[str] = None
    cql_password: Optional[str] = None

    def environment(self) -> dict[str, str]:
        values = {plugin.ENV_AWS_ENDPOINT: self.aws_endpoint, plugin.ENV_VAULT_ADDR: self.vault_address,
                  plugin.ENV_VAULT_TOKEN: self.vault_token, plugin.ENV_CQL_HOST: self.cql_host,
                  plugin.ENV_CQL_PORT: self.cql_port, plugin.ENV_CQL_CA_FILE: self.cql_ca_file,
                  plugin.ENV_CQL_USERNAME: self.cql_username, plugin.ENV_CQL_PASSWORD: self.cql_password}
        return {k: str(v) for k, v in values.items() if v is not None}


def sdk_version(package: str) -> str:
    """The plugin version the installed Python SDK `pulumi_<package>` asks the engine for (read without importing
    the SDK, which takes seconds)."""
    spec = importlib.util.find_spec(f"pulumi_{package}")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the pulumi_{package} SDK is not installed")
    manifest = Path(spec.submodule_search_locations[0]) / "pulumi-plugin.json"
    return json.loads(manifest.read_text())["version"]


def script(package: str, version: str, backends: Backends, python: str = sys.executable) -> str:
    """The plugin executable: sets the backends' environment, then serves the package's stand-in."""
    return (f"#!{python}\n"
            f'"""TEST-ONLY STAND-IN for the Pulumi {package} provider {version} (tests/e2e/standin); '
            'not the real provider."""\n'
            "import os, sys\n"
            f"for key, value in {backends.environment()!r}.items():\n"
            "    os.environ.setdefault(key, value)\n"
            f"sys.path.insert(0, {str(PROJECT)!r})\n"
            "from tests.e2e.standin.plugin import main\n"
            f"main({package!r}, {version!r})\n")


def install(pulumi_home: Path, pulumi: Path, backends: Backends, python: str = sys.executable) -> dict[str, str]:
    """Install the three stand-ins into `pulumi_home` with the `pulumi` CLI; returns package -> version."""
    scripts = pulumi_home / "standin"
    scripts.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PULUMI_HOME": str(pulumi_home), "PULUMI_SKIP_UPDATE_CHECK": "true"}
    versions = {}
    for package in PACKAGES:
        version = versions[package] = sdk_version(package)
        path = scripts / f"pulumi-resource-{package}"
        path.write_text(script(package, version, backends, python))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        subprocess.run([str(pulumi), "plugin", "install", "resource", package, version, "--file", str(path)],
                       env=env, check=True, capture_output=True, timeout=120)
    return versions
