"""Admission policies: what every stack renders, and what their CEL decides for sample pods.

The CEL is evaluated here with cel-python, standing in for the API server's evaluator the way
k8s.io/apiserver v0.34 `pkg/admission/plugin/policy/validating` runs a ValidatingAdmissionPolicy: match
conditions first, then `variables` (each sees the earlier ones), then each validation; a false validation is
a refusal carrying its messageExpression. The Kubernetes string extensions the expressions use (`split`, `join`,
from cel-go `ext.Strings`, enabled by apiserver `pkg/cel/environment/base.go`) are supplied as functions.
The real API server runs the same policies in tests/e2e/test_admission.py.
"""

from __future__ import annotations

from typing import Any, Optional

import celpy
import celpy.celtypes as ct
import pytest

from components import admission, catalogue, images, naming
from components import settings as stack_settings
from components.problems import InvalidInput
from tests.conftest import PROJECT, render, sample

STACKS = ("dev", "staging", "prod")
_FUNCTIONS = {
    "split": lambda s, sep: ct.ListType([ct.StringType(x) for x in str(s).split(str(sep))]),
    "join": lambda items, sep: ct.StringType(str(sep).join(str(x) for x in items)),
}
_ENV = celpy.Environment()


def _eval(expression: str, activation: dict[str, Any]) -> Any:
    return _ENV.program(_ENV.compile(expression), functions=_FUNCTIONS).evaluate(activation)


def decide(policy: dict, obj: dict, *, tenant: Optional[str], params: Optional[dict[str, str]] = None,
           operation: str = "CREATE", old: Optional[dict] = None, resource: str = "pods") -> Optional[str]:
    """None when admitted, else the refusal message."""
    labels = {naming.TENANT_LABEL: tenant} if tenant else {}
    namespace = {"metadata": {"name": f"wf-calypr-{tenant}" if tenant else "platform", "labels": labels}}
    activation = {
        "object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old),
        "namespaceObject": celpy.json_to_cel(namespace),
        "request": celpy.json_to_cel({"operation": operation, "resource": {"group": "", "version": "v1",
                                                                           "resource": resource}}),
        "params": celpy.json_to_cel({"data": params or {}}),
    }
    spec = policy["spec"]
    if not all(_eval(c["expression"], activation) for c in spec.get("matchConditions", [])):
        return None
    variables: dict[str, Any] = {}
    for variable in spec["variables"]:
        activation["variables"] = celpy.json_to_cel(variables) if not variables else ct.MapType(variables)
        variables[ct.StringType(variable["name"])] = _eval(variable["expression"], activation)
    activation["variables"] = ct.MapType(variables)
    for validation in spec["validations"]:
        if not _eval(validation["expression"], activation):
            return str(_eval(validation["messageExpression"], activation))
    return None


POLICIES = admission.policies("calypr", "dev")


def pod(*images: str, **spec: Any) -> dict:
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images or ("ghcr.io/calypr/tool:1",))]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers, **spec}}


def toleration(tenant: str, operator: str = "Equal") -> dict:
    item = {"key": naming.TENANT_LABEL, "operator": operator, "effect": "NoSchedule"}
    return {**item, "value": tenant} if operator == "Equal" else item


def pinned(tenant: str) -> dict:
    return {"nodeSelector": {naming.TENANT_LABEL: tenant}, "tolerations": [toleration(tenant)]}


