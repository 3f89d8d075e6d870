"""The tenant Vault policy: exactly two path rules inside the tenant's subtree, and no name can widen it."""

from __future__ import annotations

import re

import pytest

from components import naming, settings
from components.problems import InvalidInput
from components.vault_policy import tenant_policy

from .conftest import render

RULE = re.compile(r'path "([^"]*)" \{\n  capabilities = \[([^\]]*)\]\n\}\n')


def rules(hcl: str) -> dict[str, list[str]]:
    parsed = {path: [c.strip().strip('"') for c in caps.split(",")] for path, caps in RULE.findall(hcl)}
    # Everything in the text is one of the parsed rules: nothing else is granted.
    assert RULE.sub("", hcl).strip() == ""
    return parsed


def test_policy_grants_read_on_data_list_read_on_metadata_and_the_token_self_calls_only():
    names = naming.derive("calypr", "dev", "research")
    assert rules(tenant_policy("kv-dev", names.vault_base_path)) == {
        "kv-dev/data/argo/orgs/calypr/research/*": ["read"],
        "kv-dev/metadata/argo/orgs/calypr/research/*": ["list", "read"],
        # External Secrets' store validation and token revocation (tests/test_eso_vault_contract.py).
        "auth/token/lookup-self": ["read"],
        "auth/token/revoke-self": ["update"],
    }


def test_secret_paths_fall_inside_the_policy_subtree():
    names = naming.derive("calypr", "dev", "research")
    granted = [p.removesuffix("*") for p in rules(tenant_policy("kv", names.vault_base_path))]
    for secret in (names.vault_s3_path, names.vault_minicluster_path):
        assert f"kv/data/{secret}".startswith(granted[0])
        assert f"kv/metadata/{secret}".startswith(granted[1])


def test_one_tenant_prefix_does_not_cover_another_with_a_longer_name():
    # "argo/apps/res/*" must not match "argo/apps/research/...": the rule ends in "/*", not "*".
    short = rules(tenant_policy("kv", naming.derive("calypr", "dev", "res").vault_base_path))
    other = naming.derive("calypr", "dev", "research").vault_s3_path
    assert not any(f"kv/data/{other}".startswith(p.removesuffix("*")) for p in short)


@pytest.mark.parametrize("base_path", [
    "argo/apps/*", "argo/apps/+/s3", "argo/apps/a*", "argo/apps/../other", "argo/apps/..", "argo/apps/",
    "/argo/apps/x", "argo//apps/x", "", "argo/apps/x\n", 'argo/apps/x" {\n  capabilities = ["sudo"]\n}\npath "y',
    "argo/apps/X", "argo/apps/a b", "argo/apps/a?", "argo/apps/[ab]", "argo/apps/x}", "argo/apps/-x",
])
def test_builder_refuses_anything_but_plain_name_segments(base_path):
    with pytest.raises(ValueError):
        tenant_policy("kv", base_path)


@pytest.mark.parametrize("mount", ["*", "kv*", "kv/", "", "kv/+", "..", 'kv"', "kv\n", "sys/../kv"])
def test_builder_refuses_bad_mounts(mount):
    with pytest.raises(ValueError):
        tenant_policy(mount, "argo/apps/research")


def test_nested_mount_of_plain_segments_is_accepted():
    assert 'path "platform/kv/data/argo/apps/a/*"' in tenant_policy("platform/kv", "argo/apps/a")


def test_stack_settings_refuse_a_glob_mount():
    config = {"tenancy:environment": "dev", "tenancy:org": "calypr", "aws:region": "us-west-2",
              "tenancy:vault": '{"address": "https://vault.example:8200", "kvMount": {"path": "kv/*"}}'}
    with pytest.raises(InvalidInput, match="kvMount.path"):
        settings.from_config(config, stack="dev")


@pytest.mark.parametrize("name", ["a*", "a+b", "a/b", "..", "A", "a\nb", "research\n"])
def test_catalogue_refuses_tenant_names_that_could_widen_a_policy(name, tmp_path):
    catalogue = f"""
        tenants:
          - name: {name!r}
            team: t
            repo: {{url: "https://github.com/calypr/x.git"}}
        """
    with pytest.raises(InvalidInput):
        render("dev", catalogue.replace("'", '"') if "\n" in name else catalogue, tmp_path)


def test_trailing_newline_does_not_pass_as_a_name():
    # Python's "$" matches before a final newline; a name ending in one would end an HCL string early.
    assert not naming.is_dns1123_label("research\n")
    assert {"vault_policy", "vault_role", "namespace"} <= set(naming.derive("calypr", "dev", "research\n").problems())


def test_same_named_tenants_of_two_orgs_share_no_vault_name():
    """Two orgs' stacks in one Vault (one KV mount, one auth mount, one policy namespace): neither tenant's policy
    grants a path of the other's, and their policy and role names differ (Vault replaces a policy or role written
    under an existing name: `sys/policy/<name>`, `auth/<mount>/role/<name>`)."""
    ours, theirs = naming.derive("calypr", "dev", "research"), naming.derive("acme", "dev", "research")
    granted = [p.removesuffix("*") for p in rules(tenant_policy("kv", ours.vault_base_path)) if p.startswith("kv/")]
    for secret in (theirs.vault_s3_path, theirs.vault_minicluster_path):
        assert not any(f"kv/{part}/{secret}".startswith(g) for g in granted for part in ("data", "metadata"))
    assert ours.vault_policy != theirs.vault_policy and ours.vault_role != theirs.vault_role
