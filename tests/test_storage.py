"""Tenant storage, identity and registry as the program registers them (mocks via the synth harness)."""

from __future__ import annotations

import json

import pytest

from components import naming
from components.problems import InvalidInput

from .conftest import PROJECT, SAMPLE, render

BUCKET = "aws:s3/bucket:Bucket"
HARDENING = {
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketPolicy:BucketPolicy",
}
DATA_TYPES = {BUCKET, "aws:kms/key:Key", "aws:keyspaces/keyspace:Keyspace", "aws:keyspaces/table:Table"}
DYNAMIC = "pulumi-python:dynamic:Resource"


def one(resources, type_token):
    found = [r for r in resources if r["type"] == type_token]
    assert len(found) == 1, f"expected one {type_token}, found {len(found)}"
    return found[0]


def policy_documents(result):
    """Every IAM-style JSON document in the synth output, by resource name."""
    for record in result.resources:
        for key in ("policy", "assumeRolePolicy"):
            text = record["inputs"].get(key)
            if isinstance(text, str) and text.lstrip().startswith("{"):
                yield record["name"], json.loads(text)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_bucket_is_hardened(stack, request):
    result = request.getfixturevalue(stack)
    for tenant in result.tenant_names():
        owned = result.tenant(tenant)
        bucket = one(owned, BUCKET)["inputs"]["bucket"]
        for type_token in HARDENING:
            assert one(owned, type_token)["inputs"]["bucket"] == bucket, (tenant, type_token)
        assert one(owned, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")["inputs"]["rule"] == \
            {"objectOwnership": "BucketOwnerEnforced"}
        block = one(owned, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")["inputs"]
        assert all(block[k] is True for k in
                   ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
        (statement,) = json.loads(one(owned, "aws:s3/bucketPolicy:BucketPolicy")["inputs"]["policy"])["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert set(statement["Resource"]) == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
        rules = one(owned, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["inputs"]["rules"]
        assert any("abortIncompleteMultipartUpload" in r for r in rules)


def test_lifecycle_follows_storage_class(dev):
    def rules(tenant):
        return {r["id"]: r for r in one(dev.tenant(tenant),
                "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["inputs"]["rules"]}
    assert rules("research")["archive"]["transitions"] == [{"days": 60, "storageClass": "GLACIER"}]
    assert rules("scratch")["expire"]["expiration"] == {"days": 7}
    assert set(rules("compliance")) == {"abort-incomplete-uploads", "expire-noncurrent-versions"}
    assert rules("compliance")["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {"noncurrentDays": 7}


def test_versioning_follows_the_stack(dev, prod):
    for result, status in ((dev, "Suspended"), (prod, "Enabled")):
        for tenant in result.tenant_names():
            versioning = one(result.tenant(tenant), "aws:s3/bucketVersioning:BucketVersioning")["inputs"]
            assert versioning["versioningConfiguration"] == {"status": status}


def test_bucket_names_valid_and_unique(dev, staging, prod):
    names = [r["inputs"]["bucket"] for result in (dev, staging, prod) for r in result.of_type(BUCKET)]
    assert len(names) == len(set(names))
    assert all(naming.s3_bucket_problem(n) is None for n in names)
    assert "calypr-research-prod-artifacts" in names


def test_region_providers(prod):
    providers = {r["name"]: r for r in prod.of_type("pulumi:providers:aws")}
    assert {n: p["inputs"]["region"] for n, p in providers.items()} == \
        {"aws-us-west-2": "us-west-2", "aws-eu-west-1": "eu-west-1"}
    expected = {"compliance": "aws-eu-west-1", "research": "aws-us-west-2"}
    for tenant, provider in expected.items():
        aws_owned = [r for r in prod.tenant(tenant) if r["type"].startswith("aws:")]
        assert aws_owned and {r["provider"].rsplit("::", 1)[-1] for r in aws_owned} == {provider}


def test_kms_only_for_the_kms_tenant(prod):
    for tenant in prod.tenant_names():
        owned = prod.tenant(tenant)
        keys = [r for r in owned if r["type"] == "aws:kms/key:Key"]
        sse = one(owned, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
        (rule,) = sse["inputs"]["rules"]
        if tenant == "compliance":
            (key,) = keys
            assert key["inputs"]["enableKeyRotation"] is True
            assert key["inputs"]["deletionWindowInDays"] == 30
            assert one(owned, "aws:kms/alias:Alias")["inputs"]["name"] == "alias/tenancy-calypr-prod-compliance-artifacts"
            assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
            assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].startswith("arn:aws:kms:eu-west-1:")
            assert rule["bucketKeyEnabled"] is True
        else:
            assert keys == []
            assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}


@pytest.mark.parametrize("stack,protected", [("dev", False), ("staging", True), ("prod", True)])
def test_data_protection_per_stack(stack, protected, request):
    result = request.getfixturevalue(stack)
    data = [r for r in result.resources if r["type"] in DATA_TYPES]
    assert {r["type"] for r in data} == DATA_TYPES
    for record in data:
        assert (record["protect"], record["retainOnDelete"]) == (protected, protected), record["name"]
    for bucket in result.of_type(BUCKET):
        assert bucket["inputs"]["forceDestroy"] is (not protected)


def test_irsa_trust_pins_sub_and_aud(prod):
    issuer = "oidc.eks.us-west-2.amazonaws.com/id/PROD0123456789ABCDEF0123"
    for tenant in prod.tenant_names():
        owned = prod.tenant(tenant)
        assert not [r for r in owned if r["type"] in ("aws:iam/user:User", "aws:iam/accessKey:AccessKey")]
        role = one(owned, "aws:iam/role:Role")
        (statement,) = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {"Federated": f"arn:aws:iam::444455556666:oidc-provider/{issuer}"}
        assert statement["Condition"] == {"StringEquals": {
            f"{issuer}:sub": f"system:serviceaccount:wf-calypr-{tenant}:wf-runner",
            f"{issuer}:aud": "sts.amazonaws.com"}}
        attachment = one(owned, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")["inputs"]
        assert attachment["role"] == role["inputs"]["name"]
        assert attachment["policyArn"].endswith(f":policy/tenancy-calypr-prod-{tenant}-artifacts")


def test_static_identity_in_dev(dev):
    for tenant in dev.tenant_names():
        owned = dev.tenant(tenant)
        user = one(owned, "aws:iam/user:User")["inputs"]["name"]
        assert one(owned, "aws:iam/accessKey:AccessKey")["inputs"]["user"] == user
        assert one(owned, "aws:iam/userPolicyAttachment:UserPolicyAttachment")["inputs"]["user"] == user
        assert not [r for r in owned if r["type"] == "aws:iam/role:Role"]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_no_policy_has_a_wildcard(stack, request):
    documents = list(policy_documents(request.getfixturevalue(stack)))
    assert len(documents) >= 3
    for name, document in documents:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            assert "*" not in actions and "*" not in resources, name
            if statement["Effect"] == "Allow":
                assert statement.get("Principal") != "*", name
                assert not any(a.endswith("*") for a in actions), name


def test_policy_scoped_to_own_bucket_and_prefix(prod):
    for tenant, prefix in (("research", "research/"), ("compliance", "compliance/")):
        document = json.loads(one(prod.tenant(tenant), "aws:iam/policy:Policy")["inputs"]["policy"])
        bucket = f"arn:aws:s3:::calypr-{tenant}-prod-artifacts"
        resources = {r for s in document["Statement"] for r in
                     (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])}
        assert {r for r in resources if r.startswith("arn:aws:s3")} == {bucket, f"{bucket}/{prefix}*"}
        deletes = any("s3:DeleteObject" in s["Action"] for s in document["Statement"])
        assert deletes is (tenant == "research")  # only research enables artifact garbage collection


def test_access_key_secret_never_in_plaintext(dev):
    text = json.dumps(dev.resources) + json.dumps(dev.outputs)
    assert "mock-secret-" not in text
    assert "AKIA" not in text


def test_registry_platform_and_records(prod, dev):
    table = one(prod.resources, "aws:keyspaces/table:Table")["inputs"]
    assert table["keyspaceName"] == "tenant_ops"
    assert table["tableName"] == "tenant_configs"
    assert table["pointInTimeRecovery"] == {"status": "ENABLED"}
    assert table["encryptionSpecification"]["type"] in ("AWS_OWNED_KMS_KEY", "CUSTOMER_MANAGED_KMS_KEY")
    assert table["capacitySpecification"] == {"throughputMode": "PAY_PER_REQUEST"}
    assert table["schemaDefinition"]["partitionKeys"] == [{"name": "tenant_id"}]
    assert {c["name"]: c["type"] for c in table["schemaDefinition"]["columns"]}["labels"] == "map<text, text>"
    for result, disable in ((prod, True), (dev, False)):
        for tenant in result.tenant_names():
            record = one(result.tenant(tenant), DYNAMIC)["inputs"]
            assert record["tenant_id"] == f"calypr-{tenant}"
            assert record["namespace"] == f"wf-calypr-{tenant}"
            assert record["enabled"] is True
            assert record["disable_on_delete"] is disable
            assert "password" not in record  # sigv4 stacks carry no password at all
    research = one(prod.tenant("research"), DYNAMIC)["inputs"]
    assert research["repo_url"] == "https://github.com/calypr/research-workflows.git"
    assert research["repo_path"] == "deploy"
    assert research["params"] == {"nextflowProfile": "k8s"}
    assert research["labels"] == {"tier": "standard", "data-class": "internal"}


def test_irsa_without_oidc_provider_is_refused(tmp_path):
    # A stack without tenancy:irsa: a tenant asking for irsa there must fail validation at artifacts.credentials.
    from components import catalogue, settings

    dev = settings.load_stack(PROJECT, "dev")
    no_oidc = dev.model_copy(update={"irsa": None})
    text = SAMPLE.read_text().replace("      keyPrefix: tmp/\n", "      keyPrefix: tmp/\n      credentials: irsa\n")
    assert "credentials: irsa" in text
    parsed = catalogue.parse(text, source="tenants.yaml", base_dir=PROJECT, stacks=settings.known_stacks(PROJECT))
    assert parsed.for_stack(dev)  # with the dev cluster's OIDC provider it is fine
    with pytest.raises(InvalidInput) as raised:
        parsed.for_stack(no_oidc)
    text = str(raised.value)
    assert "name=scratch).artifacts.credentials" in text
    assert "tenancy:irsa" in text


def test_a_disabled_registry_creates_no_keyspaces_resources(tmp_path, monkeypatch):
    """A stack with `registry.enabled: false` registers no keyspace, no table and no row (nor the records'
    provider), and an enabled stack keeps every URN it had (tests/sample_dev_urns.txt, rendered before)."""
    import components.settings as settings_module
    from tests.conftest import sample

    assert [r["urn"] for r in sample("dev").resources] == (PROJECT / "tests/sample_dev_urns.txt").read_text().split()

    original = settings_module.read_stack_file

    def without_registry(project_dir, stack):
        config, secret = original(project_dir, stack)
        registry = json.loads(config["tenancy:registry"])
        config["tenancy:registry"] = json.dumps({**registry, "enabled": False})
        # The Argo CD generator reads the registry, so a stack without rows cannot enable it.
        config["tenancy:argocd"] = json.dumps({**json.loads(config["tenancy:argocd"]), "enabled": False})
        return config, secret

    monkeypatch.setattr(settings_module, "read_stack_file", without_registry)
    result = render("dev")
    assert result.of_type(DYNAMIC) == []
    assert [r["type"] for r in result.resources if r["type"].startswith("aws:keyspaces/")] == []
    assert [r["name"] for r in result.resources if "registry" in r["name"]] == []