def affinity(operator: str, *values: str, kind: str = "required") -> dict:
    expression = {"key": naming.TENANT_LABEL, "operator": operator, **({"values": list(values)} if values else {})}
    term = {"matchExpressions": [expression]}
    if kind == "required":
        node = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    else:
        node = {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": term}]}
    return {"affinity": {"nodeAffinity": node}}


# ------------------------------------------------------------------------------------------ node isolation

@pytest.mark.parametrize("spec, admitted", [
    ({}, True),
    (pinned("alpha"), True),
    ({"tolerations": [toleration("beta")]}, False),
    ({"tolerations": [toleration("alpha", "Exists")]}, False),
    ({"tolerations": [{"operator": "Exists"}]}, False),
    ({"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}, True),
    ({"nodeSelector": {naming.TENANT_LABEL: "beta"}}, False),
    (affinity("In", "beta"), False),
    (affinity("In", "alpha", "beta"), False),
    (affinity("In", "alpha"), True),
    (affinity("Exists"), False),
    (affinity("NotIn", "alpha"), False),
    (affinity("DoesNotExist"), True),
    (affinity("In", "beta", kind="preferred"), False),
    ({"nodeName": "ip-10-0-0-1"}, False),
])
def test_node_isolation_in_a_tenant_namespace(spec, admitted):
    message = decide(POLICIES[admission.NODE_ISOLATION], pod(**spec), tenant="alpha")
    assert (message is None) == admitted, message
    if message:
        assert message.startswith("tenant alpha: ") and message.endswith("(tenancy rule node-isolation)")


@pytest.mark.parametrize("spec, admitted", [
    ({"tolerations": [{"operator": "Exists"}]}, True),  # node agents (DaemonSets) outside tenant namespaces
    ({"tolerations": [toleration("alpha")]}, False),
    ({"nodeSelector": {naming.TENANT_LABEL: "alpha"}}, False),
    (affinity("In", "alpha"), False),
    ({"nodeName": "ip-10-0-0-1"}, True),
])
def test_node_isolation_outside_tenant_namespaces(spec, admitted):
    message = decide(POLICIES[admission.NODE_ISOLATION], pod(**spec), tenant=None)
    assert (message is None) == admitted, message
    if message:
        assert message.startswith("namespace platform: ")


def test_pod_updates_are_checked_only_when_the_spec_changes():
    policy = POLICIES[admission.NODE_ISOLATION]
    old = pod(tolerations=[toleration("beta")])
    relabelled = {**old, "metadata": {"name": "p", "labels": {"x": "y"}}}
    assert decide(policy, relabelled, tenant="alpha", operation="UPDATE", old=old) is None
    widened = pod(tolerations=[toleration("beta"), toleration("gamma")])
    assert decide(policy, widened, tenant="alpha", operation="UPDATE", old=old) is not None


# ------------------------------------------------------------------------------------------ dedicated nodes

@pytest.mark.parametrize("spec, admitted", [
    (pinned("alpha"), True),
    ({}, False),
    ({"tolerations": [toleration("alpha")]}, False),
    (affinity("In", "alpha"), True),
    (affinity("In", "alpha", kind="preferred"), False),
    ({"nodeSelector": {"kubernetes.io/arch": "amd64"}}, False),
])
def test_a_dedicated_tenants_pods_select_its_nodes(spec, admitted):
    message = decide(POLICIES[admission.DEDICATED_NODES], pod(**spec), tenant="alpha",
                     params={"alpha.nodes": "dedicated"})
    assert (message is None) == admitted, message
    if message:
        assert "tenant alpha: " in message and "dedicated-nodes" in message


def test_a_shared_tenant_needs_no_placement():
    assert decide(POLICIES[admission.DEDICATED_NODES], pod(), tenant="beta",
                  params={"alpha.nodes": "dedicated", "beta.nodes": "shared"}) is None


# ------------------------------------------------------------------------------------------ allow-lists

REGISTRY_PARAMS = {"alpha.registries": "ghcr.io/calypr,docker.io/library,registry.local:5000"}


@pytest.mark.parametrize("image, admitted", [
    ("ghcr.io/calypr/tool:1", True),
    ("ghcr.io/calypr/sub/tool@sha256:" + "a" * 64, True),
    ("ghcr.io/calypr-evil/tool:1", False),
    ("ghcr.io.evil.example/calypr/tool:1", False),
    ("nginx", True),                       # docker.io/library/nginx
    ("nginx@sha256:" + "b" * 64, True),
    ("library/nginx:1", True),
    ("someone/nginx:1", False),            # docker.io/someone/nginx
    ("registry.local:5000/x:1", True),
    ("quay.io/argoproj/argoexec:v3.7.9", False),
])
def test_registries(image, admitted):
    message = decide(POLICIES[admission.REGISTRIES], pod(image), tenant="alpha", params=REGISTRY_PARAMS)
    assert (message is None) == admitted, message
    if message:
        assert message.startswith("tenant alpha: image ") and "allowed-registries" in message


IMAGE_CASES = ["nginx", "library/nginx:1", "someone/nginx:1", "docker.io/nextflow/nextflow:24.10.4",
               "nextflow/nextflow:1", "index.docker.io/nextflow/nextflow:1", "ghcr.io/calypr/tool:1",
               "ghcr.io/calypr-evil/tool:1", "ghcr.io.evil.example/calypr/x", "localhost/x:1", "localhost:5000/x",
               "registry.local:5000/x:1", "quay.io/argoproj/argoexec:v3.7.9", images.FLUX_VIEW_IMAGE]
LIST_CASES = [["ghcr.io/calypr"], ["docker.io/library", "registry.local:5000"], ["docker.io/nextflow"],
              ["docker.io"], ["localhost"], ["ghcr.io/converged-computing", "quay.io/argoproj"]]


@pytest.mark.parametrize("registries", LIST_CASES, ids=",".join)
def test_the_catalogue_reads_images_as_the_policy_does(registries):
    """images.admitted (what the catalogue checks tenancy's own images with) agrees with the allowed-registries
    policy's CEL on every image spelling, so the catalogue refuses exactly the lists the API server would enforce
    against tenancy's pods."""
    params = {"alpha.registries": ",".join(registries)}
    for image in IMAGE_CASES:
        by_policy = decide(POLICIES[admission.REGISTRIES], pod(image), tenant="alpha", params=params) is None
        assert images.admitted(image, registries) == by_policy, image


def test_every_container_kind_is_checked_and_no_list_means_no_restriction():
    policy = POLICIES[admission.REGISTRIES]
    for field in ("initContainers", "ephemeralContainers"):
        bad = pod(**{field: [{"name": "x", "image": "evil.example/x"}]})
        assert "evil.example/x" in decide(policy, bad, tenant="alpha", params=REGISTRY_PARAMS)
    assert decide(policy, pod("evil.example/x"), tenant="beta", params=REGISTRY_PARAMS) is None


def pvc(storage_class: Optional[str]) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": spec}


@pytest.mark.parametrize("storage_class, admitted", [("gp3", True), ("io2", False), (None, False), ("", False)])
def test_storage_classes_of_claims(storage_class, admitted):
    message = decide(POLICIES[admission.STORAGE_CLASSES], pvc(storage_class), tenant="alpha",
                     params={"alpha.storageClasses": "gp3,gp2"}, resource="persistentvolumeclaims")
    assert (message is None) == admitted, message
    if message:
        assert message.startswith("tenant alpha: ") and "allowed-storage-classes" in message


def test_storage_classes_of_generic_ephemeral_volumes():
    def with_volume(storage_class: str) -> dict:
        template = {"spec": {**pvc(storage_class)["spec"]}}
        return pod(volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}])

    policy, params = POLICIES[admission.STORAGE_CLASSES], {"alpha.storageClasses": "gp3"}
    assert decide(policy, with_volume("gp3"), tenant="alpha", params=params) is None
    assert "storage class io2" in decide(policy, with_volume("io2"), tenant="alpha", params=params)
    assert decide(policy, pod(), tenant="alpha", params=params) is None


@pytest.mark.parametrize("spec, admitted", [({}, True), ({"priorityClassName": "batch"}, True),
                                            ({"priorityClassName": "system-node-critical"}, False)])
def test_priority_classes(spec, admitted):
    message = decide(POLICIES[admission.PRIORITY_CLASSES], pod(**spec), tenant="alpha",
                     params={"alpha.priorityClasses": "batch"})
    assert (message is None) == admitted, message
    if message:
        assert "tenant alpha: priority class system-node-critical" in message


# ------------------------------------------------------------------------------------------ rendered stacks

def _cluster_objects(stack: str) -> dict[tuple[str, str], dict]:
    return {(m["kind"], m["metadata"]["name"]): m for _, m in sample(stack).manifests()
            if m["apiVersion"] == admission.API_VERSION}


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics (k8s.io/apimachinery pkg/apis/meta/v1/helpers.go LabelSelectorAsSelector)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        present, value = e["key"] in labels, labels.get(e["key"])
        if not {"In": present and value in e.get("values", []), "NotIn": not present or value not in e.get("values", []),
                "Exists": present, "DoesNotExist": not present}[e["operator"]]:
            return False
    return True


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_binds_one_policy_per_rule(stack):
    objects = _cluster_objects(stack)
    policies = {name: m for (kind, name), m in objects.items() if kind == "ValidatingAdmissionPolicy"}
    bindings = {name: m for (kind, name), m in objects.items() if kind == "ValidatingAdmissionPolicyBinding"}
    assert sorted(policies) == sorted(naming.admission_object("calypr", stack, rule) for rule in admission.RULES)
    assert {b["spec"]["policyName"] for b in bindings.values()} == set(policies)
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings.values())
    assert all(p["spec"]["failurePolicy"] == "Fail" for p in policies.values())


