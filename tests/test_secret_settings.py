"""Settings a stack encrypts stay secret in every input they reach, or are refused when marked secret.

Pulumi decrypts `secure:` config for the program and keeps an input secret only when the program sends it as a
secret (pulumi/sdk python `pulumi/runtime/rpc.py`, `serialize_property`: an Output's `is_secret` becomes the
`4dabf18193072939515e22adb298388d` signature); a plain string made from a decrypted value is stored and shown in
plain text. Here the program runs as under `pulumi up` with the values already decrypted (sentinels), and
nothing synth records (inputs, URNs, outputs) may contain them.
"""

from __future__ import annotations

import json

import pytest

from components import settings
from components.problems import InvalidInput
from tenancy import synth
from tests.conftest import PROJECT
from tests.test_settings import BASE

ARN_ACCOUNT = "999988887777"
# (top-level key, path below it, sentinel written there, what must never appear in plain text)
SECRET = [
    ("tenancy:registry", "username", "svc-secret-user", "svc-secret-user"),
    ("tenancy:registry", "targetCluster", "https://target-secret.example", "target-secret"),
    ("tenancy:vault", "namespace", "ns-secret-team", "ns-secret-team"),
    ("tenancy:vault", "address", "https://vault-secret.example:8200", "vault-secret"),
    ("tenancy:vault", "kubernetesAuth.host", "https://kube-secret.example", "kube-secret"),
    ("tenancy:vault", "kubernetesAuth.audience", "aud-secret", "aud-secret"),
    ("tenancy:kubernetes", "context", "ctx-secret", "ctx-secret"),
    ("tenancy:kubernetes", "clusterName", "cluster-secret", "cluster-secret"),
    ("tenancy:kubernetes", "apiServerCidrs", ["192.0.2.0/24"], "192.0.2.0"),
    ("tenancy:irsa", "oidcProviderArn",
     f"arn:aws:iam::{ARN_ACCOUNT}:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/IDSECRET", "IDSECRET"),
    ("tenancy:argocd", "generatorRoleArn", f"arn:aws:iam::{ARN_ACCOUNT}:role/role-secret", "role-secret"),
    ("tenancy:argocd", "generatorImage", "ghcr.io/image-secret/generator:1", "image-secret"),
    ("tenancy:workflows", "executorImage", "quay.io/argoproj/argoexec-secret:v3.7.9", "argoexec-secret"),
    ("tenancy:admission", "exemptNamespaces", ["kube-system", "agents-secret"], "agents-secret"),
    ("tenancy:clusterAdminGroup", "", "admins-secret", "admins-secret"),
]


def _set(doc: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[last] = value


@pytest.fixture
def decrypted(monkeypatch):
    """Pulumi.dev.yaml as `pulumi up` hands it to the program: SECRET's values decrypted, their keys secret."""
    original = settings.read_stack_file

    def read(project_dir, stack):
        config, secret_keys = original(project_dir, stack)
        if stack != "dev":
            return config, secret_keys
        config = dict(config)
        keys = set(secret_keys)
        for key, path, value, _ in SECRET:
            if not path:
                config[key] = value
                keys.add(key)
                continue
            doc = json.loads(config.get(key, "{}"))
            _set(doc, path, value)
            config[key] = json.dumps(doc)
            keys.update({key, f"{key}.{path}"})
        # Service-specific credentials, so the username is used (generator env, registry row).
        registry = json.loads(config["tenancy:registry"])
        config["tenancy:registry"] = json.dumps({**registry, "auth": "service-specific"})
        config[settings.REGISTRY_PASSWORD_KEY] = "password-secret"
        keys.add(settings.REGISTRY_PASSWORD_KEY)
        return config, frozenset(keys)

    monkeypatch.setattr(settings, "read_stack_file", read)


def test_secret_settings_reach_no_input_in_plain_text(decrypted, tmp_path):
    loaded = settings.load_stack(PROJECT, "dev")
    assert {"svc-secret-user", "ns-secret-team", "192.0.2.0/24"} <= loaded.secret_values
    result = synth.run(PROJECT, "dev")
    synth.write(result, tmp_path)
    written = "\n".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    written += json.dumps(result.outputs) + "\n".join(r["urn"] for r in result.resources)
    leaked = sorted(shown for _, _, _, shown in SECRET if shown in written)
    assert leaked == []
    # The settings did reach the inputs, as secrets: the generator's env, the provider, the registry rows.
    generator = next(r for r in result.resources if r["inputs"].get("kind") == "Deployment")
    env = {e["name"]: e.get("value") for e in generator["inputs"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert synth.SECRET in env.values()
    vault_provider = next(r for r in result.resources if r["type"] == "pulumi:providers:vault")
    assert vault_provider["inputs"]["address"] == synth.SECRET
    assert vault_provider["inputs"]["namespace"] == synth.SECRET


def test_a_plain_stack_sends_nothing_as_secret_that_was_not():
    """Masking follows the stack's secrets only: the sample stacks mark none, and their inputs stay readable."""
    assert settings.load_stack(PROJECT, "dev").secret_values == frozenset()


@pytest.mark.parametrize("key, value, why", [
    ("tenancy:org", "calypr", "it is part of every derived name"),
    ("tenancy:admission", '{"namespace": "tenancy-system"}', "it is the name of a Namespace tenancy creates"),
    ("tenancy:vault", '{"address": "https://vault.example:8200", "kvMount": {"path": "kv"}}',
     "it is the id of the Vault mount"),
    ("tenancy:registry", '{"keyspace": "ops"}', "it is the id of the Keyspaces keyspace"),
    ("tenancy:argocd", '{"namespace": "argocd"}', "part of their ids"),
    ("tenancy:protectData", "true", "a number or switch decides resources"),
])
def test_a_setting_that_cannot_stay_secret_is_refused_with_the_reason(key, value, why):
    with pytest.raises(InvalidInput) as caught:
        settings.from_config({**BASE, key: value}, stack="dev", secret_keys=frozenset({key}))
    found = [str(p) for p in caught.value.problems]
    assert any(p.startswith(f"Pulumi.dev.yaml: {key}") and "is marked secret, but cannot stay secret: " in p
               and why in p and p.endswith("; set it in plain text") for p in found), found


def test_only_the_encrypted_values_of_a_mapping_are_secret(tmp_path):
    """`secure:` under `tenancy:registry` makes Pulumi report the whole key secret; the stack file says that only
    the username is, so the keyspace beside it (a resource id) is not refused."""
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  tenancy:registry:\n    keyspace: ops\n    username:\n      secure: v1:AAAA\n")
    config, secret_keys = settings.read_stack_file(tmp_path, "dev")
    assert secret_keys == {"tenancy:registry", "tenancy:registry.username"}
    values, refused = settings.secret_settings({"tenancy:registry": '{"keyspace": "ops", "username": "svc-x"}'},
                                               secret_keys)
    assert (values, refused) == (frozenset({"svc-x"}), [])
