"""Validate a Kubernetes manifest the way the API server would, offline.

Core kinds go through `kubernetes_validate` in strict mode (unknown fields fail). Custom resources go
through the OpenAPI v3 schemas kept in `schemas/`: each file names the kinds it covers in
`x-kubernetes-group-version-kind`, as CRDs do, and closes its objects with `additionalProperties: false`.
A custom kind without a schema is an error, so emitting a new kind forces adding its schema.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
from openapi_schema_validator import OAS30Validator

from components import synth

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
KUBERNETES_VERSION = "1.33"


@functools.lru_cache(maxsize=None)
def custom_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> schema, for every schema file that declares its group/version/kind."""
    found = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk.get("group") else gvk["version"]
            found[(api_version, gvk["kind"])] = schema
    return found


def _unmasked(value: Any) -> Any:
    # Synth records a secret input as the string "[secret]" whatever its real shape (a Secret's whole
    # stringData map, say); its shape is unknowable offline, so it is left out rather than misjudged.
    if isinstance(value, dict):
        return {k: _unmasked(v) for k, v in value.items() if v != synth.SECRET}
    if isinstance(value, list):
        return [_unmasked(v) for v in value]
    return value


def problems(manifest: dict[str, Any]) -> list[str]:
    """Every reason the API server would refuse `manifest`; empty when it is valid."""
    manifest = _unmasked(manifest)
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    schema = custom_schemas().get(key)
    if schema is not None:
        validator = OAS30Validator(schema)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.path)))]
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]}: add one to schemas/"]
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path)) or '<root>'}: {exc.message}"]
    return []