@pytest.mark.parametrize("stack", STACKS)
def test_bindings_reach_every_tenant_namespace_and_their_parameters(stack):
    result = sample(stack)
    manifests = [m for _, m in result.manifests()]
    namespaces = {m["metadata"]["name"]: m["metadata"]["labels"] for m in manifests if m["kind"] == "Namespace"}
    tenant_namespaces = {n: labels for n, labels in namespaces.items() if naming.TENANT_LABEL in labels}
    assert tenant_namespaces
    configmaps = {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in manifests if m["kind"] == "ConfigMap"}
    specs = {spec.name: spec for spec, _ in catalogue.load(PROJECT / "tenants.yaml", stacks=STACKS)
             .for_stack(stack_settings.load_stack(PROJECT, stack))}
    for (kind, _), binding in _cluster_objects(stack).items():
        if kind != "ValidatingAdmissionPolicyBinding":
            continue
        selector = binding["spec"].get("matchResources", {}).get("namespaceSelector", {})
        for name, labels in namespaces.items():
            labels = {**labels, "kubernetes.io/metadata.name": name}
            expected = name in tenant_namespaces or ("paramRef" not in binding["spec"] and name != "kube-system")
            assert _selects(selector, labels) == expected, (binding["metadata"]["name"], name)
        if "paramRef" in binding["spec"]:
            ref = binding["spec"]["paramRef"]
            assert ref["parameterNotFoundAction"] == "Deny"
            data = configmaps[ref["namespace"], ref["name"]]["data"]
            assert ref["namespace"] not in tenant_namespaces
            for tenant, spec in specs.items():
                assert data[f"{tenant}.nodes"] == spec.isolation.nodes
                for suffix, field in admission.LIST_PARAMS.items():
                    assert data.get(f"{tenant}.{suffix}", "").split(",") == (getattr(spec.allowed, field) or [""])


