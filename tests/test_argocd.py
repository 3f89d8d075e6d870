"""Argo CD wiring: the plugin generator objects and the ApplicationSet, as builders and as synth renders them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from components import argocd, naming, settings as settings_module, synth
from components.problems import InvalidInput
from tests import schema_check
from tests.conftest import PROJECT, render

sys.path.insert(0, str(PROJECT / "generator"))
from tenancy_generator.params import FIXED_KEYS  # noqa: E402

GENERATOR_TYPE = "tenancy:argocd:ArgoCdGenerator"
K8S_TYPES = {
    "ServiceAccount": "kubernetes:core/v1:ServiceAccount", "Deployment": "kubernetes:apps/v1:Deployment",
    "Service": "kubernetes:core/v1:Service", "ConfigMap": "kubernetes:core/v1:ConfigMap",
    "Secret": "kubernetes:core/v1:Secret", "ApplicationSet": "kubernetes:argoproj.io/v1alpha1:ApplicationSet",
}


def stack_settings(stack: str = "dev", **argocd) -> settings_module.StackSettings:
    base = settings_module.load_stack(PROJECT, stack)
    return base.model_copy(update={"argocd": base.argocd.model_copy(update=argocd)})


def generator_objects(result: synth.SynthResult) -> dict[str, dict]:
    """kind -> synth record of the generator's Kubernetes objects."""
    (component,) = result.of_type(GENERATOR_TYPE)
    return {r["type"].rsplit(":", 1)[1]: r for r in result.descendants(component["urn"]) if r["type"].startswith("kubernetes:")}


def builder_manifests(settings: settings_module.StackSettings) -> list[dict]:
    ns = settings.argocd.namespace
    return [argocd.service_account(settings), argocd.token_secret(ns, "t0ken"), argocd.registry_secret(ns, "pw"),
            argocd.deployment(settings), argocd.service(settings), argocd.plugin_configmap(settings)]


# --- builders against the schemas ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_core_objects_pass_strict_kubernetes_validation(stack):
    for manifest in builder_manifests(stack_settings(stack, generator_role_arn="arn:aws:iam::1:role/gen")):
        kubernetes_validate.validate(manifest, "1.33", strict=True)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_application_set_matches_its_schema(stack):
    assert schema_check.problems(argocd.application_set(stack_settings(stack))) == []


@pytest.mark.parametrize("mutate, needle", [
    (lambda s: s["generators"][0]["plugin"].update(requeueAfter=60), "requeueAfter"),
    (lambda s: s["generators"][0]["plugin"].pop("configMapRef"), "configMapRef"),
    (lambda s: s["template"]["spec"].pop("project"), "project"),
    (lambda s: s["template"]["spec"]["syncPolicy"]["automated"].update(prune="no"), "no"),
])
def test_application_set_schema_rejects_broken_specs(mutate, needle):
    manifest = argocd.application_set(stack_settings())
    mutate(manifest["spec"])
    messages = schema_check.problems(manifest)
    assert any(needle in m for m in messages), messages


# --- synth -------------------------------------------------------------------------------------------------------

def test_dev_renders_every_generator_object(dev):
    objects = generator_objects(dev)
    assert set(objects) == {"ServiceAccount", "Deployment", "Service", "ConfigMap", "Secret", "ApplicationSet"}
    for kind, record in objects.items():
        assert record["type"] == K8S_TYPES[kind]
        assert record["inputs"]["metadata"]["namespace"] == "argocd"
        assert record["provider"].endswith("::kubernetes")
        assert record["name"].startswith("platform-argocd-")
    (password,) = [r for r in dev.of_type("random:index/randomPassword:RandomPassword")
                   if r["name"] == "platform-argocd-token"]
    assert password["provider"].endswith("::random")


