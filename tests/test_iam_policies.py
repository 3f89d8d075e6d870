"""The pure AWS document builders: least privilege, TLS-only, pinned IRSA trust, lifecycle per storage class."""

from __future__ import annotations

import json

import pytest

from components import iam_policies

BUCKET_ARN = "arn:aws:s3:::calypr-research-dev-artifacts"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OIDC_ARN = "arn:aws:iam::444455556666:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC"
ISSUER = "oidc.eks.us-west-2.amazonaws.com/id/ABC"


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _statements(document):
    # Round-trip through JSON: what AWS receives is the serialised form.
    return json.loads(json.dumps(document))["Statement"]


def _granted(document):
    """(action, resource) pairs every Allow statement grants."""
    return {(a, r) for s in _statements(document) if s["Effect"] == "Allow"
            for a in _as_list(s["Action"]) for r in _as_list(s["Resource"])}


def all_documents():
    return [
        iam_policies.artifact_access_policy(BUCKET_ARN, "research/", allow_delete=True, kms_key_arn=KEY_ARN),
        iam_policies.artifact_access_policy(BUCKET_ARN, "research/", allow_delete=False),
        iam_policies.tls_only_bucket_policy(BUCKET_ARN),
        iam_policies.irsa_trust_policy(OIDC_ARN, ISSUER, "wf-calypr-research", "wf-runner"),
        iam_policies.kms_key_policy(KEY_ARN, BUCKET_ARN),
    ]


@pytest.mark.parametrize("document", all_documents())
def test_no_document_has_a_wildcard_action_or_resource(document):
    for statement in _statements(document):
        assert "*" not in _as_list(statement["Action"])
        assert "*" not in _as_list(statement.get("Resource", []))
        assert not any(a.endswith(":*") for a in _as_list(statement["Action"])) or statement["Effect"] == "Deny"


def test_access_policy_grants_exactly_the_tenant_prefix():
    document = iam_policies.artifact_access_policy(BUCKET_ARN, "research/", allow_delete=False)
    assert _granted(document) == {
        ("s3:ListBucket", BUCKET_ARN),
        ("s3:GetBucketLocation", BUCKET_ARN),
        ("s3:GetObject", f"{BUCKET_ARN}/research/*"),
        ("s3:PutObject", f"{BUCKET_ARN}/research/*"),
    }


def test_listing_is_limited_to_the_prefix():
    document = iam_policies.artifact_access_policy(BUCKET_ARN, "research/", allow_delete=False)
    listing = [s for s in _statements(document) if s["Action"] == "s3:ListBucket"]
    assert len(listing) == 1
    assert listing[0]["Condition"] == {"StringLike": {"s3:prefix": ["research/*"]}}


def test_delete_only_with_garbage_collection():
    without = iam_policies.artifact_access_policy(BUCKET_ARN, "research/", allow_delete=False)
    with_gc = iam_policies.artifact_access_policy(BUCKET_ARN, "research/", allow_delete=True)
    assert not any(a == "s3:DeleteObject" for a, _ in _granted(without))
    assert ("s3:DeleteObject", f"{BUCKET_ARN}/research/*") in _granted(with_gc)