def test_tenants_templated_images_pass_their_own_allow_list():
    """A registry allow-list must not refuse the pods tenancy itself templates for the tenant."""
    for stack in STACKS:
        data = {}
        manifests = [m for _, m in sample(stack).manifests()]
        for m in manifests:
            if m["kind"] == "ConfigMap" and m["metadata"]["name"] == naming.admission_object("calypr", stack, "params"):
                data = m["data"]
        for m in manifests:
            tenant = m["metadata"].get("namespace", "").removeprefix("wf-calypr-")
            images = [t["container"]["image"] for t in m["spec"].get("templates", []) if "container" in t] \
                if m["kind"] == "WorkflowTemplate" else []
            for image in images:
                assert decide(POLICIES[admission.REGISTRIES], pod(image), tenant=tenant, params=data) is None


# ------------------------------------------------------------------------------------------ catalogue

CATALOGUE = """
defaults:
  allowed: {registries: [ghcr.io/calypr, docker.io/nextflow, quay.io/argoproj]}
  overrides:
    prod: {allowed: {storageClasses: [gp3]}}
tenants:
  - name: alpha
    team: a
    repo: {url: https://github.com/calypr/a.git}
    allowed: {priorityClasses: [batch]}
  - name: beta
    team: b
    repo: {url: https://github.com/calypr/b.git}
    allowed: {registries: []}
    overrides:
      prod: {allowed: {registries: [docker.io/nextflow, quay.io/argoproj]}}
"""