def test_token_secret_is_masked_and_readable_by_argo(dev):
    secret = generator_objects(dev)["Secret"]["inputs"]
    assert secret["stringData"] == "[secret]"
    assert secret["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    # The mock password value must appear nowhere a reviewer or a log could see it.
    _, state = synth._random_password("platform-argocd-token", {"length": 48}, "")  # noqa: SLF001
    leaked = json.dumps(dev.resources) + json.dumps(dev.outputs) + json.dumps(dev.manifests())
    assert state["result"] not in leaked


def test_generator_manifests_validate_as_synth_writes_them(dev):
    written = {m["kind"]: m for path, m in dev.manifests() if path.startswith("argocd/")}
    assert set(written) == set(K8S_TYPES)
    for kind, manifest in written.items():
        if kind == "ApplicationSet":
            assert schema_check.problems(manifest) == []
            continue
        if kind == "Secret":  # synth shows only "[secret]" for the whole stringData
            manifest = {k: v for k, v in manifest.items() if k != "stringData"}
        kubernetes_validate.validate(manifest, "1.33", strict=True)


def test_argo_reaches_the_service_with_the_token_the_pod_reads(dev):
    objects = {k: r["inputs"] for k, r in generator_objects(dev).items()}
    config = objects["ConfigMap"]["data"]
    service, pod = objects["Service"], objects["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    # baseUrl resolves to this Service on its port, and the Service selects the generator pods' named port.
    assert config["baseUrl"] == f"http://{service['metadata']['name']}.argocd.svc.cluster.local:{argocd.PORT}"
    assert service["spec"]["ports"][0]["port"] == argocd.PORT
    assert all(pod["metadata"]["labels"][k] == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}
    # Argo sends the Secret's key; the pod reads the same key from the same Secret at PLUGIN_TOKEN_FILE.
    secret_name, key = config["token"].removeprefix("$").split(":")
    assert (secret_name, key) == (objects["Secret"]["metadata"]["name"], naming.GENERATOR_TOKEN_KEY)
    (volume,) = pod["spec"]["volumes"]
    assert volume["secret"]["secretName"] == secret_name and volume["secret"]["items"][0]["key"] == key
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PLUGIN_TOKEN_FILE"] == f"{mount['mountPath']}/{volume['secret']['items'][0]['path']}"
    assert int(config["requestTimeout"]) == 30


def test_generator_reads_the_table_the_registry_creates(dev):
    (table,) = dev.of_type("aws:keyspaces/table:Table")
    container = generator_objects(dev)["Deployment"]["inputs"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["KEYSPACE"], env["TABLE"]) == (table["inputs"]["keyspaceName"], table["inputs"]["tableName"])
    assert env["AWS_REGION"] == "us-west-2"
    assert "KEYSPACES_PASSWORD" not in env  # dev reads with SigV4


def test_pod_runs_locked_down(dev):
    objects = {k: r["inputs"] for k, r in generator_objects(dev).items()}
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is False
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert objects["Deployment"]["spec"]["replicas"] == 1  # dev's setting


def test_application_set_templates_one_app_per_tenant_from_generator_keys(dev, prod):
    appset = generator_objects(dev)["ApplicationSet"]["inputs"]
    (generator,) = appset["spec"]["generators"]
    assert generator["plugin"]["configMapRef"]["name"] == generator_objects(dev)["ConfigMap"]["inputs"]["metadata"]["name"]
    assert generator["plugin"]["requeueAfterSeconds"] == 60
    assert generator_objects(prod)["ApplicationSet"]["inputs"]["spec"]["generators"][0]["plugin"][
        "requeueAfterSeconds"] == 300
    template = appset["spec"]["template"]
    assert template["metadata"]["name"] == "{{tenantId}}"
    assert template["spec"]["destination"]["namespace"] == "{{namespace}}"
    assert template["spec"]["source"]["repoURL"] == "{{repoURL}}" and template["spec"]["source"]["path"] == "{{path}}"
    assert template["spec"]["syncPolicy"]["automated"]["prune"] is False
    # Every placeholder names a key the generator always returns; a typo would render literally into every app.
    placeholders = set(re.findall(r"\{\{\s*([^}\s]+)\s*\}\}", json.dumps(template)))
    assert placeholders and placeholders <= set(FIXED_KEYS)


def test_disabled_stack_renders_none_of_it(tmp_path, monkeypatch):
    read = settings_module.read_stack_file

    def without_argocd(project_dir: Path, stack: str):
        config, secret = read(project_dir, stack)
        argo = json.loads(config["tenancy:argocd"])
        return {**config, "tenancy:argocd": json.dumps({**argo, "enabled": False})}, secret

    monkeypatch.setattr(settings_module, "read_stack_file", without_argocd)
    result = render("dev", """
        tenants:
          - name: solo
            team: t
            repo: {url: https://github.com/x/y.git}
            environments: [dev]
    """, tmp_path)
    assert result.of_type(GENERATOR_TYPE) == []
    assert [r for r in result.resources if "generator" in r["name"] or "argocd" in r["name"]] == []
    assert result.tenant_names() == ["solo"]


# --- settings-dependent shapes ------------------------------------------------------------------------------------

def test_irsa_role_annotates_the_service_account():
    sa = argocd.service_account(stack_settings(), "arn:aws:iam::444455556666:role/gen")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::444455556666:role/gen"}
    assert "annotations" not in argocd.service_account(stack_settings())["metadata"]


def test_generator_gets_its_own_read_only_registry_role(dev):
    (component,) = dev.of_type(GENERATOR_TYPE)
    owned = dev.descendants(component["urn"])
    (role,) = [r for r in owned if r["type"] == "aws:iam/role:Role"]
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert [v for k, v in trust.items() if k.endswith(":sub")] == ["system:serviceaccount:argocd:tenancy-generator"]
    (policy,) = [r for r in owned if r["type"] == "aws:iam/policy:Policy"]
    [statement] = json.loads(policy["inputs"]["policy"])["Statement"]
    (table,) = dev.of_type("aws:keyspaces/table:Table")
    assert statement["Action"] == ["cassandra:Select"]
    assert statement["Resource"][0].endswith("/keyspace/tenant_ops_dev/table/tenant_configs")
    assert statement["Resource"][1].endswith("/keyspace/system*")
    sa = generator_objects(dev)["ServiceAccount"]["inputs"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/tenancy-calypr-dev-argocd-generator")


def test_sigv4_generator_without_an_identity_is_refused():
    from components.problems import InvalidInput

    config, secret = settings_module.read_stack_file(PROJECT, "dev")
    config = {k: v for k, v in config.items() if k != "tenancy:irsa"}
    with pytest.raises(InvalidInput, match="needs an AWS identity"):
        settings_module.from_config(config, stack="dev", secret_keys=secret)


def test_service_specific_credentials_come_from_a_secret_never_inline():
    base = stack_settings()
    settings = base.model_copy(update={"registry": base.registry.model_copy(
        update={"auth": "service-specific", "username": "generator-at-1234"})})
    env = {e["name"]: e for e in argocd.deployment(settings)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KEYSPACES_USERNAME"]["value"] == "generator-at-1234"
    assert "value" not in env["KEYSPACES_PASSWORD"]
    assert env["KEYSPACES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": naming.GENERATOR_REGISTRY_SECRET, "key": naming.GENERATOR_REGISTRY_PASSWORD_KEY}


def test_settings_refuse_the_generator_without_a_registry():
    config, secret = settings_module.read_stack_file(PROJECT, "dev")
    config["tenancy:registry"] = json.dumps({**json.loads(config["tenancy:registry"]), "enabled": False})
    with pytest.raises(InvalidInput, match="argocd.enabled needs"):
        settings_module.from_config(config, stack="dev", secret_keys=secret)
    config["tenancy:argocd"] = json.dumps({**json.loads(config["tenancy:argocd"]), "generatorRoleArn": "role/x"})
    with pytest.raises(InvalidInput, match="IAM role ARN"):
        settings_module.from_config(config, stack="dev", secret_keys=secret)
