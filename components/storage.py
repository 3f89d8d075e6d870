"""Tenant storage on AWS: the artifact bucket, its hardening, the optional KMS key, and the identity Argo uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi


@dataclass(frozen=True)
class ArtifactAccess:
    """What the rest of a tenant needs to know about its artifact storage.

    Exactly one of (role_arn) or (access_key_id, secret_access_key) is set, by `artifacts.credentials`.
    The static key pair is always a Pulumi secret.
    """

    bucket: pulumi.Output[str]
    region: str
    kms_key_arn: Optional[pulumi.Output[str]]
    role_arn: Optional[pulumi.Output[str]]
    access_key_id: Optional[pulumi.Output[str]]
    secret_access_key: Optional[pulumi.Output[str]]