def test_kms_grant_names_only_the_tenant_key():
    """Amazon S3 User Guide, "Using server-side encryption with AWS KMS keys (SSE-KMS)": to upload or download an
    SSE-KMS object a client needs kms:GenerateDataKey and kms:Decrypt on the key; S3 never calls kms:Encrypt for
    it. AWS KMS Developer Guide, "AWS KMS condition keys": kms:ViaService limits use to requests S3 makes on the
    caller's behalf, kms:EncryptionContext:aws:s3:arn to the bucket (S3 Bucket Keys) and the tenant's objects."""
    document = iam_policies.artifact_access_policy(BUCKET_ARN, "compliance/", allow_delete=False, kms_key_arn=KEY_ARN)
    kms = {(a, r) for a, r in _granted(document) if a.startswith("kms:")}
    assert kms == {("kms:Decrypt", KEY_ARN), ("kms:GenerateDataKey", KEY_ARN)}
    (statement,) = [s for s in _statements(document) if s["Sid"] == "UseOwnKey"]
    assert statement["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [BUCKET_ARN, f"{BUCKET_ARN}/compliance/*"]}}


def test_the_key_policy_lets_the_account_use_the_key_only_through_s3_for_the_bucket():
    """Without an explicit key policy AWS's default gives the account every KMS action, so any identity policy
    (an admin's, a leaked role's) could decrypt with the tenant key directly, outside S3."""
    document = iam_policies.kms_key_policy(KEY_ARN, BUCKET_ARN)
    root = {"AWS": "arn:aws:iam::123456789012:root"}
    statements = _statements(document)
    assert all(s["Principal"] == root and s["Resource"] == KEY_ARN and s["Effect"] == "Allow" for s in statements)
    use = [s for s in statements if {"kms:Decrypt", "kms:GenerateDataKey"} & set(_as_list(s["Action"]))]
    assert len(use) == 1 and set(use[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert use[0]["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert use[0]["Condition"]["StringLike"] == {"kms:EncryptionContext:aws:s3:arn": [BUCKET_ARN, f"{BUCKET_ARN}/*"]}
    granted = {a for s in statements for a in _as_list(s["Action"])}
    assert not granted & {"kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:CreateGrant", "kms:*"}
    assert "kms:PutKeyPolicy" in granted  # the account can still change the policy: no lockout
    no_key = iam_policies.artifact_access_policy(BUCKET_ARN, "compliance/", allow_delete=False)
    assert not any(a.startswith("kms:") for a, _ in _granted(no_key))


def test_sibling_prefix_is_not_covered():
    # "research/" must not also grant "research-old/...": the trailing '/' is part of the pattern.
    document = iam_policies.artifact_access_policy(BUCKET_ARN, "research/", allow_delete=False)
    object_resources = {r for a, r in _granted(document) if a == "s3:GetObject"}
    assert object_resources == {f"{BUCKET_ARN}/research/*"}


def test_tls_policy_denies_insecure_transport_and_grants_nothing():
    (statement,) = _statements(iam_policies.tls_only_bucket_policy(BUCKET_ARN))
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert set(statement["Resource"]) == {BUCKET_ARN, f"{BUCKET_ARN}/*"}
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_irsa_trust_pins_subject_and_audience():
    (statement,) = _statements(iam_policies.irsa_trust_policy(OIDC_ARN, ISSUER, "wf-calypr-research", "wf-runner"))
    assert statement["Principal"] == {"Federated": OIDC_ARN}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {"StringEquals": {
        f"{ISSUER}:sub": "system:serviceaccount:wf-calypr-research:wf-runner",
        f"{ISSUER}:aud": "sts.amazonaws.com",
    }}
    assert "StringLike" not in statement["Condition"]


def _rules(storage_class):
    return {r["id"]: r for r in iam_policies.lifecycle_rules(
        storage_class, noncurrent_expire_days=30, archive_after_days=60, expire_after_days=7)}


@pytest.mark.parametrize("storage_class", ["standard", "archive", "temporary"])
def test_every_class_aborts_uploads_and_expires_noncurrent_versions(storage_class):
    rules = _rules(storage_class)
    assert rules["abort-incomplete-uploads"]["abort_incomplete_multipart_upload"] == {"days_after_initiation": 7}
    assert rules["expire-noncurrent-versions"]["noncurrent_version_expiration"] == {"noncurrent_days": 30}
    assert all(r["status"] == "Enabled" for r in rules.values())


def test_storage_class_rules():
    assert set(_rules("standard")) == {"abort-incomplete-uploads", "expire-noncurrent-versions"}
    assert _rules("archive")["archive"]["transitions"] == [{"days": 60, "storage_class": "GLACIER"}]
    assert "expiration" not in _rules("archive")["archive"]
    assert _rules("temporary")["expire"]["expiration"] == {"days": 7}


def test_unknown_storage_class_is_refused():
    with pytest.raises(ValueError):
        iam_policies.lifecycle_rules("infrequent", noncurrent_expire_days=1, archive_after_days=1, expire_after_days=1)
