"""Every Kubernetes object synth writes is one the API server, with the operators' own CRDs, would accept.

Custom resources are checked against the upstream CRDs (`make crds`: External Secrets v0.17.0
config/crds/bases, Argo Workflows manifests/base/crds/full, Argo CD manifests/crds, Ratify v1.4.0
config/crd/bases; the MiniCluster CRD derived from the Flux Operator's PyPI SDK, fluxoperator 0.2.0 and 0.1.1,
see tests/test_minicluster_crd.py), closed the way strict field validation closes them (tests/crds.py).
`make e2e` applies the same objects to a real apiserver.
"""

from __future__ import annotations

import copy

import pytest
from openapi_schema_validator import OAS30Validator

from components import minicluster
from tests import crds, schema_check
from tests.conftest import sample
from tests.test_k8s_builders import sample_tenants

STACKS = ("dev", "staging", "prod")

def _needs_crd(api_version: str) -> None:
    missing = crds.unavailable_group(api_version)
    if missing:
        pytest.skip(f"{missing}: the Go module proxy does not serve this module, so its CRD cannot be fetched")


def _key(manifest: dict) -> tuple[str, str]:
    return manifest["kind"], manifest["metadata"]["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_synthesised_manifest_validates(stack):
    manifests = [(path, m) for path, m in sample(stack).manifests()
                 if not crds.unavailable_group(m["apiVersion"])]
    assert len(manifests) > 40
    failures = {path: schema_check.problems(m) for path, m in manifests}
    assert {path: why for path, why in failures.items() if why} == {}


@pytest.mark.parametrize("stack", STACKS)
def test_every_minicluster_validates_against_the_flux_operator_crd(stack):
    clusters = [m for _, m in sample(stack).manifests() if m["kind"] == "MiniCluster"]
    assert clusters
    assert {m["metadata"]["name"]: schema_check.problems(m) for m in clusters} == \
        {m["metadata"]["name"]: [] for m in clusters}


def test_every_custom_kind_emitted_has_an_upstream_crd():
    kinds = {(m["apiVersion"], m["kind"]) for stack in STACKS for _, m in sample(stack).manifests()}
    custom = {k for k in kinds if schema_check.is_custom(k[0])}
    served = {(v, k) for v, by_kind in crds.schemas().items() for k in by_kind}
    unfetchable = {k for k in custom if crds.unavailable_group(k[0])}
    assert custom - unfetchable - served == set()
    expected = {("argoproj.io/v1alpha1", "WorkflowTemplate"), ("flux-framework.org/v1alpha2", "MiniCluster"),
                ("external-secrets.io/v1", "SecretStore"), ("external-secrets.io/v1", "ExternalSecret"),
                *(("config.ratify.deislabs.io/v1beta1", k) for k in (
                    "NamespacedKeyManagementProvider", "NamespacedVerifier", "NamespacedStore", "NamespacedPolicy"))}
    assert expected <= custom


def test_the_strict_schema_closes_objects_like_the_apiserver():
    """Unknown fields are refused except below x-kubernetes-preserve-unknown-fields and in maps."""
    schema = crds.strict_schema({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "known": {"type": "string"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}}}},
            "choice": {"type": "object", "properties": {"x": {"type": "string"}},
                       "anyOf": [{"required": ["x"]}, {"properties": {"x": {"type": "string"}}}]},
        }}}})
    ok = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "labels": {"a": "b"}},
          "spec": {"known": "k", "free": {"any": {"thing": 1}}, "labels": {"any": "v"}, "items": [{"a": 1}],
                   "choice": {"x": "y"}}}
    assert list(OAS30Validator(schema).iter_errors(ok)) == []
    for bad in ({"spec": {"unknown": 1}}, {"spec": {"items": [{"b": 1}]}}, {"spec": {"choice": {"z": 1}}},
                {"extra": 1}):
        assert list(OAS30Validator(schema).iter_errors({**ok, **bad})), bad


def test_the_older_minicluster_shape_validates_against_its_own_crd():
    spec, names = sample_tenants("dev")["research"]
    old = minicluster.minicluster(spec, names, "v1alpha1")
    assert schema_check.problems(old) == []
    # `preCommand` was removed from v1alpha1 before release 0.1.0 (api/v1alpha1 at tag 0.1.1 has no such field,
    # nor has fluxoperator 0.1.1's MiniClusterContainer).
    mixed = copy.deepcopy(old)
    mixed["spec"]["containers"][0]["preCommand"] = "echo"
    assert any("preCommand" in p for p in schema_check.problems(mixed))


def _manifest(stack: str, kind: str, name: str | None = None) -> dict:
    for _, m in sample(stack).manifests():
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name):
            return copy.deepcopy(m)
    raise AssertionError(f"no {kind} {name}")


@pytest.mark.parametrize("kind, name, mutate, needle", [
    # An inline password is exactly what the MiniCluster must never carry.
    ("MiniCluster", None, lambda m: m["spec"]["containers"][0].update(password="hunter2"), "password"),
    ("MiniCluster", None, lambda m: m["spec"].update(size=2.5), "size"),
    ("MiniCluster", None, lambda m: m["spec"]["containers"][0]["secrets"].update(BAD={"name": "x"}), "key"),
    ("WorkflowTemplate", None, lambda m: m["spec"].update(serviceAccount="wf-runner"), "serviceAccount"),
    ("WorkflowTemplate", None,
     lambda m: m["spec"]["templates"][0]["container"]["securityContext"].update(privilegd=True), "privilegd"),
    ("WorkflowTemplate", None, lambda m: m["spec"].update(priorityClassName="high"), "priorityClassName"),
    ("NamespacedVerifier", None, lambda m: m["spec"].update(artifactType="x"), "artifactType"),
    ("ExternalSecret", None, lambda m: m["spec"]["data"][0]["remoteRef"].pop("key"), "key"),
    ("ExternalSecret", None, lambda m: m["spec"]["target"].update(creationPolicy="Replace"), "creationPolicy"),
    ("SecretStore", None, lambda m: m["spec"]["provider"]["vault"].update(sever="x"), "sever"),
    ("NetworkPolicy", "default-deny", lambda m: m["spec"].update(podSelectr={}), "podSelectr"),
    ("Role", "tenant-admin", lambda m: m["rules"][0].update(verb=["get"]), "verb"),
    ("ConfigMap", "artifact-repositories", lambda m: m.update(dat={}), "dat"),
])
def test_a_wrong_manifest_is_refused(kind, name, mutate, needle):
    manifest = _manifest("dev", kind, name)
    _needs_crd(manifest["apiVersion"])
    assert schema_check.problems(manifest) == []
    mutate(manifest)
    found = schema_check.problems(manifest)
    assert found and any(needle in p for p in found), found


def test_an_unknown_custom_kind_or_retired_version_is_refused():
    store = _manifest("dev", "SecretStore")
    store["apiVersion"] = "external-secrets.io/v1beta1"  # in the CRD, but no longer served since ESO 0.17
    assert any("no CRD serves" in p for p in schema_check.problems(store))
