"""The e2e stand-in providers (tests/e2e/standin) over real gRPC, as the Pulumi engine drives them.

Requests are built the way the engine sends them (pulumi/pulumi pkg/resource/plugin/provider_plugin.go marshals
properties with numbers as doubles, secrets as signature objects when the provider accepts secrets, unknowns as
the sentinel in previews) and the backends are real: OpenBao for vault, a moto server for S3/IAM/KMS. What is
asserted is what the engine or the program would see: outputs, their secrecy, replace-versus-update, and the
state of the backend. Keyspaces DDL is checked as CQL text here; the live check is the engine e2e's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any, Iterator

import boto3
import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components.registry import schema_definition
from tenancy.diff import DATA_KINDS
from tenancy.replacements import REPLACEMENTS
from tests.e2e import standin
from tests.e2e.standin import plugin
from tests.e2e.standin.plugin import SECRET_SIG, SIG_KEY, UNKNOWN, to_dict, to_struct

from .conftest import PROJECT
from .processes import stop
from .test_openbao import ROOT_TOKEN, bao_server

moto_server = pytest.importorskip("moto.server")

REGION = "us-west-2"
DEFAULT_TAGS = {"managed-by": "tenancy", "environment": "test"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def bao(tmp_path_factory):
    with bao_server(tmp_path_factory) as client:
        yield client


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def backends(bao, moto_endpoint) -> Iterator[standin.Backends]:
    backends = standin.Backends(aws_endpoint=moto_endpoint, vault_address=bao.url, vault_token=ROOT_TOKEN)
    saved = {k: os.environ.get(k) for k in backends.environment()}
    os.environ.update(backends.environment())  # the in-process servers read them as the plugin process does
    yield backends
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _stub(name: str, config: dict[str, Any]) -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    server, port = plugin.serve(plugin.PACKAGES[name](standin.sdk_version(name)))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = provider_pb2_grpc.ResourceProviderStub(channel)
    # Provider inputs reach Configure as the Python SDK sends them: every value a string, objects as JSON.
    answer = stub.Configure(provider_pb2.ConfigureRequest(args=to_struct(config), acceptSecrets=True))
    assert answer.acceptSecrets and answer.supportsPreview
    try:
        yield stub
    finally:
        channel.close()
        server.stop(None)


@pytest.fixture(scope="module")
def random_provider():
    yield from _stub("random", {})


@pytest.fixture(scope="module")
def vault_provider(backends):
    yield from _stub("vault", {"address": "https://vault.invalid:8200", "skipChildToken": "true"})


@pytest.fixture(scope="module")
def aws_provider(backends):
    yield from _stub("aws", {"region": REGION, "defaultTags": json.dumps({"tags": DEFAULT_TAGS}),
                             "skipCredentialsValidation": "false"})


@pytest.fixture(scope="module")
def aws(backends):
    def client(service: str):
        return boto3.client(service, endpoint_url=backends.aws_endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    return client


def urn(typ: str, name: str) -> str:
    return f"urn:pulumi:test::tenancy::tenancy:index:Tenant${typ}::{name}"


def secret(value: Any) -> dict:
    return {SIG_KEY: SECRET_SIG, "value": value}


class Resource:
    """One resource's lifecycle through a stub, keeping id and state as the engine does."""

    def __init__(self, stub, typ: str, name: str) -> None:
        self.stub, self.typ, self.urn = stub, typ, urn(typ, name)
        self.id, self.inputs, self.state = "", {}, {}

    def check(self, news: dict) -> dict:
        return to_dict(self.stub.Check(provider_pb2.CheckRequest(urn=self.urn, type=self.typ, olds=to_struct(
            self.inputs), news=to_struct(news))).inputs)

    def create(self, inputs: dict, preview: bool = False) -> dict:
        checked = self.check(inputs)
        answer = self.stub.Create(provider_pb2.CreateRequest(urn=self.urn, type=self.typ,
                                                             properties=to_struct(checked), preview=preview))
        if not preview:
            self.id, self.inputs, self.state = answer.id, checked, to_dict(answer.properties)
        return to_dict(answer.properties)

    def diff(self, news: dict) -> provider_pb2.DiffResponse:
        return self.stub.Diff(provider_pb2.DiffRequest(
            id=self.id, urn=self.urn, type=self.typ, olds=to_struct(self.state), news=to_struct(self.check(news)),
            old_inputs=to_struct(self.inputs)))

    def update(self, news: dict, preview: bool = False) -> dict:
        checked = self.check(news)
        answer = self.stub.Update(provider_pb2.UpdateRequest(
            id=self.id, urn=self.urn, type=self.typ, olds=to_struct(self.state), news=to_struct(checked),
            old_inputs=to_struct(self.inputs), preview=preview))
        if not preview:
            self.inputs, self.state = checked, to_dict(answer.properties)
        return to_dict(answer.properties)

    def read(self) -> provider_pb2.ReadResponse:
        return self.stub.Read(provider_pb2.ReadRequest(id=self.id, urn=self.urn, type=self.typ,
                                                       properties=to_struct(self.state), inputs=to_struct(self.inputs)))

    def delete(self) -> None:
        self.stub.Delete(provider_pb2.DeleteRequest(id=self.id, urn=self.urn, type=self.typ,
                                                    properties=to_struct(self.state)))


