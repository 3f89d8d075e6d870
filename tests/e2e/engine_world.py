"""Everything one stack's `pulumi up` meets, for the engine tests and bench/engine.py: a fresh cluster with the
platform's prerequisites, OpenBao, moto, the registry on Cassandra, a project copy whose settings name them, and
the Automation API stack of that copy (tests/e2e/pulumi_engine.py).

Only inputs change in the copy (tests/e2e/project.py): the kube context (`e2e`, the test kubeconfig's), Vault's
address and CA and the Kubernetes host Vault calls back (tests/e2e/eso.py `project_for`), and the registry's CQL
endpoint and service-specific credential (its password as a secret config value, set the way a user sets it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import yaml

from components import catalogue, settings
from components.naming import TenantNames
from components.registry_provider import COLUMN_TYPES, PARTITION_KEY
from tests.e2e import eso, standin
from tests.e2e.cassandra import Cassandra
from tests.e2e.kube import Cluster, Engines, running_cluster
from tests.e2e.moto_server import Moto, moto_server
from tests.e2e.registry import create_table_cql
from tests.e2e.pulumi_engine import LOGS, EngineStack, PulumiHome, cli

STACKS = ("dev", "staging", "prod")
KUBE_CONTEXT = "e2e"


@dataclass
class World:
    stack: str
    folder: Path
    project: Path
    cluster: Cluster
    bao: eso.OpenBao
    moto: Moto
    cassandra: Cassandra
    engine: EngineStack
    settings: settings.StackSettings

    def tenants(self) -> dict[str, TenantNames]:
        """The stack's tenants in the copy's catalogue as it is now, by name."""
        cat = catalogue.load(self.project / "tenants.yaml", stacks=STACKS)
        return {spec.name: names for spec, names in cat.for_stack(self.settings)}

    def edit_catalogue(self, change: Callable[[dict[str, Any]], None]) -> None:
        path = self.project / "tenants.yaml"
        doc = yaml.safe_load(path.read_text())
        change(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def set_lifecycle(self, tenant: str, lifecycle: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            (entry,) = [t for t in doc["tenants"] if t["name"] == tenant]
            entry["lifecycle"] = lifecycle
        self.edit_catalogue(change)


def e2e_settings(cassandra: Cassandra) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["tenancy:kubernetes"]["context"] = KUBE_CONTEXT
        # The test cluster runs no kubelet: the generator's rollout can never complete.
        config["tenancy:argocd"]["awaitRollout"] = False
        config["tenancy:registry"].update({
            "auth": "service-specific", "username": cassandra.username,
            "endpoint": {"host": cassandra.host, "port": cassandra.port, "caCertFile": "e2e-certs/cassandra-ca.pem"}})
    return change


def platform_prerequisites(cluster: Cluster, bao: eso.OpenBao, cassandra: Cassandra,
                           stack_settings: settings.StackSettings) -> None:
    """What the platform team provides before tenancy's first `up`: the Argo CD namespace (Argo CD installs into
    it); the registry's keyspace and table on the endpoint (`tenancy:registry.endpoint`: tenancy creates no
    Keyspaces resources there), with the columns and key the program writes; and where the stack adopts them
    (`create: false`) the kv-v2 mount and the Kubernetes auth backend."""
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": stack_settings.argocd.namespace}})
    registry = stack_settings.registry
    schema = {"columns": [{"name": n, "type": t} for n, t in COLUMN_TYPES], "partitionKeys": [{"name": PARTITION_KEY}]}
    cassandra.admin_execute(
        # Keyspaces' SingleRegionStrategy replicates three times in the region; one node has one replica.
        f"CREATE KEYSPACE IF NOT EXISTS \"{registry.keyspace}\" WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', '{cassandra.datacenter}': 1}}",
        create_table_cql({"keyspaceName": registry.keyspace, "tableName": registry.table, "schemaDefinition": schema}
                         ).replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
    vault = stack_settings.vault
    if not vault.kv_mount.create:
        bao.client.sys.enable_secrets_engine("kv", path=vault.kv_mount.path, options={"version": "2"})
    if not vault.kubernetes_auth.create:
        bao.client.sys.enable_auth_method("kubernetes", path=vault.kubernetes_auth.path)
        bao.client.write(f"auth/{vault.kubernetes_auth.path}/config", kubernetes_host=cluster.url,
                         kubernetes_ca_cert=cluster.ca_file.read_text())


def grant_registry_role(cassandra: Cassandra) -> None:
    """The registry's service-specific credential may manage rows of any keyspace the stacks create, as the
    deployer's IAM policy allows on Amazon Keyspaces."""
    cassandra.admin_execute(f"GRANT MODIFY ON ALL KEYSPACES TO {cassandra.username}",
                            f"GRANT SELECT ON ALL KEYSPACES TO {cassandra.username}")


@contextlib.contextmanager
def engine_world(stack: str, folder: Path, home: PulumiHome, cassandra: Cassandra, engines: Engines, *,
                 keep_tenants: Optional[set[str]] = None, logs_name: Optional[str] = None) -> Iterator[World]:
    """One stack's world; `keep_tenants` leaves only those tenants in the copy's catalogue. The engine's and the
    cluster's logs are kept in `.engines/e2e-logs/<logs_name>/` (default `pulumi-<stack>`)."""
    logs = LOGS / (logs_name or f"pulumi-{stack}")
    with running_cluster(engines, keep_logs=logs / "cluster") as cluster, \
            eso.openbao_tls(folder) as bao, moto_server(folder) as moto:
        project = eso.project_for(folder, stack, vault_url=bao.url, vault_ca=bao.ca_file, kube_url=cluster.url,
                                  kube_ca=cluster.ca_file, settings=e2e_settings(cassandra))
        (project / "e2e-certs" / "cassandra-ca.pem").write_text(cassandra.ca_file.read_text())
        backends = standin.Backends(
            aws_endpoint=moto.url, vault_address=bao.url, vault_token=eso.ROOT_TOKEN, cql_host=cassandra.host,
            cql_port=cassandra.port, cql_ca_file=cassandra.ca_file, cql_username=cassandra.username,
            cql_password=cassandra.password)
        # `pulumi plugin install` keeps a version already installed, so the launcher of the home's first stack
        # stays: each stack's backends reach the stand-ins through the engine's environment, which wins.
        standin.install(home.folder, cli(), backends)
        engine = EngineStack.open(project, stack, home, folder / "backend", logs / "engine", env={
            **backends.environment(),
            "KUBECONFIG": str(cluster.admin_kubeconfig),
            # The registry rows' provider is pickled by reference (dill): the dynamic provider plugin imports
            # components.registry_provider from the project, as the language host's plugin would.
            "PYTHONPATH": str(project),
            # OpenBao's CA for the vault stand-in's HTTPS client (Python's default context reads SSL_CERT_FILE);
            # the other TLS peers are named with their own CA (kubeconfig, the registry's caCertFile).
            "SSL_CERT_FILE": str(bao.ca_file)})
        engine.set_secret(settings.REGISTRY_PASSWORD_KEY, cassandra.password)
        stack_settings = settings.load_stack(project, stack)
        platform_prerequisites(cluster, bao, cassandra, stack_settings)
        world = World(stack, folder, project, cluster, bao, moto, cassandra, engine, stack_settings)
        if keep_tenants is not None:
            world.edit_catalogue(lambda doc: doc.update(tenants=[t for t in doc["tenants"]
                                                                 if t["name"] in keep_tenants]))
        try:
            yield world
        finally:
            engine.stop()
