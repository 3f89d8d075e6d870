"""Every rendered Ratify object against the CRDs Ratify v1.4.0 installs, with strict field validation.

The CRDs are read at test time from the ratify module in the Go module cache (`go mod download`,
github.com/ratify-project/ratify@v1.4.0, config/crd/bases/config.ratify.deislabs.io_namespaced*.yaml), never
committed. The check is what the API server does with `fieldValidation=Strict` (kubectl's default): an unknown
field is an error except below `x-kubernetes-preserve-unknown-fields`, required fields must be present.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import ratify
from tests.conftest import sample

RATIFY_MODULE = "github.com/ratify-project/ratify@v1.4.0"
STACKS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    """kind -> openAPIV3Schema of the served v1beta1 version."""
    go = shutil.which("go")
    if go is None:
        pytest.skip(f"`go` is not installed: the Ratify CRDs are read from {RATIFY_MODULE} in the Go module cache")
    done = subprocess.run([go, "mod", "download", "-json", RATIFY_MODULE], capture_output=True, text=True,
                          timeout=600, check=True)
    bases = Path(json.loads(done.stdout)["Dir"]) / "config" / "crd" / "bases"
    found = {}
    for path in bases.glob("config.ratify.deislabs.io_namespaced*.yaml"):
        crd = yaml.safe_load(path.read_text())
        [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1" and v["served"]]
        found[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return found


def strict_problems(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        problems = [f"{path}.{key}: required" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                problems += strict_problems(properties[key], item, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += strict_problems(schema["additionalProperties"], item, f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                problems.append(f'{path}.{key}: unknown field "{key}"')
        return problems
    if kind == "array":
        return [p for i, item in enumerate(value) for p in strict_problems(schema.get("items", {}), item, f"{path}[{i}]")] \
            if isinstance(value, list) else [f"{path}: not an array"]
    if kind == "string":
        ok = isinstance(value, str) and value in schema.get("enum", [value])
        return [] if ok else [f"{path}: {value!r} is not an allowed string"]
    return []


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_ratify_object_passes_the_v1_4_crd(crds, stack):
    objects = [m for _, m in sample(stack).manifests() if m["apiVersion"] == ratify.RATIFY_API]
    assert {m["kind"] for m in objects} == {"NamespacedKeyManagementProvider", "NamespacedVerifier",
                                            "NamespacedStore", "NamespacedPolicy"}
    for manifest in objects:
        body = {k: v for k, v in manifest.items() if k != "metadata"}
        assert strict_problems(crds[manifest["kind"]], body) == [], manifest["kind"]


def test_the_check_rejects_the_store_type_tenancy_used_to_render(crds):
    store = {"apiVersion": ratify.RATIFY_API, "kind": "NamespacedStore",
             "spec": {"name": "oras", "type": "oras", "parameters": {}}}
    assert strict_problems(crds["NamespacedStore"], store) == ['.spec.type: unknown field "type"']


def test_hand_kept_schemas_agree_with_the_crd_on_the_store_type(crds):
    """schemas/ratify-namespacedstore.json (used by `make test` without Go) refuses what the CRD refuses."""
    from tests import schema_check
    store = {"apiVersion": ratify.RATIFY_API, "kind": "NamespacedStore",
             "metadata": {"name": "store-oras", "namespace": "wf-x"},
             "spec": {"name": "oras", "type": "oras", "parameters": {}}}
    assert any("'type' was unexpected" in p for p in schema_check.problems(store))
