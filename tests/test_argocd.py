"""Argo CD wiring: the plugin generator objects and the ApplicationSet, as builders and as synth renders them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from components import argocd, naming, settings as settings_module
from tenancy import synth
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
    "NetworkPolicy": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "ExpectedConfigMap": "kubernetes:core/v1:ConfigMap",
}


def stack_settings(stack: str = "dev", **argocd) -> settings_module.StackSettings:
    base = settings_module.load_stack(PROJECT, stack)
    return base.model_copy(update={"argocd": base.argocd.model_copy(update=argocd)})


def generator_objects(result: synth.SynthResult) -> dict[str, dict]:
    """kind -> synth record of the generator's Kubernetes objects (the expected-tenants ConfigMap as
    "ExpectedConfigMap")."""
    (component,) = result.of_type(GENERATOR_TYPE)
    found = {}
    for record in result.descendants(component["urn"]):
        if record["type"].startswith("kubernetes:"):
            kind = record["type"].rsplit(":", 1)[1]
            if record["inputs"]["metadata"]["name"] == naming.GENERATOR_EXPECTED_CONFIGMAP:
                kind = "ExpectedConfigMap"
            found[kind] = record
    return found


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
    assert set(objects) == set(K8S_TYPES)
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
    # Secret as a whole; synth keeps its key so the manifest is still a valid Secret, and masks the value.
    assert secret["stringData"] == {naming.GENERATOR_TOKEN_KEY: "[secret]"}
    assert secret["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    # The mock password value must appear nowhere a reviewer or a log could see it.
    _, state = synth._random_password("platform-argocd-token", {"length": 48}, "")  # noqa: SLF001
    leaked = json.dumps(dev.resources) + json.dumps(dev.outputs) + json.dumps(dev.manifests())
    assert state["result"] not in leaked


def test_generator_manifests_validate_as_synth_writes_them(dev):
    written = {("ExpectedConfigMap" if m["metadata"]["name"] == naming.GENERATOR_EXPECTED_CONFIGMAP else m["kind"]): m
               for path, m in dev.manifests() if path.startswith("argocd/") and m["kind"] != "AppProject"}
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
    volume = next(v for v in pod["spec"]["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == secret_name and volume["secret"]["items"][0]["key"] == key
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PLUGIN_TOKEN_FILE"] == f"{mount['mountPath']}/{volume['secret']['items'][0]['path']}"
    assert int(config["requestTimeout"]) == 30


def test_generator_reads_the_expected_tenants_tenancy_publishes(dev):
    objects = {k: r["inputs"] for k, r in generator_objects(dev).items()}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    expected = objects["ExpectedConfigMap"]
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == expected["metadata"]["name"]
    (item,) = volume["configMap"]["items"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EXPECTED_TENANTS_FILE"] == f"{mount['mountPath']}/{item['path']}"
    assert env["ALLOW_EMPTY"] == "false"
    # Every dev tenant is active or suspended, so every one must be in every answer.
    published = json.loads(expected["data"][item["key"]])
    assert published == {f"calypr-{t}": "active" for t in sorted(dev.tenant_names())}


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
    assert template["metadata"]["name"] == "{{ .tenantId }}"
    assert template["spec"]["destination"]["namespace"] == "{{ .namespace }}"
    assert template["spec"]["source"]["repoURL"] == "{{ .repoURL }}"
    assert template["spec"]["syncPolicy"]["automated"]["prune"] is False
    # Every placeholder names a key the generator always returns, and a missing one fails instead of rendering.
    assert appset["spec"]["goTemplate"] is True and appset["spec"]["goTemplateOptions"] == ["missingkey=error"]
    placeholders = set(re.findall(r"\{\{\s*\.([^}\s]+)\s*\}\}", json.dumps(template) + appset["spec"]["templatePatch"]))
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


# --- confinement, replayed the way Argo CD v3.5.7 decides -------------------------------------------------------------
# Replays (argo-cd v3.5.7): pkg/apis/application/v1alpha1/app_project_types.go `IsGroupKindNamePermitted`,
# `isDestinationMatched`, `IsSourcePermitted` (+ util/git NormalizeGitURL), util/settings/impersonation.go
# `DeriveServiceAccountToImpersonate`, applicationset/utils/utils.go `RenderTemplateParams` (the resources
# finalizer) and applicationset/controllers/template/patch.go (templatePatch, `project` kept).

RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io"
APPPROJECT_TYPE = "kubernetes:argoproj.io/v1alpha1:AppProject"


def _glob(pattern: str, value: str, separator: str = "") -> bool:
    """gobwas/glob as Argo uses it: `*` stops at a separator when one is given; `!` negates."""
    if pattern.startswith("!"):
        return not _glob(pattern[1:], value, separator)
    star = f"[^{re.escape(separator)}]*" if separator else ".*"
    regex = "".join(star if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def _normalize_git(url: str) -> str:
    url = url.strip().lower()
    if url.startswith("git@"):
        url = url.replace(":", "/", 1)
    return url.removesuffix(".git")


def kind_permitted(project: dict, group: str, kind: str, namespaced: bool) -> bool:
    spec = project["spec"]
    if namespaced:
        white, black = spec.get("namespaceResourceWhitelist"), spec.get("namespaceResourceBlacklist") or []
        listed = lambda items: any(_glob(i["kind"], kind) and _glob(i["group"], group) for i in items)  # noqa: E731
        return (white is None or (bool(white) and listed(white))) and not (black and listed(black))
    white = spec.get("clusterResourceWhitelist") or []
    return bool(white) and any(_glob(i["kind"], kind) and _glob(i["group"], group) for i in white)


def destination_permitted(project: dict, server: str, namespace: str) -> bool:
    return any(_glob(d.get("server", ""), server) and _glob(d.get("namespace", ""), namespace)
               for d in project["spec"].get("destinations", []))


def source_permitted(project: dict, repo: str) -> bool:
    return any(_glob(_normalize_git(r), _normalize_git(repo), "/") for r in project["spec"].get("sourceRepos", []))


def impersonated(project: dict, server: str, namespace: str) -> str:
    for item in project["spec"].get("destinationServiceAccounts", []):
        if _glob(item["server"], server) and _glob(item["namespace"], namespace):
            return f"system:serviceaccount:{namespace}:{item['defaultServiceAccount']}"
    return ""


def _substitute(value, params):
    if isinstance(value, str):
        # missingkey=error: a placeholder without a parameter fails (KeyError), as the Go template would.
        return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: str(params[m.group(1)]).lower()
                      if isinstance(params[m.group(1)], bool) else str(params[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: _substitute(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params) for v in value]
    return value


def _merge(base: dict, patch: dict) -> dict:
    merged = dict(base)
    for key, value in patch.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def generated_application(appset: dict, params: dict) -> dict:
    """The Application the ApplicationSet controller would create for one parameter map."""
    import yaml

    spec = appset["spec"]
    app = _substitute(spec["template"], params)
    policy = spec.get("syncPolicy") or {}
    if not policy.get("preserveResourcesOnDeletion") and not app["metadata"].get("finalizers"):
        app["metadata"]["finalizers"] = [RESOURCES_FINALIZER]
    if spec.get("templatePatch"):
        patched = _merge(app, yaml.safe_load(_substitute(spec["templatePatch"], params)))
        patched["spec"]["project"] = app["spec"]["project"]
        app = patched
    return app


def auto_sync_enabled(app: dict) -> bool:
    automated = (app["spec"].get("syncPolicy") or {}).get("automated")
    return automated is not None and automated.get("enabled", True) is not False


def generator_params(result: synth.SynthResult) -> dict[str, dict]:
    """Tenant name -> the parameter map the generator returns for the row tenancy writes."""
    from tenancy_generator.params import TenantRow, parameter_map

    found = {}
    for record in result.of_type("pulumi-python:dynamic:Resource"):
        row = TenantRow.from_mapping(record["inputs"])
        if row.generated:
            found[row.tenant_id] = parameter_map(row)
    return found


def projects(result: synth.SynthResult) -> dict[str, dict]:
    return {r["inputs"]["metadata"]["name"]: r["inputs"] for r in result.of_type(APPPROJECT_TYPE)}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_tenant_application_lands_in_its_own_confined_project(stack, request):
    result = request.getfixturevalue(stack)
    appset = generator_objects(result)["ApplicationSet"]["inputs"]
    params, found = generator_params(result), projects(result)
    assert params and set(found) == set(params)
    namespaces = {p["namespace"] for p in params.values()}
    for tenant_id, p in params.items():
        app = generated_application(appset, p)
        project = found[app["spec"]["project"]]
        assert app["spec"]["project"] == tenant_id != "default"
        server, namespace = app["spec"]["destination"]["server"], app["spec"]["destination"]["namespace"]
        # The tenant's own Application is allowed ...
        assert destination_permitted(project, server, namespace)
        assert source_permitted(project, app["spec"]["source"]["repoURL"])
        assert impersonated(project, server, namespace) == f"system:serviceaccount:{namespace}:{naming.ARGOCD_DEPLOYER}"
        # ... and nothing beyond it: no other namespace, no other repository, nothing cluster-scoped.
        for elsewhere in (namespaces - {namespace}) | {"argocd", "kube-system", "default", ""}:
            assert not destination_permitted(project, server, elsewhere), elsewhere
        assert not destination_permitted(project, "https://other-cluster.example", namespace)
        for other in params.values():
            if other["repoURL"] != p["repoURL"]:
                assert not source_permitted(project, other["repoURL"])
        assert not source_permitted(project, p["repoURL"].removesuffix(".git") + "-fork.git")
        for group, kind in (("", "Namespace"), ("rbac.authorization.k8s.io", "ClusterRole"),
                            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                            ("apiextensions.k8s.io", "CustomResourceDefinition"),
                            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")):
            assert not kind_permitted(project, group, kind, namespaced=False), kind
        # The fences tenancy puts in the namespace cannot be changed by a sync.
        for group, kind in (("", "ResourceQuota"), ("", "LimitRange"), ("networking.k8s.io", "NetworkPolicy"),
                            ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding"),
                            ("", "ServiceAccount"), ("external-secrets.io", "SecretStore"),
                            ("config.ratify.deislabs.io", "NamespacedVerifier"), ("argoproj.io", "AppProject")):
            assert not kind_permitted(project, group, kind, namespaced=True), kind
        for group, kind in (("apps", "Deployment"), ("batch", "Job"), ("", "ConfigMap"),
                            ("argoproj.io", "WorkflowTemplate")):
            assert kind_permitted(project, group, kind, namespaced=True), kind


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_application_set_never_cascades(stack, request):
    result = request.getfixturevalue(stack)
    appset = generator_objects(result)["ApplicationSet"]["inputs"]
    assert appset["spec"]["syncPolicy"]["preserveResourcesOnDeletion"] is True
    assert appset["spec"]["syncPolicy"]["applicationsSync"] == "sync"
    for p in generator_params(result).values():
        assert RESOURCES_FINALIZER not in generated_application(appset, p)["metadata"].get("finalizers", [])


def test_suspension_keeps_the_application_and_stops_automated_sync(dev):
    appset = generator_objects(dev)["ApplicationSet"]["inputs"]
    (active,) = [p for p in generator_params(dev).values()][:1]
    suspended = {**active, "autoSync": False}
    assert auto_sync_enabled(generated_application(appset, active)) is True
    app = generated_application(appset, suspended)
    assert auto_sync_enabled(app) is False
    assert app["metadata"]["name"] == active["tenantId"] and app["spec"]["project"] == active["tenantId"]
    # A patch that tried to move the Application to another project is undone by the controller.
    hijack = {**appset, "spec": {**appset["spec"], "templatePatch": "spec:\n  project: default\n"}}
    assert generated_application(hijack, active)["spec"]["project"] == active["tenantId"]


def test_a_placeholder_the_generator_does_not_return_fails_generation(dev):
    appset = generator_objects(dev)["ApplicationSet"]["inputs"]
    params = next(iter(generator_params(dev).values()))
    with pytest.raises(KeyError):
        generated_application(appset, {k: v for k, v in params.items() if k != "autoSync"})


def test_deployer_is_bound_to_exactly_the_tenant_admin_role(dev):
    for tenant in dev.tenant_names():
        records = [r["inputs"] for r in dev.tenant(tenant) if r["custom"]]
        (account,) = [m for m in records if m.get("kind") == "ServiceAccount"
                      and m["metadata"]["name"] == naming.ARGOCD_DEPLOYER]
        namespace = account["metadata"]["namespace"]
        assert account["automountServiceAccountToken"] is False
        bindings = [m for m in records if m.get("kind") in ("RoleBinding", "ClusterRoleBinding")
                    and any(s.get("name") == naming.ARGOCD_DEPLOYER for s in m["subjects"])]
        assert [(b["kind"], b["metadata"]["namespace"], b["roleRef"]) for b in bindings] == [
            ("RoleBinding", namespace, {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                        "name": naming.TENANT_ADMIN_ROLE})]
        assert bindings[0]["subjects"] == [{"kind": "ServiceAccount", "name": naming.ARGOCD_DEPLOYER,
                                            "namespace": namespace}]
        # The Role it binds is the one a team admin gets, in the same namespace.
        assert any(m.get("kind") == "Role" and m["metadata"] == {"name": naming.TENANT_ADMIN_ROLE,
                                                                 "namespace": namespace} for m in records)


def test_app_projects_and_application_set_validate_against_the_upstream_crds(dev, prod):
    """argo-cd v3.5.7 manifests/crds/{appproject,applicationset}-crd.yaml (`make crds`, tests/crds.py), applied
    with strict field validation as the API server does."""
    from tests import schema_check

    for result in (dev, prod):
        objects = [m for _, m in result.manifests() if m["kind"] in ("AppProject", "ApplicationSet")]
        assert {m["kind"] for m in objects} == {"AppProject", "ApplicationSet"}
        assert {m["metadata"]["name"]: schema_check.problems(m) for m in objects} == \
            {m["metadata"]["name"]: [] for m in objects}


# --- the generator's own network and image ------------------------------------------------------------------------

def test_generator_network_policy_admits_only_the_controller_and_reaches_only_dns_and_the_registry(dev):
    policy = generator_objects(dev)["NetworkPolicy"]["inputs"]["spec"]
    pod_labels = generator_objects(dev)["Deployment"]["inputs"]["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in policy["podSelector"]["matchLabels"].items())
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["from"] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "argocd-applicationset-controller"}}}]
    assert ingress["ports"] == [{"protocol": "TCP", "port": argocd.PORT}]
    dns, registry = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {p["port"] for p in registry["ports"]} == {9142, 443}  # Keyspaces, and STS for the IRSA token
    (block,) = registry["to"]
    assert "169.254.169.254/32" in block["ipBlock"]["except"] and "10.0.0.0/8" in block["ipBlock"]["except"]
    text = json.dumps(policy)
    assert '"namespaceSelector": {}' not in text and '"podSelector": {}' not in text


def test_generator_image_can_be_pinned_by_digest():
    digest = "sha256:" + "ab" * 32
    settings = stack_settings(generator_image_digest=digest)
    container = argocd.deployment(settings)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ghcr.io/calypr/tenancy-generator:0.1.0@{digest}"
    config, secret = settings_module.read_stack_file(PROJECT, "dev")
    for field, value, why in (("generatorImageDigest", "sha256:abc", "64 lowercase hex"),
                              ("generatorImage", "ghcr.io/x/y@sha256:" + "0" * 64, "generatorImageDigest")):
        bad = {**config, "tenancy:argocd": json.dumps({**json.loads(config["tenancy:argocd"]), field: value})}
        with pytest.raises(InvalidInput, match=why):
            settings_module.from_config(bad, stack="dev", secret_keys=secret)


def test_empty_platform_is_a_setting():
    env = lambda s: {e["name"]: e.get("value") for e in  # noqa: E731
                     argocd.deployment(s)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env(stack_settings())["ALLOW_EMPTY"] == "false"
    assert env(stack_settings(allow_empty=True))["ALLOW_EMPTY"] == "true"


# --- waiting for the generator's rollout ----------------------------------------------------------------------------

def _skips_await(manifest: dict) -> bool:
    """pulumi-kubernetes v4.25.0 `metadata.SkipAwaitLogic` (provider/pkg/metadata/overrides.go): the annotation
    `pulumi.com/skipAwait` (provider/pkg/metadata/annotations.go) is exactly "true" (`IsAnnotationTrue`)."""
    return (manifest["metadata"].get("annotations") or {}).get("pulumi.com/skipAwait") == "true"


def test_await_rollout_false_skips_the_providers_wait_for_the_generator(dev, monkeypatch):
    """With `tenancy:argocd.awaitRollout: false` the provider creates the generator Deployment and Service without
    awaiting them: provider/pkg/await/await.go (v4.25.0) skips the awaiter of a kind (`awaiters.go`: the
    Deployment's readiness, the Service's endpoints) when `metadata.SkipAwaitLogic(inputs)` holds, in Read and in
    `newLegacyReadyCondition` (create and update). The default keeps awaiting, on every shipped stack."""
    read = settings_module.read_stack_file

    def without_waiting(project_dir: Path, stack: str):
        config, secret = read(project_dir, stack)
        argo = json.loads(config["tenancy:argocd"])
        return {**config, "tenancy:argocd": json.dumps({**argo, "awaitRollout": False})}, secret

    awaited = {k: r["inputs"] for k, r in generator_objects(dev).items()}
    assert not any(_skips_await(m) for m in awaited.values())
    for stack in ("staging", "prod"):
        assert settings_module.load_stack(PROJECT, stack).argocd.await_rollout is True
    monkeypatch.setattr(settings_module, "read_stack_file", without_waiting)
    objects = {k: r["inputs"] for k, r in generator_objects(render("dev")).items()}
    assert {kind for kind, manifest in objects.items() if _skips_await(manifest)} == {"Deployment", "Service"}
    # Nothing else about them changes.
    for kind in ("Deployment", "Service"):
        without = {**objects[kind], "metadata": {k: v for k, v in objects[kind]["metadata"].items()
                                                 if k != "annotations"}}
        assert without == awaited[kind]
