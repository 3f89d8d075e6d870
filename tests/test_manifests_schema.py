"""Every Kubernetes object synth writes is one the API server (with the operators' CRDs) would accept."""

from __future__ import annotations

import copy

import pytest

from components import minicluster
from tests import schema_check
from tests.conftest import sample
from tests.test_k8s_builders import sample_tenants

STACKS = ("dev", "staging", "prod")


@pytest.mark.parametrize("stack", STACKS)
def test_every_synthesised_manifest_validates(stack):
    result = sample(stack)
    manifests = result.manifests()
    assert len(manifests) > 50
    failures = {path: schema_check.problems(m) for path, m in manifests}
    assert {path: why for path, why in failures.items() if why} == {}


def test_every_custom_kind_emitted_has_a_kept_schema():
    kinds = {(m["apiVersion"], m["kind"]) for stack in STACKS for _, m in sample(stack).manifests()}
    groups = {k: k[0].rpartition("/")[0] for k in kinds}
    custom = {k for k, group in groups.items() if "." in group and not group.endswith(".k8s.io")}
    assert custom - set(schema_check.custom_schemas()) == set()
    expected = {("argoproj.io/v1alpha1", "WorkflowTemplate"), ("flux-framework.org/v1alpha2", "MiniCluster"),
                ("external-secrets.io/v1", "SecretStore"), ("external-secrets.io/v1", "ExternalSecret"),
                *(("config.ratify.deislabs.io/v1beta1", k) for k in (
                    "NamespacedKeyManagementProvider", "NamespacedVerifier", "NamespacedStore", "NamespacedPolicy"))}
    assert expected <= custom


def test_the_older_minicluster_shape_validates_against_its_own_schema():
    spec, names = sample_tenants("dev")["research"]
    old = minicluster.minicluster(spec, names, "v1alpha1")
    assert schema_check.problems(old) == []
    # `preCommand` was removed from v1alpha1 before release 0.1.0 (api/v1alpha1 at tag 0.1.1 has no such field).
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
    ("NamespacedPolicy", None, lambda m: m["metadata"].update(name="my-policy"), "ratify-policy"),
    ("NamespacedVerifier", None, lambda m: m["spec"].update(artifactType="x"), "artifactType"),
    ("ExternalSecret", None, lambda m: m["spec"]["data"][0]["remoteRef"].pop("key"), "key"),
    ("SecretStore", None, lambda m: m["spec"]["provider"]["vault"].update(sever="x"), "sever"),
    ("NetworkPolicy", "default-deny", lambda m: m["spec"].update(podSelectr={}), "podSelectr"),
    ("Role", "tenant-admin", lambda m: m["rules"][0].update(verb=["get"]), "verb"),
    ("ConfigMap", "artifact-repositories", lambda m: m.update(dat={}), "dat"),
])
def test_a_wrong_manifest_is_refused(kind, name, mutate, needle):
    manifest = _manifest("dev", kind, name)
    assert schema_check.problems(manifest) == []
    mutate(manifest)
    found = schema_check.problems(manifest)
    assert found and any(needle in p for p in found), found


def test_an_unknown_custom_kind_or_retired_version_is_refused():
    store = _manifest("dev", "SecretStore")
    store["apiVersion"] = "external-secrets.io/v1beta1"  # no longer served since ESO 0.17
    assert any("no schema" in p for p in schema_check.problems(store))