def _params(result) -> dict[str, str]:
    return next(m["data"] for _, m in result.manifests() if m["kind"] == "ConfigMap"
                and m["metadata"]["name"].endswith("-params"))


def test_allow_lists_merge_per_environment(tmp_path):
    dev, prod = _params(render("dev", CATALOGUE, tmp_path)), _params(render("prod", CATALOGUE, tmp_path))
    assert dev == {"alpha.nodes": "shared", "alpha.registries": "ghcr.io/calypr,docker.io/nextflow,quay.io/argoproj",
                   "alpha.priorityClasses": "batch", "beta.nodes": "shared"}
    assert prod["alpha.storageClasses"] == prod["beta.storageClasses"] == "gp3"
    assert prod["beta.registries"] == "docker.io/nextflow,quay.io/argoproj"


@pytest.mark.parametrize("field, value, why", [
    ("registries", "ghcr.io/calypr/", "is not a registry"),
    ("registries", "nginx", "is not a registry"),
    ("registries", "ghcr.io,quay.io", "is not a registry"),
    ("storageClasses", "GP3", "is not a Kubernetes object name"),
    ("priorityClasses", "a b", "is not a Kubernetes object name"),
])
def test_bad_allow_list_entries_are_refused_with_their_place(tmp_path, field, value, why):
    text = CATALOGUE.replace("allowed: {priorityClasses: [batch]}", f"allowed: {{{field}: ['{value}']}}")
    with pytest.raises(InvalidInput) as caught:
        render("dev", text, tmp_path)
    assert f"tenants[0] (name=alpha).allowed.{field}" in str(caught.value) and why in str(caught.value)


REFUSING = """
defaults:
  minicluster: {size: 2, command: "flux run hostname"}
tenants:
  - name: alpha
    team: a
    repo: {url: https://github.com/calypr/a.git}
    allowed: {registries: [ghcr.io/calypr, quay.io/argoproj]}
  - name: beta
    team: b
    repo: {url: https://github.com/calypr/b.git}
    minicluster: {enabled: true}
    allowed: {registries: [docker.io/nextflow, quay.io/argoproj]}
  - name: gamma
    team: g
    repo: {url: https://github.com/calypr/g.git}
    lifecycle: offboarded
    allowed: {registries: [ghcr.io/calypr]}
"""


def test_an_allow_list_that_would_refuse_tenancys_own_pods_is_refused(tmp_path):
    """alpha's list leaves out the WorkflowTemplate's image; beta's the MiniCluster's image and the init container
    Flux Operator 0.2.x adds (flux-framework/flux-operator 0.2.1 api/v1alpha2/minicluster_types.go defaults
    `Flux.Container.Image`); offboarded gamma runs neither, so its list stands."""
    with pytest.raises(InvalidInput) as caught:
        render("dev", REFUSING, tmp_path)
    lines = str(caught.value).splitlines()
    alpha = [line for line in lines if "tenants[0] (name=alpha).allowed.registries" in line]
    beta = [line for line in lines if "tenants[1] (name=beta).allowed.registries" in line]
    assert len(alpha) == 1 and "does not admit docker.io/nextflow/nextflow:24.10.4" in alpha[0]
    assert "add docker.io/nextflow" in alpha[0]
    assert len(beta) == 2
    assert any(f"{images.FLUX_RESTFUL_IMAGE}, its minicluster.image" in line for line in beta)
    assert any(f"{images.FLUX_VIEW_IMAGE}, the Flux Operator 0.2.x init container" in line for line in beta)
    assert not any("gamma" in line for line in lines)
    fixed = REFUSING.replace("[ghcr.io/calypr, quay.io/argoproj]", "[ghcr.io/calypr, quay.io/argoproj, docker.io/nextflow]") \
        .replace("registries: [docker.io/nextflow, quay.io/argoproj]}",
                 "registries: [docker.io/nextflow, quay.io/argoproj, ghcr.io/flux-framework, ghcr.io/converged-computing]}")
    render("dev", fixed, tmp_path)


