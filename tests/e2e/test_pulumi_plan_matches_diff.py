"""`tenancy diff --base` (offline) against what the real Pulumi engine plans, for each kind of catalogue or settings
edit, on the dev stack deployed by the engine (tests/e2e/engine_world.py).

The project copy is a git repository whose last commit is what is deployed. For each edit, in order (each starts
from the state the previous one left): the edit is made in the working tree; `python -m tenancy diff --stack dev
--base HEAD --format json` and the engine's `preview` (its steps from the engine events, ResourcePreEvent
metadata.op) must agree (tests/e2e/plan_compare.py: every delete or replace the engine plans is in the diff with the
same operation, every data-holding one in `destructive`, and the diff announces no create, delete or replace the
engine does not plan); then `up`, `preview` plans nothing, and the edit is committed as the next base.

Upstream behaviour relied on: pulumi/pulumi pkg/v3 resource/deploy/step_generator.go (a changed provider reference
replaces every resource under it; `protect` stops a delete); pulumi-kubernetes provider/pkg/provider/forcenew.go
(metadata.name/namespace replace); the aws/vault/random replace-versus-update facts the stand-ins and the diff both
take from the Terraform providers' schemas (tenancy/diff.py DATA_KINDS).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Callable

import pytest
import yaml

from tests.e2e.cassandra import cassandra  # noqa: F401 - the module-scoped Cassandra fixture
from tests.e2e.engine_world import World, engine_world, grant_registry_role
from tests.e2e.kube import PROJECT
from tests.e2e.plan_compare import compare
from tests.e2e.pulumi_engine import EngineFailed, engine_home
from tests.e2e.registry import create_table_cql
from components.registry_provider import COLUMN_TYPES, PARTITION_KEY

pytestmark = pytest.mark.pulumi_engine

STACK = "dev"
GIT = ["git", "-c", "user.name=tenancy-e2e", "-c", "user.email=e2e@tenancy.invalid"]


def _git(world: World, *args: str) -> None:
    subprocess.run([*GIT, "-C", str(world.project), *args], check=True, capture_output=True, timeout=60)


def _commit(world: World, message: str) -> None:
    _git(world, "add", "-A")
    _git(world, "commit", "-q", "--allow-empty", "-m", message)


@pytest.fixture(scope="module")
def world(engines, tmp_path_factory, cassandra):  # noqa: F811 - the fixture imported above
    grant_registry_role(cassandra)
    folder = tmp_path_factory.mktemp("pulumi-plan")
    with engine_home(folder / "pulumi") as home, \
            engine_world(STACK, folder, home, cassandra, engines, logs_name="pulumi-plan-dev") as deployed:
        _git(deployed, "init", "-q")
        deployed.engine.up()
        _commit(deployed, "deployed")
        yield deployed


def _config(world: World, change: Callable[[dict[str, Any]], None]) -> None:
    path = world.project / f"Pulumi.{STACK}.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _tenant(world: World, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    def edit(doc: dict[str, Any]) -> None:
        (entry,) = [t for t in doc["tenants"] if t["name"] == name]
        change(entry)
    world.edit_catalogue(edit)


def _add_tenant(world: World) -> None:
    def edit(doc: dict[str, Any]) -> None:
        (scratch,) = [t for t in doc["tenants"] if t["name"] == "scratch"]
        doc["tenants"].append({**scratch, "name": "extra", "displayName": "Extra",
                               "repo": {"url": "https://github.com/calypr/extra-workflows.git"}})
    world.edit_catalogue(edit)


def _rename(world: World) -> None:
    _tenant(world, "extra", lambda t: t.update(name="extra-renamed"))


def _remove(world: World) -> None:
    world.edit_catalogue(lambda doc: doc.update(tenants=[t for t in doc["tenants"] if t["name"] != "extra-renamed"]))


def _kube_context(world: World) -> None:
    """A second context of the kubeconfig naming the same cluster: the provider's context changes."""
    path = world.cluster.admin_kubeconfig
    config = yaml.safe_load(path.read_text())
    config["contexts"].append({"name": "e2e-moved", "context": dict(config["contexts"][0]["context"])})
    path.write_text(yaml.safe_dump(config))
    _config(world, lambda c: c["tenancy:kubernetes"].update(context="e2e-moved"))


