"""MiniClusters against the CRDs derived from the Flux Operator's PyPI SDK, by a real apiserver.

The Go module proxy refuses the operator's module, so `make crds` derives miniclusters.flux-framework.org from
`fluxoperator==0.2.0` (v1alpha2) and `fluxoperator==0.1.1` (v1alpha1) with tools/engines/minicluster_crd.py;
tests/test_minicluster_crd.py records how they differ from the operator's own CRDs at tags 0.2.0/0.2.1 and
0.1.0/0.1.1. Every cluster installs the newest (v1alpha2, which the stacks render, see test_apply.py); the
v1alpha1 shape gets a cluster with its own CRD, as an operator 0.1.x cluster has only that one.
"""

from __future__ import annotations

import copy

import pytest

from components import minicluster
from tests import crds
from tests.e2e.kube import KubeError
from tests.test_k8s_builders import sample_tenants


def _sdk_crd(api_version: str) -> crds.Crd:
    [crd] = [c for c in crds.all_crds() if c.group == minicluster.MINICLUSTER_GROUP and api_version in c.served()]
    return crd


def _refusal(cluster, obj: dict) -> str:
    with pytest.raises(KubeError) as refused:
        cluster.apply(obj, dry_run=True)
    return refused.value.message


def _renamed(obj: dict) -> list[tuple[str, dict]]:
    """The MiniCluster with one rendered field renamed to an invented one, for each of spec and container."""
    size = copy.deepcopy(obj)
    size["spec"]["sizee"] = size["spec"].pop("size")
    image = copy.deepcopy(obj)
    image["spec"]["containers"][0]["imagee"] = image["spec"]["containers"][0].pop("image")
    return [("sizee", size), ("imagee", image)]


def test_the_stacks_cluster_serves_the_sdk_0_2_0_crd(deployed):
    served = deployed.cluster.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                  "miniclusters.flux-framework.org")
    assert served["metadata"]["annotations"]["tenancy.io/derived-from"].startswith("pypi:fluxoperator==0.2.0 ")
    assert [v["name"] for v in served["spec"]["versions"]] == ["v1alpha2"]


def test_an_invented_minicluster_field_is_refused_by_strict_apply(deployed):
    [cluster, *_] = deployed.of_kind("MiniCluster")
    deployed.cluster.apply(cluster, dry_run=True)
    for field, wrong in _renamed(cluster):
        assert field in _refusal(deployed.cluster, wrong), field


def test_the_v1alpha1_shape_applies_against_the_sdk_0_1_1_crd(start_cluster):
    spec, names = sample_tenants("dev")["research"]
    old = minicluster.minicluster(spec, names, "v1alpha1")
    with start_cluster(controller_manager=False, crd_files=[_sdk_crd("v1alpha1").path],
                       logs_name="minicluster-v1alpha1") as cluster:
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": names.namespace}})
        stored = cluster.apply(old)
        assert stored["spec"] == old["spec"]
        for field, wrong in _renamed(old):
            assert field in _refusal(cluster, wrong), field
