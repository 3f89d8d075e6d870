"""The upstream CRDs of the custom kinds tenancy emits, as `tools/engines/crds.sh` fetched them.

`make crds` downloads each project's published Go module at the version docs/compatibility.md names and copies its CRD
YAML into `.engines/crds/<project>-<version>/` (never into the repository); the MiniCluster CRD, whose Go module
the proxy refuses, is derived from the Flux Operator's PyPI SDK into `flux-operator-sdk-<version>/`
(tools/engines/minicluster_crd.py). Both the fast suite (`tests/schema_check.py`) and the e2e cluster
(`tests/e2e/kube.py`, which installs them) read them here.

The apiserver keeps only what a CRD's structural schema declares: with `fieldValidation=Strict` (kubectl's
default) an unknown field is refused, except below `x-kubernetes-preserve-unknown-fields` and inside
`additionalProperties` maps. `strict_schema` states that rule in JSON Schema so an offline validator refuses
exactly what the apiserver refuses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parent.parent
CRD_DIR = PROJECT / ".engines" / "crds"
MAKE_HINT = "run `make crds` (tools/engines/crds.sh) to fetch the upstream CRDs"

# Which upstream project publishes each API group tenancy uses (the prefix of its `.engines/crds` folder).
PROJECT_OF_GROUP = {
    "external-secrets.io": "external-secrets",
    "argoproj.io": "argo",  # argo-workflows and argo-cd share the group
    "config.ratify.deislabs.io": "ratify",
    "flux-framework.org": "flux-operator",
}


class CrdsMissing(RuntimeError):
    """The CRD folder has not been fetched."""


@dataclass(frozen=True)
class Crd:
    source: str                      # folder under .engines/crds, e.g. "ratify-v1.4.0"
    path: Path
    definition: dict[str, Any]       # the whole CustomResourceDefinition

    @property
    def name(self) -> str:
        return self.definition["metadata"]["name"]

    @property
    def group(self) -> str:
        return self.definition["spec"]["group"]

    @property
    def kind(self) -> str:
        return self.definition["spec"]["names"]["kind"]

    def served(self) -> dict[str, dict[str, Any]]:
        """Served version -> its openAPIV3Schema."""
        return {v["name"]: v["schema"]["openAPIV3Schema"]
                for v in self.definition["spec"]["versions"] if v.get("served")}


def _version_key(source: str) -> tuple:
    tail = source.rsplit("-", 1)[-1].lstrip("v")
    return tuple(int(p) if p.isdigit() else p for p in tail.split("."))


def definitions(path: Path) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions in one YAML file."""
    # libyaml where PyYAML has it: the 6.7 MB of CRDs parse in 1.6 s instead of 7 s, into the same documents.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(path.read_text(), Loader=loader)
            if doc and doc.get("kind") == "CustomResourceDefinition"]


@functools.lru_cache(maxsize=None)
def all_crds() -> tuple[Crd, ...]:
    if not CRD_DIR.is_dir() or not any(CRD_DIR.glob("*/.complete")):
        raise CrdsMissing(f"no CRDs under {CRD_DIR}: {MAKE_HINT}")
    found = []
    for folder in sorted((p.parent for p in CRD_DIR.glob("*/.complete")), key=lambda p: p.name):
        for path in sorted(folder.glob("*.yaml")):
            found += [Crd(folder.name, path, doc) for doc in definitions(path)]
    return tuple(found)


def unavailable() -> list[str]:
    """Folders crds.sh could not fetch because the Go module proxy does not serve that module."""
    listing = CRD_DIR / "unavailable.txt"
    return [line.split()[0] for line in listing.read_text().splitlines() if line.strip()] if listing.exists() else []


def unavailable_group(api_version: str) -> str | None:
    """The missing project folder when `api_version`'s group is published by a project crds.sh could not fetch."""
    project = PROJECT_OF_GROUP.get(api_version.rpartition("/")[0])
    missing = [s for s in unavailable() if project and s.startswith(project)]
    return ", ".join(missing) if missing and not schemas().get(api_version) else None


@functools.lru_cache(maxsize=None)
def schemas() -> dict[str, dict[str, list[tuple[str, dict[str, Any]]]]]:
    """apiVersion -> kind -> [(source folder, strict schema)] for every served version of every fetched CRD."""
    found: dict[str, dict[str, list]] = {}
    for crd in all_crds():
        for version, schema in crd.served().items():
            found.setdefault(f"{crd.group}/{version}", {}).setdefault(crd.kind, []).append(
                (crd.source, strict_schema(schema)))
    return found


def cluster_set() -> list[Crd]:
    """One definition per CRD name, from the newest fetched release, for installing into an apiserver."""
    chosen: dict[str, Crd] = {}
    for crd in all_crds():
        current = chosen.get(crd.name)
        if current is None or _version_key(crd.source) > _version_key(current.source):
            chosen[crd.name] = crd
    return sorted(chosen.values(), key=lambda c: c.name)


_OBJECT_META = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every object of its structural skeleton closed the way the apiserver closes it.

    Only the skeleton (properties, items, additionalProperties) is closed: in a structural schema the
    allOf/anyOf/oneOf/not branches only constrain fields the skeleton already declares. The root and every
    `x-kubernetes-embedded-resource` keep apiVersion, kind and metadata, which the apiserver validates itself.
    """
    root = _closed(schema)
    root["properties"] = {**root.get("properties", {}), **_OBJECT_META}
    return root


def _closed(node: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if isinstance(node.get("properties"), dict):
        node["properties"] = {k: _closed(v) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _closed(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _closed(node["additionalProperties"])
    if node.get("x-kubernetes-embedded-resource"):
        node["properties"] = {**node.get("properties", {}), **_OBJECT_META}
    is_object = node.get("type") == "object" or "properties" in node
    if is_object and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
    return node
