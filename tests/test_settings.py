from __future__ import annotations

import pytest

from components import settings
from components.problems import InvalidInput
from tests.conftest import PROJECT

BASE = {"tenancy:environment": "dev", "tenancy:org": "calypr", "aws:region": "us-west-2",
        "tenancy:vault": '{"address": "https://vault.example:8200"}'}


def messages(config: dict) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        settings.from_config(config, stack="dev")
    return [str(p) for p in caught.value.problems]


def test_shipped_stacks_load_and_differ_only_in_settings():
    loaded = {s: settings.load_stack(PROJECT, s) for s in ("dev", "staging", "prod")}
    assert not loaded["dev"].protect_data and loaded["staging"].protect_data and loaded["prod"].protect_data
    assert loaded["prod"].artifacts.credentials == "irsa" and loaded["prod"].irsa is not None
    assert not loaded["prod"].artifacts.force_destroy


def test_minimal_config_gets_defaults():
    s = settings.from_config(BASE, stack="dev")
    assert (s.registry.keyspace, s.vault.kv_mount.path, s.quota_scale) == ("tenant_ops", "kv", 1.0)


def test_misspelt_key_is_an_error_not_a_silent_default():
    assert messages({**BASE, "tenancy:protecData": "true"}) == [
        "Pulumi.dev.yaml: tenancy:protecData: unknown config key; did you mean 'tenancy:protectData'?"]


def test_nested_problems_carry_the_path():
    found = messages({**BASE, "tenancy:registry": '{"keyspace": "bad-name", "colour": 1}'})
    assert any(m.startswith("Pulumi.dev.yaml: tenancy:registry.keyspace: 'bad-name' is not a Keyspaces name") for m in found)
    assert "Pulumi.dev.yaml: tenancy:registry.colour: unknown field" in found


def test_environment_must_match_stack_and_region_must_exist():
    assert any("must equal the stack name" in m for m in messages({**BASE, "tenancy:environment": "prod"}))
    assert messages({**BASE, "aws:region": "moon-1"}) == ["Pulumi.dev.yaml: aws:region: 'moon-1' is not an AWS region"]


def test_protected_stack_cannot_force_destroy_buckets():
    found = messages({**BASE, "tenancy:protectData": "true", "tenancy:artifacts": '{"forceDestroy": true}'})
    assert any("forceDestroy cannot be on" in m for m in found)


def test_secure_values_are_masked_when_read_offline(tmp_path):
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  tenancy:registryPassword:\n    secure: v1:abc\n  tenancy:org: x\n")
    config, secret = settings.read_stack_file(tmp_path, "dev")
    assert config["tenancy:registryPassword"] == "[secret]" and secret == {"tenancy:registryPassword"}


def test_vault_ca_cert_file_must_exist_and_be_a_certificate(tmp_path):
    stack = settings.from_config({**BASE, "tenancy:vault": '{"address": "https://v:8200", '
                                  '"kubernetesAuth": {"caCertFile": "ca.pem"}}'}, stack="dev")
    with pytest.raises(InvalidInput, match="tenancy:vault.kubernetesAuth.caCertFile: cannot read 'ca.pem'"):
        settings.read_vault_ca_cert(tmp_path, stack)
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(InvalidInput, match="'ca.pem' must hold PEM CERTIFICATE blocks and nothing else"):
        settings.read_vault_ca_cert(tmp_path, stack)
    (tmp_path / "ca.pem").write_text((PROJECT / "certs" / "compliance-root-ca.pem").read_text())
    assert settings.read_vault_ca_cert(tmp_path, stack).startswith("-----BEGIN CERTIFICATE-----")


def test_stack_file_duplicate_keys_and_yaml_1_1_values_are_refused_with_line_and_column(tmp_path):
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  tenancy:org: calypr\n  tenancy:protectData: yes\n  tenancy:org: other\n")
    with pytest.raises(InvalidInput) as caught:
        settings.read_stack_file(tmp_path, "dev")
    assert [str(p) for p in caught.value.problems] == [
        "Pulumi.dev.yaml: config.tenancy:org: line 4, column 3: duplicate key 'tenancy:org' (first at line 2, "
        "column 3); YAML would keep only the last one",
        "Pulumi.dev.yaml: config.tenancy:protectData: line 3, column 24: 'yes' is read as the boolean true by YAML "
        "1.1 but as text by YAML 1.2; write true for a boolean, or quote it for text"]


def test_unknown_nested_setting_suggests_the_nearest_field():
    assert "Pulumi.dev.yaml: tenancy:registry.keyspce: unknown field; did you mean 'keyspace'?" in messages(
        {**BASE, "tenancy:registry": '{"keyspce": "x"}'})