# ------------------------------------------------------------------ random

def test_random_password_is_secret_and_stable(random_provider):
    """terraform-provider-random resource_password.go: `result` sensitive, id "none", every argument replaces."""
    password = Resource(random_provider, "random:index/randomPassword:RandomPassword", "token")
    out = password.create({"length": 48.0, "special": False})
    assert password.id == "none"
    assert out["result"][SIG_KEY] == SECRET_SIG
    result = out["result"]["value"]
    assert len(result) == 48 and result.isalnum()
    assert out["length"] == 48.0 and out["lower"] is True  # inputs as sent (a double), defaults filled in
    read = password.read()
    assert read.id == "none" and to_dict(read.properties)["result"] == secret(result)
    assert password.diff({"length": 48.0, "special": False}).changes == provider_pb2.DiffResponse.DIFF_NONE
    assert list(password.diff({"length": 32.0, "special": False}).replaces) == ["length"]


# ------------------------------------------------------------------ vault

def test_vault_policy_lifecycle(vault_provider, bao):
    policy = Resource(vault_provider, "vault:index/policy:Policy", "policy")
    first = 'path "kv/data/a/*" {\n  capabilities = ["read"]\n}\n'
    second = 'path "kv/data/b/*" {\n  capabilities = ["read"]\n}\n'
    policy.create({"name": "standin-test", "policy": first})
    assert policy.id == "standin-test"
    assert bao.sys.read_acl_policy("standin-test")["data"]["policy"] == first

    change = policy.diff({"name": "standin-test", "policy": second})
    assert change.changes == provider_pb2.DiffResponse.DIFF_SOME and not change.replaces
    policy.update({"name": "standin-test", "policy": second})
    assert bao.sys.read_acl_policy("standin-test")["data"]["policy"] == second
    assert list(policy.diff({"name": "renamed", "policy": second}).replaces) == ["name"]

    policy.delete()
    assert "standin-test" not in bao.sys.list_acl_policies()["data"]["keys"]
    assert policy.read().id == ""  # gone: the engine drops it from state on refresh


