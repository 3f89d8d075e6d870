"""The images tenancy itself runs in a tenant's namespace, and an image as the registry allow-list reads it.

A tenant's `allowed.registries` is enforced on every pod of its namespace by the `allowed-registries` admission
policy (admission.py), the pods tenancy templates included: a list that leaves out their registries would let the
stack deploy and then refuse every workflow or MiniCluster pod. The catalogue refuses such a list instead
(`catalogue.registry_problems`), reading images exactly as the policy's CEL does (`qualified`, `admitted`).
"""

from __future__ import annotations

import re

from .problems import shown

# The main container of the tenant's WorkflowTemplate (argo.py).
NEXTFLOW_IMAGE = "docker.io/nextflow/nextflow:24.10.4"
# The init container Flux Operator 0.2.x adds to every MiniCluster pod to bring Flux into the application
# container: `spec.flux.container.image`, which tenancy leaves to the operator's default
# (flux-framework/flux-operator 0.2.0 and 0.2.1 api/v1alpha2/minicluster_types.go, `Flux.Container.Image`).
# 0.1.x (v1alpha1) has no such container: Flux comes with the application image.
FLUX_VIEW_IMAGE = "ghcr.io/converged-computing/flux-view-rocky:tag-9"


# The MiniCluster's default application image. A release version (flux-framework/flux-restful-api CHANGELOG.md,
# 0.1.14), never `latest`: a mutable tag runs whatever was pushed last. Neither this tag nor a digest of it could be
# verified from here (ghcr.io is unreachable); pin `minicluster.image` by digest where the registry is reachable.
FLUX_RESTFUL_IMAGE = "ghcr.io/flux-framework/flux-restful-api:0.1.14"

# A tag that names a release: digits first (`24.10.4`, `v3.7.9`, `0.1.14-rocky`), unlike `latest`, `main` or
# `tag-9`, which a registry moves from build to build.
_VERSION_TAG = re.compile(r"^v?[0-9]+(\.[0-9]+)*([.+_-][A-Za-z0-9._-]*)?$")

# An image reference: a name with optional registry host (and port), tag and digest.
_REFERENCE = re.compile(
    r"^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
    r"|^[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)


def check_reference(value: str) -> str:
    """Validator for image settings and catalogue fields."""
    if not _REFERENCE.match(value):
        raise ValueError(f"{shown(value)} is not a container image reference")
    return value


def pin_problem(image: str) -> str | None:
    """Why `image` is not pinned (neither a @sha256: digest nor a version tag), or None."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if _VERSION_TAG.match(tag):
        return None
    return (
        f"{shown(image)} {f'has the mutable tag {tag!r}' if tag else 'has no tag (Docker reads `latest`)'}; "
        "give a version tag or a @sha256: digest (this stack sets tenancy:pinnedImages)"
    )


def qualified(image: str) -> str:
    """The image as the allow-list compares it, as the policy's `qualified` variable spells it: a name without a
    registry host is Docker Hub's (`nginx` is `docker.io/library/nginx`, `team/tool` is `docker.io/team/tool`);
    the first part is a host when it has a dot or a port or is `localhost`."""
    if "/" not in image:
        return f"docker.io/library/{image}"
    first = image.split("/")[0]
    return image if ("." in first or ":" in first or first == "localhost") else f"docker.io/{image}"


def admitted(image: str, registries: list[str]) -> bool:
    """Whether the policy admits `image` under `registries` (an empty list restricts nothing)."""
    name = qualified(image)
    return not registries or any(name.startswith(registry + "/") for registry in registries)
