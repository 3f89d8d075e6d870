"""Property tests: any name the catalogue accepts yields valid names, and distinct tenants never share one.

The limits are restated here independently of components.naming, so a wrong rule there cannot also pass here.
"""

from __future__ import annotations

import re

from hypothesis import assume, given, settings as hsettings, strategies as st

from components import naming

LABEL = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?\Z")
ORG = st.from_regex(r"\A[a-z]([-a-z0-9]{0,8}[a-z0-9])?\Z")
ENV = st.sampled_from(["dev", "staging", "prod"])

K8S_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
S3 = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IAM = re.compile(r"^[\w+=,.@-]{1,64}$")
VAULT_PATH_SEGMENT = re.compile(r"^[a-z0-9-]+$")


@hsettings(max_examples=300)
@given(org=ORG, env=ENV, tenant=LABEL)
def test_accepted_tenant_yields_names_valid_for_every_system(org, env, tenant):
    names = naming.derive(org, env, tenant)
    if names.problems():
        # Rejected names must really break a limit, never be rejected by mistake.
        assert len(names.bucket) > 63 or len(names.iam_role) > 64 or len(names.namespace) > 63
        return
    assert K8S_LABEL.match(names.namespace) and len(names.namespace) <= 63
    assert S3.match(names.bucket) and ".." not in names.bucket
    assert IAM.match(names.iam_user) and IAM.match(names.iam_role) and len(names.iam_policy) <= 128
    assert len(names.kms_alias) <= 256 and names.kms_alias.startswith("alias/")
    assert all(VAULT_PATH_SEGMENT.match(seg) for seg in names.vault_base_path.split("/"))
    assert names.vault_s3_path.startswith(names.vault_base_path + "/")
    assert K8S_LABEL.match(names.minicluster) and len(names.minicluster) <= 63
    assert tenant in names.namespace and tenant in names.bucket and tenant in names.registry_key


@hsettings(max_examples=300)
@given(org=ORG, env=ENV, a=LABEL, b=LABEL)
def test_distinct_tenants_never_share_a_name(org, env, a, b):
    assume(a != b)
    first, second = naming.derive(org, env, a).comparable(), naming.derive(org, env, b).comparable()
    for field, value in first.items():
        assert value != second[field], field


@given(org=ORG, a=LABEL)
def test_same_tenant_in_two_environments_gets_separate_cloud_names(org, a):
    dev, prod = naming.derive(org, "dev", a), naming.derive(org, "prod", a)
    # Cloud accounts and Vault may be shared by stacks, so names living there carry the environment.
    for field in ("bucket", "iam_user", "iam_role", "iam_policy", "kms_alias", "vault_policy", "vault_role"):
        assert getattr(dev, field) != getattr(prod, field), field


@given(st.text(max_size=30))
def test_normalise_is_idempotent_and_case_blind(name):
    once = naming.normalise(name)
    assert naming.normalise(once) == once
    assert naming.normalise(name.upper()) == naming.normalise(name.lower()) or not name.isascii()


def test_explicit_bucket_is_used_and_checked():
    names = naming.derive("calypr", "dev", "acme", bucket="Acme_Bucket")
    assert names.bucket == "Acme_Bucket"
    assert "bucket" in names.problems()


def test_s3_rules():
    assert naming.s3_bucket_problem("ab") and naming.s3_bucket_problem("a" * 64)
    assert naming.s3_bucket_problem("10.0.0.1") and naming.s3_bucket_problem("a..b")
    assert naming.s3_bucket_problem("xn--abc") and naming.s3_bucket_problem("abc-s3alias")
    assert naming.s3_bucket_problem("calypr-acme-dev-artifacts") is None


def test_label_rules():
    assert naming.label_key_problem("app.kubernetes.io/name") is None
    assert naming.label_key_problem("a/b/c") and naming.label_key_problem("-x") and naming.label_key_problem("x" * 64)
    assert naming.label_value_problem("") is None and naming.label_value_problem("a b")