def test_vault_kv_secret_keeps_secrets(vault_provider, bao):
    mount = Resource(vault_provider, "vault:index/mount:Mount", "kv")
    out = mount.create({"path": "standin-kv", "type": "kv", "options": {"version": "2"}, "description": "test"})
    assert out["accessor"].startswith("kv_")
    kv = Resource(vault_provider, "vault:kv/secretV2:SecretV2", "secret")
    out = kv.create({"mount": "standin-kv", "name": "t/app", "dataJson": secret(json.dumps({"password": "s3cr3t"}))})
    assert out["dataJson"] == secret(json.dumps({"password": "s3cr3t"}))
    assert out["data"] == secret({"password": "s3cr3t"})
    assert out["path"] == "standin-kv/data/t/app" and out["metadata"]["version"] == "1"
    stored = bao.secrets.kv.v2.read_secret_version(path="t/app", mount_point="standin-kv", raise_on_deleted_version=True)
    assert stored["data"]["data"] == {"password": "s3cr3t"}

    out = kv.update({"mount": "standin-kv", "name": "t/app", "dataJson": secret(json.dumps({"password": "n3w"}))})
    assert out["metadata"]["version"] == "2" and out["data"] == secret({"password": "n3w"})
    kv.delete()  # the latest version only, as resource_kv_secret_v2.go does without delete_all_versions
    with pytest.raises(Exception):
        bao.secrets.kv.v2.read_secret_version(path="t/app", mount_point="standin-kv", raise_on_deleted_version=True)
    moved = mount.update({"path": "standin-kv2", "type": "kv", "options": {"version": "2"}, "description": "test"})
    assert not mount.diff({"path": "standin-kv3", "type": "kv", "options": {"version": "2"}}).replaces  # remount
    assert moved["path"] == "standin-kv2" and "standin-kv2/" in bao.sys.list_mounted_secrets_engines()["data"]
    mount.delete()
    assert not {"standin-kv/", "standin-kv2/"} & set(bao.sys.list_mounted_secrets_engines()["data"])


def test_vault_role_numbers_arrive_as_doubles(vault_provider, bao):
    """The engine sends token_ttl as 900.0; Vault refuses "900.0", so the stand-in must hand it 900."""
    backend = Resource(vault_provider, "vault:index/authBackend:AuthBackend", "k8s")
    backend.create({"type": "kubernetes", "path": "standin-k8s", "description": "test"})
    config = Resource(vault_provider, "vault:kubernetes/authBackendConfig:AuthBackendConfig", "config")
    # Outside a pod Vault would read the local service account's CA unless it is given one.
    config.create({"backend": "standin-k8s", "kubernetesHost": "https://kubernetes.default.svc",
                   "kubernetesCaCert": (PROJECT / "certs" / "compliance-root-ca.pem").read_text()})
    role = Resource(vault_provider, "vault:kubernetes/authBackendRole:AuthBackendRole", "role")
    inputs = {"backend": "standin-k8s", "roleName": "tenant", "boundServiceAccountNames": ["eso"],
              "boundServiceAccountNamespaces": ["wf-a"], "audience": "vault", "tokenPolicies": ["p"],
              "tokenNoDefaultPolicy": True, "tokenTtl": 900.0, "tokenMaxTtl": 900.0}
    out = role.create(inputs)
    assert out["tokenTtl"] == 900.0
    stored = bao.read("auth/standin-k8s/role/tenant")["data"]
    assert stored["token_ttl"] == 900 and stored["token_max_ttl"] == 900 and stored["token_no_default_policy"]
    assert bao.read("auth/standin-k8s/config")["data"]["kubernetes_host"] == "https://kubernetes.default.svc"
    role.delete()
    assert bao.read("auth/standin-k8s/role/tenant") is None
    config.delete()  # only forgotten, as upstream does: the backend's deletion removes it
    assert bao.read("auth/standin-k8s/config") is not None
    backend.delete()
    assert "standin-k8s/" not in bao.sys.list_auth_methods()["data"]


# ------------------------------------------------------------------ aws

