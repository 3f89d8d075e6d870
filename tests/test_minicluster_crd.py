"""The MiniCluster CRD derived from the Flux Operator's Python SDK, and where it differs from the operator's own.

The Go module proxy refuses github.com/flux-framework/flux-operator (403), so `make crds` derives the CRD from the
operator's PyPI SDK with tools/engines/minicluster_crd.py: `fluxoperator==0.2.0` (openapi-generator models of
API v1alpha2) and `fluxoperator==0.1.1` (v1alpha1), each pinned by sha256 in tools/engines/crds.sh.

The derived field sets, types and required fields were compared (by script, outside the repository) with the
operator's own CRD, config/crd/bases/flux-framework.org_miniclusters.yaml, at flux-framework/flux-operator tags
0.2.0 and 0.2.1 (v1alpha2) and 0.1.0 and 0.1.1 (v1alpha1). v1alpha1 is equal at both tags. `SDK_VS_TAG` lists
every v1alpha2 difference; the SDK also cannot carry kubebuilder defaults, `format: int32`, list types or the
scale subresource. Where the two disagree the tag wins: tenancy renders none of the differing fields, and the
int32 bound the SDK drops is held by the catalogue.
"""

from __future__ import annotations

import json
import zipfile

import pytest

from components import catalogue, minicluster
from tests import crds, schema_check
from tests.test_k8s_builders import _spec
from tools.engines import minicluster_crd

INT32_MAX = 2**31 - 1

# Schema paths ("." for properties, "[]" for items, "{}" for map values) where fluxoperator 0.2.0 and the
# v1alpha2 CRD at the tags disagree: present at the tag only, or in the SDK only.
SDK_VS_TAG = {
    "only at tag 0.2.1": [f"spec.{parent}.volumes{{}}.{field}" for parent in ("containers[]", "services[]")
                          for field in ("emptyDir", "emptyDirMedium", "emptyDirSizeLimit")]
    + [f"spec.pod.{field}" for field in ("automountServiceAccountToken", "restartPolicy", "runtimeClassName")],
    "only in the SDK, not at tag 0.2.0": ["spec.containers[].commands.script", "spec.services[].commands.script"],
}


def _derived(api_version: str) -> crds.Crd:
    [crd] = [c for c in crds.all_crds() if c.group == minicluster.MINICLUSTER_GROUP and api_version in c.served()]
    return crd