def test_a_wrong_type_says_what_came():
    assert messages({**BASE, "tenancy:quotaScale": "[1]"}) == [
        "Pulumi.dev.yaml: tenancy:quotaScale: Input should be a valid number, got a list"]


def test_an_empty_stack_is_a_setting():
    assert not settings.from_config(BASE, stack="dev").allow_no_tenants
    assert settings.from_config({**BASE, "tenancy:allowNoTenants": "true"}, stack="dev").allow_no_tenants


@pytest.mark.parametrize("name, expected", [
    ("/etc/ssl/certs/ca-certificates.crt", "must be a relative path inside"),
    ("../ca.pem", "must be a relative path inside"),
    ("key.pem", "holds a PRIVATE KEY block"),
])
def test_vault_ca_cert_file_is_confined_like_the_catalogues_certificates(name, expected, tmp_path):
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    stack = settings.from_config({**BASE, "tenancy:vault": '{"address": "https://v:8200", '
                                  f'"kubernetesAuth": {{"caCertFile": "{name}"}}}}'}, stack="dev")
    with pytest.raises(InvalidInput, match=f"tenancy:vault.kubernetesAuth.caCertFile: .*{expected}"):
        settings.read_vault_ca_cert(tmp_path, stack)


def test_admission_settings_refuse_unusable_lists_and_exempting_tenant_namespaces():
    found = messages({**BASE, "tenancy:admission": '{"exemptNamespaces": ["kube-system", "wf-calypr-research"], '
                                                   '"allowed": {"registries": ["ghcr.io/"], "storageClasses": ["GP3"]}}'})
    assert any(m.startswith("Pulumi.dev.yaml: tenancy:admission.exemptNamespaces: 'wf-calypr-research' must be")
               for m in found), found
    assert any(m.startswith("Pulumi.dev.yaml: tenancy:admission.allowed.registries: 'ghcr.io/' is not a registry")
               for m in found), found
    assert any("tenancy:admission.allowed.storageClasses: 'GP3'" in m for m in found), found
    ok = settings.from_config({**BASE, "tenancy:admission": '{"allowed": {"registries": ["registry.local:5000/a"]}}'},
                              stack="dev")
    assert ok.admission.allowed.registries == ["registry.local:5000/a"] and ok.admission.namespace == "tenancy-system"


def _vault(placement: str, create: bool = True, **auth) -> dict:
    import json

    return {**BASE, "tenancy:vault": json.dumps({"address": "https://vault.example:8200", "placement": placement,
                                                 "kubernetesAuth": {"create": create, **auth}})}


def test_a_vault_outside_the_cluster_needs_the_api_servers_ca_and_address():
    """Outside a pod Vault has no service-account CA to fall back on when kubernetes_ca_cert is empty
    (hashicorp/vault-plugin-auth-kubernetes path_config.go, backend.go `updateTLSConfig`), and the in-cluster
    name does not resolve there: both are refused at validation, naming the key to set."""
    assert messages(_vault("external", host="https://kubernetes.default.svc")) == [
        "Pulumi.dev.yaml: tenancy:vault.kubernetesAuth.caCertFile: required with tenancy:vault.placement: external: "
        "without the API server's CA Vault reads its pod's service-account CA file, which a Vault outside the "
        "cluster does not have",
        "Pulumi.dev.yaml: tenancy:vault.kubernetesAuth.host: 'https://kubernetes.default.svc' resolves only inside "
        "the cluster; with tenancy:vault.placement: external give the API server's address Vault reaches"]
    assert [m.split(": ")[1] for m in messages(_vault("external", host="kubernetes.default.svc.cluster.local:443",
                                                      caCertFile="certs/api.pem"))] == [
        "tenancy:vault.kubernetesAuth.host"]
    # What can work: an external Vault with the API server's address and CA; an in-cluster Vault as shipped; an
    # adopted backend, which tenancy does not configure.
    settings.from_config(_vault("external", host="https://api.cluster.example:6443", caCertFile="certs/api.pem"),
                         stack="dev")
    settings.from_config(_vault("in-cluster", host="https://kubernetes.default.svc"), stack="dev")
    settings.from_config(_vault("external", create=False, host="https://kubernetes.default.svc"), stack="dev")
    assert messages({**BASE, "tenancy:vault": '{"address": "https://v:8200", "placement": "outside"}'}) == [
        "Pulumi.dev.yaml: tenancy:vault.placement: Input should be 'in-cluster' or 'external', got 'outside'"]
