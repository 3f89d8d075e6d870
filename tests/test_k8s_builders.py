"""The pure manifest builders of the tenant's in-cluster objects, called directly."""

from __future__ import annotations

import functools
import ipaddress
import json

import pytest
import yaml

from components import argo, catalogue, minicluster, naming, network, quota, ratify, rbac, settings
from components.problems import InvalidInput
from tests.conftest import PROJECT, SAMPLE


@functools.lru_cache(maxsize=None)
def sample_tenants(stack: str) -> dict:
    stack_settings = settings.load_stack(PROJECT, stack)
    cat = catalogue.load(SAMPLE, stacks=settings.known_stacks(PROJECT))
    return {spec.name: (spec, names) for spec, names in cat.for_stack(stack_settings)}


def _spec(name: str, stack: str = "dev", **update):
    spec, names = sample_tenants(stack)[name]
    return spec.model_copy(update=update), names


def test_quota_scales_compute_but_never_object_counts():
    spec, names = _spec("compliance", "prod")
    hard = quota.resource_quota(spec, names, 0.5)["spec"]["hard"]
    assert hard["requests.cpu"] == "8" and hard["limits.memory"] == "32Gi"  # prod override 16 -> 8
    assert hard["pods"] == "50" and hard["count/workflows.argoproj.io"] == "200"


def test_quota_caps_object_counts_the_catalogue_left_out():
    spec, names = _spec("scratch", quota={"requests.cpu": "2"})
    hard = quota.resource_quota(spec, names, 1)["spec"]["hard"]
    assert hard["requests.cpu"] == "2"
    for key in ("pods", "services", "secrets", "configmaps", "persistentvolumeclaims"):
        assert int(hard[key]) > 0
    # LoadBalancer and NodePort Services would expose pods around the ingress policy.
    assert hard["services.loadbalancers"] == "0" and hard["services.nodeports"] == "0"


def test_limit_range_gives_every_container_requests_and_limits():
    spec, names = _spec("research")
    limit = quota.limit_range(spec, names)["spec"]["limits"][0]
    assert limit["type"] == "Container"
    assert set(limit["default"]) == set(limit["defaultRequest"]) == {"cpu", "memory", "ephemeral-storage"}
    assert "max" not in limit


def test_ephemeral_storage_is_bounded_in_the_quota_the_limit_range_and_the_work_volume():
    """Without these one tenant fills a shared node's disk and the kubelet evicts other tenants' pods: the quota
    caps the namespace (scaled like the other compute values), the LimitRange gives every container a limit, and
    the workflow's `work` emptyDir has a sizeLimit (argo-workflows v3.7.9 manifests/base/crds/full
    argoproj.io_workflowtemplates.yaml: volumes[].emptyDir.sizeLimit, a quantity)."""
    spec, names = _spec("research")
    hard = quota.resource_quota(spec, names, 0.5)["spec"]["hard"]
    assert (hard["requests.ephemeral-storage"], hard["limits.ephemeral-storage"]) == ("16Gi", "64Gi")
    limit = quota.limit_range(spec, names)["spec"]["limits"][0]
    assert (limit["defaultRequest"]["ephemeral-storage"], limit["default"]["ephemeral-storage"]) == ("256Mi", "2Gi")
    (work,) = argo.workflow_template(spec, names)["spec"]["volumes"]
    assert work == {"name": "work", "emptyDir": {"sizeLimit": "2Gi"}}


