"""Tenant isolation on a real policy engine: moto with IAM enforcement, using the documents the program renders.

moto evaluates identity policies by Action and Resource but ignores Conditions, never grants through bucket
policies and lets a TLS-deny bucket policy block every call. So the buckets here carry no bucket policy, and
the conditions (ListBucket prefix, SecureTransport) are asserted from the JSON the program registered.
"""

from __future__ import annotations

import itertools
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import enable_iam_authentication
from moto.core.authorization import disable_iam_authentication

from components import catalogue, iam_policies, settings

from .conftest import PROJECT, SAMPLE


def _denied(call) -> bool:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "AccessDenied"
    return False


@pytest.fixture(scope="module")
def tenants(dev):
    """Per dev tenant: names from the catalogue, and the policy documents the program registered for it."""
    stack = settings.load_stack(PROJECT, "dev")
    found = {}
    for spec, names in catalogue.load(SAMPLE, stacks=settings.known_stacks(PROJECT)).for_stack(stack):
        owned = dev.tenant(spec.name)
        policy = next(r for r in owned if r["type"] == "aws:iam/policy:Policy")
        bucket_policy = next(r for r in owned if r["type"] == "aws:s3/bucketPolicy:BucketPolicy")
        found[spec.name] = {"spec": spec, "names": names, "policy": json.loads(policy["inputs"]["policy"]),
                            "bucket_policy": json.loads(bucket_policy["inputs"]["policy"])}
    assert len(found) >= 3
    return found


def test_program_documents_are_the_builders_output(tenants):
    for tenant in tenants.values():
        spec, names = tenant["spec"], tenant["names"]
        bucket_arn = f"arn:aws:s3:::{names.bucket}"
        kms = [s["Resource"] for s in tenant["policy"]["Statement"] if s["Sid"] == "UseOwnKey"]
        assert bool(kms) is spec.uses_kms
        assert tenant["policy"] == iam_policies.artifact_access_policy(
            bucket_arn, spec.artifacts.key_prefix, allow_delete=spec.artifacts.garbage_collection,
            kms_key_arn=kms[0] if kms else None)
        assert tenant["bucket_policy"] == iam_policies.tls_only_bucket_policy(bucket_arn)


def test_conditions_moto_cannot_check(tenants):
    for tenant in tenants.values():
        prefix = tenant["spec"].artifacts.key_prefix
        (listing,) = [s for s in tenant["policy"]["Statement"] if s["Action"] == "s3:ListBucket"]
        assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
        (deny,) = tenant["bucket_policy"]["Statement"]
        assert (deny["Effect"], deny["Principal"], deny["Condition"]) == \
            ("Deny", "*", {"Bool": {"aws:SecureTransport": "false"}})


def _provision(tenants) -> dict:
    """Buckets, users and the program's policies in moto (without enforcement); S3 clients with each key."""
    clients = {}
    with disable_iam_authentication():
        iam = boto3.client("iam", region_name="us-east-1")
        for name, tenant in tenants.items():
            names = tenant["names"]
            region = tenant["spec"].region
            create = {"Bucket": names.bucket}
            if region != "us-east-1":
                create["CreateBucketConfiguration"] = {"LocationConstraint": region}
            boto3.client("s3", region_name=region).create_bucket(**create)
            iam.create_user(UserName=names.iam_user)
            arn = iam.create_policy(PolicyName=names.iam_policy,
                                    PolicyDocument=json.dumps(tenant["policy"]))["Policy"]["Arn"]
            iam.attach_user_policy(UserName=names.iam_user, PolicyArn=arn)
            key = iam.create_access_key(UserName=names.iam_user)["AccessKey"]
            clients[name] = boto3.client("s3", region_name=region, aws_access_key_id=key["AccessKeyId"],
                                         aws_secret_access_key=key["SecretAccessKey"])
    return clients


@mock_aws
def test_every_tenant_reaches_only_its_own_prefix(tenants):
    clients = _provision(tenants)
    checked = 0
    with enable_iam_authentication():
        for name, tenant in tenants.items():
            s3, bucket = clients[name], tenant["names"].bucket
            own_key = f"{tenant['spec'].artifacts.key_prefix}run-1/output.txt"
            s3.put_object(Bucket=bucket, Key=own_key, Body=b"mine")
            assert s3.get_object(Bucket=bucket, Key=own_key)["Body"].read() == b"mine"
            assert _denied(lambda: s3.put_object(Bucket=bucket, Key="elsewhere/output.txt", Body=b"x"))
            assert _denied(lambda: s3.get_object(Bucket=bucket, Key="elsewhere/output.txt"))
        for (name, tenant), (other_name, other) in itertools.permutations(tenants.items(), 2):
            s3, other_bucket = clients[name], other["names"].bucket
            other_key = f"{other['spec'].artifacts.key_prefix}run-1/output.txt"
            assert _denied(lambda: s3.get_object(Bucket=other_bucket, Key=other_key)), (name, other_name)
            assert _denied(lambda: s3.put_object(Bucket=other_bucket, Key=other_key, Body=b"x")), (name, other_name)
            # The tenant's own prefix in someone else's bucket is still someone else's bucket.
            mirrored = f"{tenant['spec'].artifacts.key_prefix}run-1/output.txt"
            assert _denied(lambda: s3.put_object(Bucket=other_bucket, Key=mirrored, Body=b"x")), (name, other_name)
            assert _denied(lambda: s3.list_objects_v2(Bucket=other_bucket)), (name, other_name)
            checked += 1
    assert checked == len(tenants) * (len(tenants) - 1)


@mock_aws
def test_delete_only_for_tenants_with_garbage_collection(tenants):
    results = _provision(tenants)
    with enable_iam_authentication():
        for name, tenant in tenants.items():
            key = f"{tenant['spec'].artifacts.key_prefix}gc/old.txt"
            results[name].put_object(Bucket=tenant["names"].bucket, Key=key, Body=b"old")
            denied = _denied(lambda: results[name].delete_object(Bucket=tenant["names"].bucket, Key=key))
            assert denied is (not tenant["spec"].artifacts.garbage_collection), name