def test_s3_bucket_and_its_configuration(aws_provider, aws):
    s3 = aws("s3")
    bucket = Resource(aws_provider, "aws:s3/bucket:Bucket", "bucket")
    out = bucket.create({"bucket": "standin-artifacts", "forceDestroy": True, "tags": {"tenant": "a"}})
    assert bucket.id == "standin-artifacts" and out["arn"] == "arn:aws:s3:::standin-artifacts"
    assert out["tagsAll"] == {**DEFAULT_TAGS, "tenant": "a"}
    assert {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket="standin-artifacts")["TagSet"]} == out["tagsAll"]

    configs = [
        ("aws:s3/bucketOwnershipControls:BucketOwnershipControls", {"rule": {"objectOwnership": "BucketOwnerEnforced"}}),
        ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", {
            "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True, "restrictPublicBuckets": True}),
        ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", {
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}, "bucketKeyEnabled": False}]}),
        ("aws:s3/bucketVersioning:BucketVersioning", {"versioningConfiguration": {"status": "Enabled"}}),
        ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", {"rules": [
            {"id": "expire-noncurrent-versions", "status": "Enabled", "filter": {"prefix": ""},
             "noncurrentVersionExpiration": {"noncurrentDays": 30.0}}]}),
        ("aws:s3/bucketPolicy:BucketPolicy", {"policy": json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::standin-artifacts/*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})}),
    ]
    resources = []
    for typ, inputs in configs:
        resource = Resource(aws_provider, typ, typ.rsplit(":", 1)[-1])
        resource.create({"bucket": "standin-artifacts", **inputs})
        assert resource.id == "standin-artifacts"
        resources.append(resource)
    assert s3.get_bucket_ownership_controls(Bucket="standin-artifacts")["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    assert all(s3.get_public_access_block(Bucket="standin-artifacts")["PublicAccessBlockConfiguration"].values())
    assert s3.get_bucket_encryption(Bucket="standin-artifacts")["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert s3.get_bucket_versioning(Bucket="standin-artifacts")["Status"] == "Enabled"
    rule = s3.get_bucket_lifecycle_configuration(Bucket="standin-artifacts")["Rules"][0]
    assert rule["ID"] == "expire-noncurrent-versions" and rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert json.loads(s3.get_bucket_policy(Bucket="standin-artifacts")["Policy"])["Statement"][0]["Effect"] == "Deny"

    versioning = resources[3]
    versioning.update({"bucket": "standin-artifacts", "versioningConfiguration": {"status": "Suspended"}})
    assert s3.get_bucket_versioning(Bucket="standin-artifacts")["Status"] == "Suspended"
    for resource in reversed(resources):
        resource.delete()
    with pytest.raises(s3.exceptions.ClientError):
        s3.get_bucket_policy(Bucket="standin-artifacts")
    s3.put_object(Bucket="standin-artifacts", Key="k", Body=b"x")
    bucket.delete()  # forceDestroy empties it first, as bucket.go does
    assert "standin-artifacts" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert bucket.read().id == ""


def test_iam_policy_role_user_and_key(aws_provider, aws):
    iam = aws("iam")
    document = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]})
    policy = Resource(aws_provider, "aws:iam/policy:Policy", "policy")
    out = policy.create({"name": "standin-policy", "policy": document, "description": "d"})
    assert policy.id == out["arn"] and out["arn"].endswith(":policy/standin-policy")
    wider = document.replace("GetObject", "PutObject")
    assert not policy.diff({"name": "standin-policy", "policy": wider, "description": "d"}).replaces
    policy.update({"name": "standin-policy", "policy": wider, "description": "d"})
    version = iam.get_policy(PolicyArn=policy.id)["Policy"]["DefaultVersionId"]
    assert "PutObject" in json.dumps(iam.get_policy_version(PolicyArn=policy.id, VersionId=version)[
        "PolicyVersion"]["Document"])

    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    role = Resource(aws_provider, "aws:iam/role:Role", "role")
    out = role.create({"name": "standin-role", "assumeRolePolicy": trust})
    assert role.id == "standin-role" and out["arn"].endswith(":role/standin-role")
    role_attachment = Resource(aws_provider, "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "ra")
    role_attachment.create({"role": "standin-role", "policyArn": policy.id})
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="standin-role")["AttachedPolicies"]] == [
        policy.id]

    user = Resource(aws_provider, "aws:iam/user:User", "user")
    user.create({"name": "standin-user", "tags": {"tenant": "a"}})
    user_attachment = Resource(aws_provider, "aws:iam/userPolicyAttachment:UserPolicyAttachment", "ua")
    user_attachment.create({"user": "standin-user", "policyArn": policy.id})
    key = Resource(aws_provider, "aws:iam/accessKey:AccessKey", "key")
    out = key.create({"user": "standin-user", "status": "Active"})
    assert out["secret"][SIG_KEY] == SECRET_SIG and len(out["secret"]["value"]) >= 40
    assert key.id.startswith("AKIA") or key.id.startswith("ASIA") or len(key.id) == 20
    assert not key.diff({"user": "standin-user", "status": "Inactive"}).replaces
    out = key.update({"user": "standin-user", "status": "Inactive"})
    assert out["secret"][SIG_KEY] == SECRET_SIG  # a secret output stays secret through an update
    assert iam.list_access_keys(UserName="standin-user")["AccessKeyMetadata"][0]["Status"] == "Inactive"

    for resource in (key, user_attachment, user, role_attachment, role, policy):
        resource.delete()
    assert not iam.list_users()["Users"] and not iam.list_roles()["Roles"]
    assert policy.read().id == ""


def test_kms_key_and_alias(aws_provider, aws):
    kms = aws("kms")
    key = Resource(aws_provider, "aws:kms/key:Key", "key")
    out = key.create({"description": "artifacts", "enableKeyRotation": True, "deletionWindowInDays": 7.0})
    assert out["keyId"] == key.id and out["arn"].endswith(f":key/{key.id}") and out["keyUsage"] == "ENCRYPT_DECRYPT"
    assert kms.get_key_rotation_status(KeyId=key.id)["KeyRotationEnabled"]
    alias = Resource(aws_provider, "aws:kms/alias:Alias", "alias")
    out = alias.create({"name": "alias/standin", "targetKeyId": key.id})
    assert out["targetKeyArn"] == key.state["arn"]
    alias.delete()
    key.delete()
    assert kms.describe_key(KeyId=key.id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert key.read().id == ""


# ------------------------------------------------------------------ engine behaviours

@pytest.mark.parametrize("typ", sorted(REPLACEMENTS))
def test_diff_replaces_exactly_for_the_shared_table(typ):
    """Diff answers replace for a field of tenancy.replacements (the table `tenancy diff` reads), update otherwise."""
    provider = plugin.Provider(plugin.PACKAGES[typ.split(":")[0]]("0.0.0"))
    fields = REPLACEMENTS[typ].replaced_when

    def diff(olds: dict, news: dict) -> provider_pb2.DiffResponse:
        return provider.Diff(provider_pb2.DiffRequest(urn=urn(typ, "r"), type=typ, id="x", olds=to_struct(olds),
                                                      news=to_struct(news), old_inputs=to_struct(olds)), None)

    unrelated = diff({"zzUnrelated": "a"}, {"zzUnrelated": "b"})
    assert unrelated.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert list(unrelated.replaces) == (["zzUnrelated"] if fields == ("",) else [])
    for field in fields:
        top, *rest = field.split(".") if field else ["zzUnrelated"]
        olds = {top: {rest[0]: "a"}} if rest else {top: "a"}
        news = {top: {rest[0]: "b"}} if rest else {top: "b"}
        answer = diff(olds, news)
        assert list(answer.replaces) == [top], field
        assert answer.detailedDiff[top].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE


def test_one_table_covers_every_type_the_program_creates(dev, staging, prod):
    """Every aws/vault/random type the three stacks register has a replacement entry, the stand-ins serve exactly
    those types, and `tenancy diff` takes its data kinds' replacement fields from the same entries."""
    created = {r["type"] for result in (dev, staging, prod) for r in result.resources
               if r["type"].split(":")[0] in ("aws", "vault", "random")}
    served = {typ for package in plugin.PACKAGES.values() for typ in package.KINDS}
    assert created == set(REPLACEMENTS) == served
    shared = {typ: kind.replaced_when for typ, kind in DATA_KINDS.items() if typ in REPLACEMENTS}
    assert shared and shared == {typ: REPLACEMENTS[typ].replaced_when for typ in shared}


def test_preview_keeps_unchanged_outputs_and_marks_new_ones_unknown(aws_provider, vault_provider):
    bucket = Resource(aws_provider, "aws:s3/bucket:Bucket", "preview")
    planned = bucket.create({"bucket": "standin-preview", "tags": {"a": "b"}}, preview=True)
    assert planned["arn"] == UNKNOWN and planned["bucket"] == "standin-preview"
    backend = Resource(vault_provider, "vault:index/authBackend:AuthBackend", "preview")
    planned = backend.create({"type": "kubernetes", "path": "k8s-preview"}, preview=True)
    assert planned["accessor"] == UNKNOWN and planned["path"] == "k8s-preview"  # given, so known
    bucket.create({"bucket": "standin-preview", "tags": {"a": "b"}})
    arn = bucket.state["arn"]
    planned = bucket.update({"bucket": "standin-preview", "tags": {"a": "c"}}, preview=True)
    assert planned["arn"] == arn and planned["tags"] == {"a": "c"}
    bucket.delete()


def test_keyspaces_ddl_text():
    """The registry's keyspace and table as Cassandra DDL (aws keyspaces table.go: columns are added in place)."""
    schema = plugin.to_dict(to_struct({"s": schema_definition()}))["s"]
    camel = {"columns": schema["columns"], "partitionKeys": schema["partition_keys"]}
    assert plugin.keyspace_cql("tenant_ops", "us-west-2") == (
        "CREATE KEYSPACE IF NOT EXISTS \"tenant_ops\" WITH replication = "
        "{'class': 'NetworkTopologyStrategy', 'us-west-2': 1}")
    cql = plugin.table_cql("tenant_ops", "tenant_configs", camel)
    assert cql.startswith('CREATE TABLE IF NOT EXISTS "tenant_ops"."tenant_configs" ("tenant_id" text, ')
    assert '"labels" map<text, text>' in cql and cql.endswith('PRIMARY KEY (("tenant_id")))')
    clustered = plugin.table_cql("k", "t", {"columns": [{"name": "a", "type": "text"}, {"name": "b", "type": "int"}],
                                            "partitionKeys": [{"name": "a"}],
                                            "clusteringKeys": [{"name": "b", "orderBy": "DESC"}]})
    assert clustered.endswith('PRIMARY KEY (("a"), "b")) WITH CLUSTERING ORDER BY ("b" DESC)')
    grown = {**camel, "columns": camel["columns"] + [{"name": "owner", "type": "text"}]}
    assert plugin.add_columns_cql("tenant_ops", "tenant_configs", camel, grown) == [
        'ALTER TABLE "tenant_ops"."tenant_configs" ADD "owner" text']
    with pytest.raises(ValueError):
        plugin.table_cql("k", 't"; DROP KEYSPACE k; --', camel)


def test_plugin_script_serves_the_sdk_version(tmp_path, backends):
    """The executable `install` writes: prints its port on stdout (what the engine reads), answers GetPluginInfo
    with the version the SDK's pulumi-plugin.json requests, and declares itself a stand-in."""
    path = tmp_path / "pulumi-resource-vault"
    path.write_text(standin.script("vault", standin.sdk_version("vault"), backends, sys.executable))
    path.chmod(0o755)
    assert "STAND-IN" in path.read_text()
    process = subprocess.Popen([str(path), "127.0.0.1:1"], stdout=subprocess.PIPE, start_new_session=True)
    try:
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            assert stub.GetPluginInfo(empty_pb2.Empty()).version == standin.sdk_version("vault") == "7.14.0"
    finally:
        stop(process, group=True)
