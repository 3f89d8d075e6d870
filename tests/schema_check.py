"""Validate a Kubernetes manifest the way the API server would, offline.

Core kinds go through `kubernetes_validate` in strict mode (unknown fields fail). Custom resources go through
the upstream projects' own CRDs (`tests/crds.py`, fetched by `make crds` from their Go modules): the
openAPIV3Schema of every served version, closed the way the apiserver's strict field validation closes it.
A custom kind no fetched CRD serves is an error, so emitting a new kind forces fetching its CRD.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
from openapi_schema_validator import OAS30Validator

from tenancy import synth
from tests import crds

KUBERNETES_VERSION = "1.33"


def _unmasked(value: Any) -> Any:
    # Synth records a secret input as the string "[secret]" whatever its real shape (a Secret's whole
    # stringData map, say); its shape is unknowable offline, so it is left out rather than misjudged.
    if isinstance(value, dict):
        return {k: _unmasked(v) for k, v in value.items() if v != synth.SECRET}
    if isinstance(value, list):
        return [_unmasked(v) for v in value]
    return value


def is_custom(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def problems(manifest: dict[str, Any]) -> list[str]:
    """Every reason the API server would refuse `manifest`; empty when it is valid."""
    manifest = _unmasked(manifest)
    api_version, kind = manifest.get("apiVersion", ""), manifest.get("kind", "")
    if is_custom(api_version):
        served = crds.schemas().get(api_version, {}).get(kind)
        if not served:
            return [f"no CRD serves {api_version} {kind}: add its project to tools/engines/crds.sh"]
        found = []
        for source, schema in served:
            errors = sorted(OAS30Validator(schema).iter_errors(manifest), key=lambda e: list(map(str, e.path)))
            found += [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message} ({source})" for e in errors]
        return found
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {api_version} {kind} in Kubernetes {KUBERNETES_VERSION}"]
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path)) or '<root>'}: {exc.message}"]
    return []