def _registry_table(migrate: bool) -> Callable[[World], None]:
    def edit(world: World) -> None:
        registry = world.settings.registry
        old = f"{registry.keyspace}.{registry.table}"
        new = f"{registry.table}_v2"
        schema = {"columns": [{"name": n, "type": t} for n, t in COLUMN_TYPES],
                  "partitionKeys": [{"name": PARTITION_KEY}]}
        world.cassandra.admin_execute(create_table_cql(
            {"keyspaceName": registry.keyspace, "tableName": new, "schemaDefinition": schema}).replace(
            "CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
        _config(world, lambda c: c["tenancy:registry"].update(table=new, **({"migrateFrom": old} if migrate else {})))
    return edit


EDITS: dict[str, Callable[[World], None]] = {
    "add a tenant": _add_tenant,
    "suspend": lambda w: _tenant(w, "research", lambda t: t.update(lifecycle="suspended")),
    "reactivate": lambda w: _tenant(w, "research", lambda t: t.update(lifecycle="active")),
    "offboard": lambda w: _tenant(w, "scratch", lambda t: t.update(lifecycle="offboarded")),
    "rename": _rename,
    "remove": _remove,
    "region move": lambda w: _tenant(w, "research", lambda t: t.update(region="eu-west-1")),
    "aes256 to kms": lambda w: _tenant(w, "research", lambda t: t["artifacts"].update(encryption="kms")),
    "kms to aes256": lambda w: _tenant(w, "research", lambda t: t["artifacts"].update(encryption="aes256")),
    "keyPrefix": lambda w: _tenant(w, "research", lambda t: t["artifacts"].update(keyPrefix="research-v2/")),
    "MiniCluster off": lambda w: _tenant(w, "research", lambda t: t["minicluster"].update(enabled=False)),
    "supply chain off": lambda w: _tenant(w, "compliance", lambda t: t["supplyChain"].update(enabled=False)),
    "kubernetes context": _kube_context,
    "org": lambda w: _config(w, lambda c: c.update({"tenancy:org": "calypr2"})),
    "Vault mount path": lambda w: _config(w, lambda c: c["tenancy:vault"]["kvMount"].update(path="kv-dev-moved")),
    "registry table with migrateFrom": _registry_table(migrate=True),
}


def _diff(world: World) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "tenancy", "--project", str(world.project), "diff", "--stack", STACK,
                           "--base", "HEAD", "--format", "json", "--no-cache"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 2, 3), f"diff failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def test_registry_table_without_migrate_from_is_refused(world: World):
    """First, from the deployed state: a changed keyspace or table without `migrateFrom` would strand the rows, so
    the registry provider's `check` (components/registry_provider.py) refuses it and the engine changes nothing."""
    _registry_table(migrate=False)(world)
    try:
        with pytest.raises(EngineFailed) as refused:
            world.engine.preview()
        assert "migrateFrom" in str(refused.value), refused.value
    finally:
        _git(world, "checkout", "--", f"Pulumi.{STACK}.yaml")


@pytest.mark.parametrize("edit", list(EDITS))
def test_engine_plans_what_diff_reports(world: World, edit: str):
    EDITS[edit](world)
    diff = _diff(world)
    preview = world.engine.preview()
    problems = compare(diff, [(str(getattr(s.op, "value", s.op)), s.urn, s.type) for s in preview.steps()])
    world.engine.up()
    world.engine.preview(expect_no_changes=True)
    _commit(world, edit)
    assert not problems, "\n".join(problems)