@pytest.mark.parametrize("limits, default_request, default", [
    ({"max": {"ephemeral-storage": "1Gi"}}, "256Mi", "1Gi"),
    ({"max": {"ephemeral-storage": "100Mi"}}, "100Mi", "100Mi"),
    ({"defaultRequest": {"ephemeral-storage": "3Gi"}}, "3Gi", "3Gi"),
    ({"default": {"ephemeral-storage": "8Gi"}}, "256Mi", "8Gi"),
])
def test_ephemeral_defaults_stay_in_the_order_the_api_server_requires(limits, default_request, default):
    """kubernetes pkg/apis/core/validation ValidateLimitRange: defaultRequest <= default <= max."""
    spec, names = _spec("research", limits=catalogue.Limits.model_validate(limits))
    limit = quota.limit_range(spec, names)["spec"]["limits"][0]
    assert (limit["defaultRequest"]["ephemeral-storage"], limit["default"]["ephemeral-storage"]) == (default_request, default)
    assert argo.workflow_template(spec, names)["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == default


def test_a_quota_naming_ephemeral_storage_is_kept():
    spec, names = _spec("research", quota={"requests.ephemeral-storage": "5Gi"})
    hard = quota.resource_quota(spec, names, 1)["spec"]["hard"]
    assert hard["requests.ephemeral-storage"] == "5Gi" and "limits.ephemeral-storage" not in hard


def test_runner_service_account_carries_irsa_only_when_given_a_role():
    _, names = _spec("research")
    assert "annotations" not in rbac.runner_service_account(names, None)["metadata"]
    sa = rbac.runner_service_account(names, "arn:aws:iam::1:role/r")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}
    assert sa["automountServiceAccountToken"] is True


def test_owner_bindings_are_left_out_without_groups():
    _, names = _spec("research")
    manifests = rbac.rbac_manifests(names, [], ["devs"], "platform-admins", None)
    bindings = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "RoleBinding"}
    assert naming.TENANT_ADMIN_ROLE not in bindings
    assert bindings[naming.TENANT_DEVELOPER_ROLE]["subjects"][0]["name"] == "devs"
    assert bindings[naming.PLATFORM_ADMIN_BINDING]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}


def test_internet_egress_only_when_allowed_and_never_to_metadata():
    spec, names = _spec("research")
    rule = network.internet_egress(spec, names)["spec"]["egress"][0]["to"][0]["ipBlock"]
    assert rule["cidr"] == "0.0.0.0/0"
    metadata = ipaddress.ip_address("169.254.169.254")
    assert any(metadata in ipaddress.ip_network(c) for c in rule["except"])
    assert "169.254.169.254/32" in rule["except"]
    closed, _ = _spec("research", network=spec.network.model_copy(update={"allow_egress_to_internet": False}))
    assert network.internet_egress(closed, names) is None


def test_ingress_controller_peer_ands_pod_and_namespace_labels():
    spec, names = _spec("compliance")
    peers = network.ingress(spec, names)["spec"]["ingress"][0]["from"]
    assert peers[0] == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}
    assert peers[1] == {"ipBlock": {"cidr": "203.0.113.0/24"}}
    research, rnames = _spec("research")
    assert network.ingress(research, rnames) is None


def test_workflow_egress_reaches_api_server_and_public_https_only():
    spec, names = _spec("scratch")
    kube = settings.load_stack(PROJECT, "dev").kubernetes
    policy = network.workflow_egress(names, kube)
    assert policy["spec"]["podSelector"] == {
        "matchExpressions": [{"key": "workflows.argoproj.io/workflow", "operator": "Exists"}]}
    api, store = policy["spec"]["egress"]
    assert [p["ipBlock"]["cidr"] for p in api["to"]] == kube.api_server_cidrs
    block = store["to"][0]["ipBlock"]
    assert store["ports"] == [{"protocol": "TCP", "port": 443}]
    for private in ("10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254"):
        assert any(ipaddress.ip_address(private) in ipaddress.ip_network(c) for c in block["except"])


def test_artifact_repository_static_keys_and_kms():
    spec, names = _spec("compliance")
    repo = argo.artifact_repository(spec, names, "bkt", "eu-west-1", "arn:aws:kms:eu-west-1:1:key/k")
    s3 = repo["s3"]
    assert s3["endpoint"] == "s3.eu-west-1.amazonaws.com" and s3["insecure"] is False
    assert s3["accessKeySecret"] == {"name": "s3-credentials-compliance", "key": naming.S3_ACCESS_KEY_ID_KEY}
    assert s3["secretKeySecret"] == {"name": "s3-credentials-compliance", "key": naming.S3_SECRET_ACCESS_KEY_KEY}
    assert s3["encryptionOptions"] == {"enableEncryption": True, "kmsKeyId": "arn:aws:kms:eu-west-1:1:key/k"}
    assert "useSDKCreds" not in s3
    assert yaml.safe_load(argo.repository_yaml(repo)) == repo


