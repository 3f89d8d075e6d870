"""Fixtures of the e2e suite (`make e2e`): the engines `make engines` built, and clean clusters made of them.

- `engines` (session): paths of kube-apiserver, kube-controller-manager, etcd and the upstream CRDs.
- `start_cluster` (session): a callable returning a context manager that starts a clean etcd + kube-apiserver
  (+ kube-controller-manager) on free loopback ports, with the upstream CRDs installed, and stops them by PID.
- `cluster` (module): one such clean cluster per test module.
- `rendered` (session): a callable `rendered(stack) -> Path`, the output folder of `tenancy synth` for
  that stack, as `make synth STACK=<stack>` writes it.
- `deployed` (session, one per stack): that stack applied to its own clean cluster (`Deployed`).
- `two_orgs` (session): the dev stack and a second org's copy of it applied to one clean cluster (`Org` each).

The servers' logs of the last run are kept under `.engines/e2e-logs/<module>/` (for reading a failure).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components import naming, settings
from tests.e2e.kube import PROJECT, Cluster, Engines, install_platform_prerequisites, running_cluster

LOGS = PROJECT / ".engines" / "e2e-logs"


@pytest.fixture(scope="session")
def engines() -> Engines:
    try:
        return Engines.locate()
    except (FileNotFoundError, RuntimeError) as exc:  # crds.CrdsMissing is a RuntimeError
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def start_cluster(engines):
    def start(*, controller_manager: bool = True, crd_files=None, logs_name: str | None = None):
        keep = LOGS / logs_name if logs_name else None
        return running_cluster(engines, controller_manager=controller_manager, crd_files=crd_files,
                               keep_logs=keep)
    return start


@pytest.fixture(scope="module")
def cluster(request, start_cluster):
    name = request.module.__name__.rpartition(".")[2]
    with start_cluster(logs_name=name) as running:
        yield running


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """`rendered(stack)`: the folder `python -m tenancy synth --stack <stack>` wrote (cached per stack)."""
    root = tmp_path_factory.mktemp("synth")

    @functools.lru_cache(maxsize=None)
    def render(stack: str) -> Path:
        out = root / stack
        done = subprocess.run([sys.executable, "-m", "tenancy", "synth", "--stack", stack, "--out", str(out)],
                              cwd=PROJECT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"synth {stack} failed:\n{done.stdout}\n{done.stderr}"
        return out

    return render


STACKS = ("dev", "staging", "prod")


@dataclass
class Deployed:
    """One stack applied to its own clean cluster: what was sent, what the apiserver kept, what it refused."""
    stack: str
    cluster: Cluster
    out_dir: Path
    manifests: list[dict]
    stored: list[dict]
    refused: dict[tuple[str, str, str], str]   # (kind, namespace, name) -> why
    skipped: dict[tuple[str, str, str], str]   # CRD not fetchable here

    def of_kind(self, kind: str) -> list[dict]:
        return [m for m in self.manifests if m["kind"] == kind]

    def tenant_namespaces(self) -> list[dict]:
        """Rendered tenant Namespaces (labelled with their tenant; the platform's own namespaces are not)."""
        return [n for n in self.of_kind("Namespace") if naming.TENANT_LABEL in n["metadata"].get("labels", {})]


@pytest.fixture(scope="session", params=STACKS)
def deployed(request, start_cluster, rendered):
    """Each stack, rendered by synth and applied to a clean cluster (one cluster alive at a time)."""
    stack = request.param
    out = rendered(stack)
    manifests = [yaml.safe_load(p.read_text()) for p in sorted((out / "manifests").rglob("*.yaml"))]
    with start_cluster(logs_name=f"stack-{stack}") as cluster:
        install_platform_prerequisites(cluster, settings.load_stack(PROJECT, stack))
        stored, refused, skipped = cluster.apply_all(manifests)
        yield Deployed(stack, cluster, out, manifests, stored, refused, skipped)


# A second org beside the dev stack on one cluster: the dev stack's copy with another org, its own groups (an org's
# people are its own identity-provider groups), its own admission namespace and no Argo CD generator (one per
# Argo CD namespace): what components/coexistence.py lets two stacks share a cluster with.
SECOND_ORG = "acme"


@dataclass
class Org:
    """One org's stack as rendered, on the cluster it shares."""
    cluster: Cluster
    manifests: list[dict]
    of_kind = Deployed.of_kind
    tenant_namespaces = Deployed.tenant_namespaces


def second_org_project(tmp: Path) -> Path:
    from tests.e2e.project import project_copy

    def settings(config: dict) -> None:
        config["tenancy:org"] = SECOND_ORG
        config["tenancy:clusterAdminGroup"] = f"{SECOND_ORG}-{config['tenancy:clusterAdminGroup']}"
        config["tenancy:admission"] = {**config["tenancy:admission"], "namespace": f"tenancy-{SECOND_ORG}"}
        config["tenancy:argocd"] = {**config["tenancy:argocd"], "enabled": False}

    project = project_copy(tmp, "dev", settings=settings)
    catalogue = yaml.safe_load((project / "tenants.yaml").read_text())
    for entry in [catalogue.get("defaults", {}), *catalogue["tenants"]]:
        owners = entry.get("owners", {})
        for role in ("admins", "developers"):
            owners[role] = [f"{SECOND_ORG}-{group}" for group in owners.get(role, [])]
    (project / "tenants.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    return project


@pytest.fixture(scope="session")
def two_orgs(start_cluster, rendered, tmp_path_factory):
    """(org calypr's dev stack, org acme's copy of it), applied to one clean cluster; neither writes an object
    of the other."""
    from tests.e2e.project import synth

    tmp = tmp_path_factory.mktemp("second-org")
    _, theirs = synth(second_org_project(tmp), "dev", tmp / "out")
    ours = [yaml.safe_load(p.read_text()) for p in sorted((rendered("dev") / "manifests").rglob("*.yaml"))]
    key = lambda m: (m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"])  # noqa: E731
    assert {key(m) for m in ours} & {key(m) for m in theirs} == set()
    with start_cluster(logs_name="two-orgs") as cluster:
        # Both orgs' stacks share the one platform (Argo CD's namespace, kube-system): made once, as a platform would.
        install_platform_prerequisites(cluster, settings.load_stack(PROJECT, "dev"))
        cluster.apply_all(ours + theirs)
        yield Org(cluster, ours), Org(cluster, theirs)