def test_a_mirrored_argo_executor_must_be_admitted_too():
    """The workflow controller puts its executor image (`tenancy:workflows.executorImage`) in every workflow pod:
    a platform that mirrors it must list the mirror for every tenant with an allow-list."""
    config, secret_keys = stack_settings.read_stack_file(PROJECT, "dev")
    config["tenancy:workflows"] = '{"executorImage": "registry.local:5000/argoproj/argoexec:v3.7.9"}'
    mirrored = stack_settings.from_config(config, stack="dev", secret_keys=secret_keys)
    text = """
tenants:
  - {name: alpha, team: a, repo: {url: "https://github.com/calypr/a.git"},
     allowed: {registries: [docker.io/nextflow, quay.io/argoproj]}}
"""
    cat = catalogue.parse(text, source="tenants.yaml", base_dir=PROJECT, stacks=STACKS)
    with pytest.raises(InvalidInput, match=r"tenants\[0\] \(name=alpha\)\.allowed\.registries: .* does not admit "
                                           r"registry\.local:5000/argoproj/argoexec:v3\.7\.9, Argo's executor"):
        cat.for_stack(mirrored)
    cat = catalogue.parse(text.replace("quay.io/argoproj", "registry.local:5000/argoproj"), source="tenants.yaml",
                          base_dir=PROJECT, stacks=STACKS)
    assert [spec.name for spec, _ in cat.for_stack(mirrored)] == ["alpha"]


def test_the_stacks_lists_fill_tenants_that_name_none():
    config, secret_keys = stack_settings.read_stack_file(PROJECT, "dev")
    config["tenancy:admission"] = ('{"allowed": {"registries": ["ghcr.io/calypr", "docker.io/nextflow", '
                                   '"quay.io/argoproj"], "priorityClasses": ["batch"]}}')
    with_lists = stack_settings.from_config(config, stack="dev", secret_keys=secret_keys)
    text = """
tenants:
  - {name: alpha, team: a, repo: {url: "https://github.com/calypr/a.git"}}
  - {name: beta, team: b, repo: {url: "https://github.com/calypr/b.git"}, allowed: {registries: []}}
"""
    cat = catalogue.parse(text, source="tenants.yaml", base_dir=PROJECT, stacks=STACKS)
    data = admission.params_data([spec for spec, _ in cat.for_stack(with_lists)])
    assert data == {"alpha.nodes": "shared", "alpha.registries": "ghcr.io/calypr,docker.io/nextflow,quay.io/argoproj",
                    "alpha.priorityClasses": "batch", "beta.nodes": "shared", "beta.priorityClasses": "batch"}


@pytest.mark.parametrize("stack", STACKS)
def test_admission_objects_register_under_the_platform_with_the_kubernetes_provider(stack):
    result = sample(stack)
    component = [r for r in result.resources if r["type"] == "tenancy:admission:Admission"]
    assert len(component) == 1 and component[0]["parent"].endswith("tenancy:index:Platform::platform")
    inside = result.descendants(component[0]["urn"])
    assert len(inside) == 2 + 2 * len(admission.RULES)
    assert all(r["provider"] and r["provider"].endswith("::kubernetes") for r in inside)
    namespace = next(r for r in inside if r["inputs"]["kind"] == "Namespace")
    protect = stack_settings.load_stack(PROJECT, stack).protect_data
    assert (namespace["protect"], namespace["retainOnDelete"]) == (protect, protect)