def _paths(node: dict, prefix: str = "") -> set[str]:
    """Every schema path of a structural schema."""
    found = {prefix} if prefix else set()
    for key, child in node.get("properties", {}).items():
        found |= _paths(child, f"{prefix}.{key}" if prefix else key)
    if isinstance(node.get("items"), dict):
        found |= _paths(node["items"], prefix + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        found |= _paths(node["additionalProperties"], prefix + "{}")
    return found


def _rendered_paths(value, schema: dict, prefix: str = "") -> set[str]:
    """The schema paths a rendered object fills (map keys become "{}" where the schema has a map)."""
    found = {prefix} if prefix else set()
    if isinstance(value, dict):
        for key, child in value.items():
            if key in schema.get("properties", {}):
                found |= _rendered_paths(child, schema["properties"][key], f"{prefix}.{key}" if prefix else key)
            else:
                found |= _rendered_paths(child, schema.get("additionalProperties") or {}, prefix + "{}")
    elif isinstance(value, list):
        for child in value:
            found |= _rendered_paths(child, schema.get("items") or {}, prefix + "[]")
    return found


def _every_option():
    """A tenant with every MiniCluster option tenancy renders: users, a command and dedicated nodes."""
    spec, names = _spec("compliance", minicluster=catalogue.MiniClusterSpec(enabled=True, users=["carol"],
                                                                              command="flux run hostname"))
    return spec.model_copy(update={"isolation": spec.isolation.model_copy(update={"nodes": "dedicated"})}), names


@pytest.mark.parametrize("api_version, sdk", [("v1alpha2", "0.2.0"), ("v1alpha1", "0.1.1")])
def test_each_operator_api_is_served_by_the_crd_of_its_pinned_sdk(api_version, sdk):
    crd = _derived(api_version)
    assert crd.source == f"flux-operator-sdk-{sdk}" and list(crd.served()) == [api_version]
    assert crd.definition["metadata"]["annotations"]["tenancy.io/derived-from"].startswith(f"pypi:fluxoperator=={sdk} ")
    assert crd.name == "miniclusters.flux-framework.org" and crd.definition["spec"]["scope"] == "Namespaced"


def test_the_sdk_and_tag_differences_are_the_recorded_ones():
    """If the pinned wheel changes, this fails until the new one is compared with the tags again."""
    derived = _paths(_derived("v1alpha2").served()["v1alpha2"])
    assert not set(SDK_VS_TAG["only at tag 0.2.1"]) & derived
    assert set(SDK_VS_TAG["only in the SDK, not at tag 0.2.0"]) <= derived


@pytest.mark.parametrize("api_version", ["v1alpha2", "v1alpha1"])
def test_tenancy_renders_no_field_the_sdk_and_the_tag_disagree_on(api_version):
    """The tag wins where they disagree, so a rendered field there would need the tag's answer, not the SDK's."""
    spec, names = _every_option()
    schema = _derived(api_version).served()[api_version]
    rendered = _rendered_paths(minicluster.minicluster(spec, names, api_version)["spec"],
                               schema["properties"]["spec"], "spec")
    assert {"spec.size", "spec.pod.nodeSelector{}", "spec.containers[].image"} <= rendered
    disputed = [p for paths in SDK_VS_TAG.values() for p in paths]
    assert [p for p in rendered if any(p == d or p.startswith(d + ".") for d in disputed)] == []
    assert rendered <= _paths(schema)  # and every rendered path is a field of the derived schema


def test_int32_fields_the_sdk_calls_int_stay_in_the_tags_range():
    """The tags' CRDs declare spec.size (and v1alpha1 fluxRestful.port) `format: int32`; the SDK says `int`."""
    size = catalogue.MiniClusterSpec.model_fields["size"].metadata
    assert max(m.le for m in size if hasattr(m, "le")) <= INT32_MAX
    assert minicluster.FLUX_RESTFUL_PORT <= INT32_MAX


def test_a_renamed_field_is_refused_in_both_versions():
    spec, names = _every_option()
    for api_version in ("v1alpha2", "v1alpha1"):
        cluster = minicluster.minicluster(spec, names, api_version)
        assert schema_check.problems(cluster) == [], api_version
        cluster["spec"]["sizee"] = cluster["spec"].pop("size")
        assert any("sizee" in p for p in schema_check.problems(cluster)), api_version
        cluster["spec"]["size"] = cluster["spec"].pop("sizee")
        cluster["spec"]["containers"][0]["imagee"] = cluster["spec"]["containers"][0].pop("image")
        assert any("imagee" in p for p in schema_check.problems(cluster)), api_version


# --- the generator, on a wheel made here --------------------------------------------------------------------

MODEL = '''
class {name}(object):
    openapi_types = {types!r}
    attribute_map = {names!r}

    @property
    def {first}(self):
        return self._{first}

    @{first}.setter
    def {first}(self, {first}):
        if self.local_vars_configuration.client_side_validation and {first} is None:  # noqa: E501
            raise ValueError("Invalid value for `{first}`, must not be `None`")  # noqa: E501
        self._{first} = {first}
'''


def _wheel(tmp_path, models: dict[str, dict[str, str]], required: dict[str, str]):
    path = tmp_path / "fluxoperator-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("fluxoperator-9.9.9.dist-info/METADATA", "Name: fluxoperator\nVersion: 9.9.9\n")
        wheel.writestr("fluxoperator/defaults.py", 'flux_operator_api_version = "v9"\n')
        wheel.writestr("fluxoperator/resource/pods.py", 'api.create_namespaced_custom_object(group="flux-framework.org",'
                                                        ' plural="miniclusters")\n')
        for name, types in models.items():
            camel = {attr: "".join(w.title() if i else w for i, w in enumerate(attr.split("_"))) for attr in types}
            wheel.writestr(f"fluxoperator/models/{name.lower()}.py",
                           MODEL.format(name=name, types=types, names=camel, first=required[name]))
    return path


def test_the_generator_maps_every_sdk_type(tmp_path):
    wheel = _wheel(tmp_path, {
        "MiniCluster": {"api_version": "str", "kind": "str", "metadata": "V1ObjectMeta", "spec": "Spec"},
        "Spec": {"size": "int", "run_flux": "bool", "env": "dict(str, str)", "ports": "list[int]",
                 "limits": "dict[str, IntOrString]", "containers": "list[Spec]", "cond": "list[V1Condition]"},
    }, required={"MiniCluster": "kind", "Spec": "size"})
    with pytest.raises(SystemExit, match="recursive model Spec"):
        minicluster_crd.derive(wheel)
    wheel = _wheel(tmp_path, {
        "MiniCluster": {"api_version": "str", "kind": "str", "metadata": "V1ObjectMeta", "spec": "Spec"},
        "Spec": {"size": "int", "run_flux": "bool", "env": "dict(str, str)", "ports": "list[int]",
                 "limits": "dict[str, IntOrString]", "cond": "list[V1Condition]"},
    }, required={"MiniCluster": "kind", "Spec": "size"})
    crd = minicluster_crd.derive(wheel)
    assert crd["metadata"]["name"] == "miniclusters.flux-framework.org"
    [version] = crd["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    assert version["name"] == "v9" and root["required"] == ["kind"] and root["properties"]["metadata"] == {
        "type": "object"}
    assert root["properties"]["spec"] == {"type": "object", "required": ["size"], "properties": {
        "size": {"type": "integer"}, "runFlux": {"type": "boolean"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "ports": {"type": "array", "items": {"type": "integer"}},
        "limits": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}},
        "cond": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}
    assert crd["metadata"]["annotations"]["tenancy.io/opaque-types"] == "V1Condition"
    out = tmp_path / "crd.yaml"
    minicluster_crd.main(["minicluster_crd.py", str(wheel), str(out)])
    assert json.loads(out.read_text()) == crd


def test_the_generator_refuses_a_type_it_cannot_map(tmp_path):
    wheel = _wheel(tmp_path, {"MiniCluster": {"kind": "str", "spec": "Mystery"}}, required={"MiniCluster": "kind"})
    with pytest.raises(SystemExit, match="unknown SDK type 'Mystery' at MiniCluster"):
        minicluster_crd.derive(wheel)
