"""Pure builders for the AWS documents a tenant's storage needs: IAM, bucket policy, trust policy, lifecycle.

Builders take concrete strings (components call them inside `Output.all(...).apply(...)`) and return plain,
JSON-serialisable dicts, so the same documents are asserted in unit tests and loaded into moto for the
isolation tests. No document here grants a `*` action or a `*` resource.
"""

from __future__ import annotations

from typing import Any, Optional

VERSION = "2012-10-17"
STS_AUDIENCE = "sts.amazonaws.com"
# Multipart uploads that never complete keep billing for their parts and are invisible to listings.
ABORT_INCOMPLETE_UPLOAD_DAYS = 7


def object_arn(bucket_arn: str, key_prefix: str) -> str:
    """ARN pattern of every object under `key_prefix` (which ends with '/', so siblings never match)."""
    return f"{bucket_arn}/{key_prefix}*"


def artifact_access_policy(
    bucket_arn: str, key_prefix: str, *, allow_delete: bool, kms_key_arn: Optional[str] = None
) -> dict[str, Any]:
    """The one least-privilege identity policy for a tenant's artifacts, for an IAM user or an IRSA role.

    `allow_delete` is the tenant's `artifacts.garbageCollection`: only Argo's artifact GC needs DeleteObject.
    """
    object_actions = ["s3:GetObject", "s3:PutObject", *(["s3:DeleteObject"] if allow_delete else [])]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListOwnPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            # Without the prefix condition a tenant could enumerate every key other workloads wrote to the bucket.
            "Condition": {"StringLike": {"s3:prefix": [f"{key_prefix}*"]}},
        },
        {"Sid": "LocateBucket", "Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": bucket_arn},
        {
            "Sid": "ReadWriteOwnPrefix",
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": object_arn(bucket_arn, key_prefix),
        },
    ]
    if kms_key_arn:
        # What an SSE-KMS client needs, and only through S3 for this bucket: GenerateDataKey to write, Decrypt to
        # read (Amazon S3 User Guide, "Using server-side encryption with AWS KMS keys": "you need
        # kms:GenerateDataKey and kms:Decrypt permissions on the key"); never kms:Encrypt, which S3 does not call.
        # kms:ViaService keeps the key from being used directly (AWS KMS Developer Guide, "AWS KMS condition
        # keys"); the encryption context S3 sends is the bucket ARN with an S3 Bucket Key and the object ARN
        # without one, so a key shared by mistake still opens nothing outside the tenant's bucket and prefix.
        statements.append(
            {
                "Sid": "UseOwnKey",
                "Effect": "Allow",
                "Action": list(S3_KMS_ACTIONS),
                "Resource": kms_key_arn,
                "Condition": _via_s3(kms_key_arn, bucket_arn, key_prefix),
            }
        )
    return {"Version": VERSION, "Statement": statements}


# The KMS calls S3 makes with the caller's credentials for SSE-KMS objects.
S3_KMS_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# What the deploying account does to a tenant key: pulumi-aws's Key, KeyPolicy and Alias lifecycle (create,
# read, rotate, tag, delete) and grant hygiene. No cryptographic operation.
KMS_ADMIN_ACTIONS = (
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:ListResourceTags",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateKeyDescription",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:ListGrants",
    "kms:RevokeGrant",
)


def _arn_parts(kms_key_arn: str) -> tuple[str, str]:
    """(region, account) of a KMS key ARN, arn:aws:kms:<region>:<account>:key/<id>."""
    parts = kms_key_arn.split(":")
    return parts[3], parts[4]


def _via_s3(kms_key_arn: str, bucket_arn: str, key_prefix: Optional[str] = None) -> dict[str, Any]:
    region, _ = _arn_parts(kms_key_arn)
    context = [bucket_arn, object_arn(bucket_arn, key_prefix) if key_prefix is not None else f"{bucket_arn}/*"]
    return {
        "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": context},
    }


def kms_key_policy(kms_key_arn: str, bucket_arn: str) -> dict[str, Any]:
    """The tenant key's own policy, stated rather than AWS's default (which lets any IAM policy of the account
    grant every KMS action on it): the account administers the key, and may use it only through S3 for the
    tenant's bucket, so no identity policy, however broad, can encrypt or decrypt with it directly."""
    _, account = _arn_parts(kms_key_arn)
    account_root = {"AWS": f"arn:aws:iam::{account}:root"}
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "AccountAdministersKey",
                "Effect": "Allow",
                "Principal": account_root,
                "Action": list(KMS_ADMIN_ACTIONS),
                "Resource": kms_key_arn,
            },
            {
                "Sid": "AccountUsesKeyThroughS3Only",
                "Effect": "Allow",
                "Principal": account_root,
                "Action": list(S3_KMS_ACTIONS),
                "Resource": kms_key_arn,
                "Condition": _via_s3(kms_key_arn, bucket_arn),
            },
        ],
    }


def tls_only_bucket_policy(bucket_arn: str) -> dict[str, Any]:
    """Deny every request that does not use TLS, on the bucket and its objects; grants nothing."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def irsa_trust_policy(oidc_provider_arn: str, issuer: str, namespace: str, service_account: str) -> dict[str, Any]:
    """Trust for exactly one service account of one namespace, with tokens minted for STS only."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": STS_AUDIENCE,
                    }
                },
            }
        ],
    }


def registry_read_policy(table_arn: str) -> dict[str, Any]:
    """What the Argo CD generator may do: read the registry table, and the system keyspaces the Cassandra
    driver reads while connecting (AWS's documented pattern for Keyspaces clients)."""
    account_scope = table_arn.split("/keyspace/", 1)[0]
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "ReadTenantRegistry",
                "Effect": "Allow",
                "Action": ["cassandra:Select"],
                "Resource": [table_arn, f"{account_scope}/keyspace/system*"],
            }
        ],
    }


def suspended_trust_policy(oidc_provider_arn: str) -> dict[str, Any]:
    """Trust for a suspended tenant's role: its service account can no longer assume it.

    An explicit Deny rather than deleting the role keeps the role (and the ARN its ServiceAccount names) for
    resumption, while no token from the cluster's OIDC provider can assume it.
    """
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
            }
        ],
    }


def lifecycle_rules(
    storage_class: str, *, noncurrent_expire_days: int, archive_after_days: int, expire_after_days: int
) -> list[dict[str, Any]]:
    """`BucketLifecycleConfiguration` rules (Pulumi input shape) for a tenant's `artifacts.storageClass`.

    Noncurrent versions expire in every class, not only `standard`: overwritten archive objects and the
    delete markers temporary expiry leaves behind would otherwise be kept (and billed) forever.
    """
    whole_bucket = {"prefix": ""}
    rules: list[dict[str, Any]] = [
        {
            "id": "abort-incomplete-uploads",
            "status": "Enabled",
            "filter": whole_bucket,
            "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_INCOMPLETE_UPLOAD_DAYS},
        },
        {
            "id": "expire-noncurrent-versions",
            "status": "Enabled",
            "filter": whole_bucket,
            "noncurrent_version_expiration": {"noncurrent_days": noncurrent_expire_days},
        },
    ]
    if storage_class == "archive":
        rules.append(
            {
                "id": "archive",
                "status": "Enabled",
                "filter": whole_bucket,
                "transitions": [{"days": archive_after_days, "storage_class": "GLACIER"}],
            }
        )
    elif storage_class == "temporary":
        rules.append(
            {"id": "expire", "status": "Enabled", "filter": whole_bucket, "expiration": {"days": expire_after_days}}
        )
    elif storage_class != "standard":
        raise ValueError(f"unknown storage class {storage_class!r}")
    return rules