def test_artifact_repository_irsa_uses_sdk_credentials_and_names_no_secret():
    spec, names = _spec("research", "prod")
    s3 = argo.artifact_repository(spec, names, "bkt", "us-west-2", None)["s3"]
    assert s3["useSDKCreds"] is True
    assert "accessKeySecret" not in s3 and "secretKeySecret" not in s3 and "encryptionOptions" not in s3
    assert s3["keyFormat"] == "research/{{workflow.name}}/{{pod.name}}" and "keyPrefix" not in s3


def test_workflow_template_defaults_and_restricted_pod_security():
    spec, names = _spec("research")
    wf = argo.workflow_template(spec, names)["spec"]
    params = {p["name"]: p["value"] for p in wf["arguments"]["parameters"]}
    assert params == {"repo-url": spec.repo.url, "revision": "main"}
    assert wf["serviceAccountName"] == "wf-runner" and "executor" not in wf
    assert wf["securityContext"]["runAsNonRoot"] is True
    assert wf["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = wf["templates"][0]["container"]["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"]
    assert "nodeSelector" not in wf


def test_dedicated_tenant_pins_workflow_and_minicluster_pods():
    """MiniCluster pods of Flux Operator 0.1.1 and 0.2.1 carry a nodeSelector but no tolerations field
    (flux-operator api/v1alpha1 and api/v1alpha2 minicluster_types.go at those tags): only the selector is rendered."""
    spec, names = _spec("compliance", minicluster=catalogue.MiniClusterSpec(enabled=True, users=["carol"]))
    wf = argo.workflow_template(spec, names)["spec"]
    assert wf["nodeSelector"] == {"tenancy.io/tenant": "compliance"}
    assert wf["tolerations"][0]["value"] == "compliance"
    for version in ("v1alpha2", "v1alpha1"):
        pod = minicluster.minicluster(spec, names, version)["spec"]["pod"]
        assert pod == {"labels": {"tenancy.io/tenant": "compliance"}, "nodeSelector": wf["nodeSelector"],
                       "serviceAccountName": "flux-runner"}


def test_minicluster_pods_get_no_api_token():
    """Flux Operator 0.2.0 (the SDK schema tenancy validates v1alpha2 against) and 0.1.x have no
    pod.automountServiceAccountToken (0.2.1 adds it: tests/test_minicluster_crd.py SDK_VS_TAG); their pods run as
    pod.serviceAccountName, so the MiniCluster names its own account, which mounts no token
    (flux-operator controllers/flux/job.go: the pod spec sets ServiceAccountName and no automount)."""
    from components import cluster
    spec, names = _spec("research")
    assert spec.minicluster.enabled
    for version in ("v1alpha2", "v1alpha1"):
        assert minicluster.minicluster(spec, names, version)["spec"]["pod"]["serviceAccountName"] == "flux-runner"
    account = minicluster.service_account(names)
    assert account["metadata"] == {"name": "flux-runner", "namespace": names.namespace}
    assert account["automountServiceAccountToken"] is False


def test_minicluster_credentials_are_references_never_values():
    """v1alpha2 hands flux-restful-api the variables it reads (app/core/config.py): FLUX_USER, FLUX_TOKEN,
    FLUX_SECRET_KEY, FLUX_REQUIRE_AUTH; the secret ones by reference to the Vault-synced Secret. v1alpha1 never
    carries users: Flux Operator 0.1.1 prints their passwords to the pod log."""
    spec, names = _spec("research")
    mc = minicluster.minicluster(spec, names, "v1alpha2")
    container = mc["spec"]["containers"][0]
    assert container["secrets"] == {
        "FLUX_SECRET_KEY": {"name": "flux-credentials-research", "key": "flux-secret-key"},
        "FLUX_TOKEN": {"name": "flux-credentials-research", "key": "password-alice"},
    }
    assert container["environment"] == {"FLUX_USER": "alice", "FLUX_REQUIRE_AUTH": "true"}
    assert not any(key.startswith("FLUX_PASSWORD") for key in container["secrets"])
    assert mc["metadata"]["name"] == "flux-research" and mc["spec"]["size"] == 2
    old = minicluster.minicluster(spec, names, "v1alpha1")["spec"]
    assert "users" not in old and "secretKey" not in old["fluxRestful"]
    off, _ = _spec("scratch")
    assert minicluster.minicluster(off, names, "v1alpha2") is None


MINICLUSTER_TENANT = """
{defaults}
tenants:
  - {{name: a, team: a, repo: {{url: "https://github.com/calypr/a.git"}}, minicluster: {{enabled: true, command: "x"}}{extra}}}
  - {{name: b, team: b, repo: {{url: "https://github.com/calypr/b.git"}}}}
"""


def _pod_security(defaults: str = "", extra: str = "") -> dict[str, str]:
    text = MINICLUSTER_TENANT.format(defaults=defaults, extra=extra)
    cat = catalogue.parse(text, source="tenants.yaml", base_dir=PROJECT, stacks=("dev", "staging", "prod"))
    return {spec.name: spec.pod_security for spec, _ in cat.for_stack(settings.load_stack(PROJECT, "dev"))}


def test_a_minicluster_tenant_naming_no_level_gets_baseline_and_a_written_restricted_is_refused():
    """MiniCluster pods need `baseline` (see minicluster_problems); a level the user wrote is never lowered."""
    assert _pod_security() == {"a": "baseline", "b": "restricted"}
    assert _pod_security(extra=", podSecurity: privileged") == {"a": "privileged", "b": "restricted"}
    for defaults, extra, where in [("", ", podSecurity: restricted", "tenants[0] (name=a).podSecurity"),
                                   ("defaults: {podSecurity: restricted}", "", "defaults.podSecurity")]:
        with pytest.raises(InvalidInput) as caught:
            _pod_security(defaults, extra)
        assert str(caught.value).startswith(f"tenants.yaml: {where}: Pod Security `restricted` refuses every "
                                            "MiniCluster pod"), str(caught.value)
    assert _pod_security("defaults: {podSecurity: restricted}", ", podSecurity: baseline") == \
        {"a": "baseline", "b": "restricted"}


def test_ratify_trusts_only_the_tenants_certificate():
    """The four objects carry only fields of Ratify v1.4.0's v1beta1 CRDs (config/crd/bases); NamespacedStore has
    no `type`. The trust store is the tenant's CA; the identities are its signing leaves, not the CA."""
    spec, names = _spec("compliance")
    kmp, verifier, store, policy = ratify.ratify_manifests(spec, names)
    assert kmp["spec"] == {"type": "inline", "parameters": {"contentType": "certificate",
                                                             "value": spec.supply_chain.certificate}}
    params = verifier["spec"]["parameters"]
    assert params["verificationCertStores"] == {"ca": {"ca-certs": [f"{names.namespace}/{kmp['metadata']['name']}"]}}
    trust = params["trustPolicyDoc"]["trustPolicies"][0]
    assert trust["trustedIdentities"] == ["x509.subject: C=US, ST=Oregon, O=calypr, CN=compliance image signer"]
    assert store["spec"] == {"name": "oras", "parameters": {}}
    assert policy["metadata"]["name"] == "ratify-policy"
    research, rnames = _spec("research")
    assert ratify.ratify_manifests(research, rnames) == []


def test_executor_egress_settings_must_be_cidr_blocks():
    config, _ = settings.read_stack_file(PROJECT, "dev")
    config["tenancy:kubernetes"] = json.dumps({"apiServerCidrs": ["10.0.0.1/8"]})
    with pytest.raises(InvalidInput) as refused:
        settings.from_config(config, stack="dev")
    assert "apiServerCidrs" in str(refused.value) and "10.0.0.1/8" in str(refused.value)
