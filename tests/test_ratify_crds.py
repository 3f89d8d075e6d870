"""Every rendered Ratify object against the CRDs Ratify v1.4.0 installs, with strict field validation.

The CRDs come from github.com/ratify-project/ratify@v1.4.0 (config/crd/bases/config.ratify.deislabs.io_namespaced*
.yaml) through `make crds` and `tests/crds.py`, never committed; `schema_check` applies them the way the API server
does with `fieldValidation=Strict` (kubectl's default): an unknown field is an error except below
`x-kubernetes-preserve-unknown-fields`, required fields must be present.
"""

from __future__ import annotations

import pytest

from components import ratify
from tests import schema_check
from tests.conftest import sample

STACKS = ("dev", "staging", "prod")


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_ratify_object_passes_the_v1_4_crd(stack):
    objects = [m for _, m in sample(stack).manifests() if m["apiVersion"] == ratify.RATIFY_API]
    assert {m["kind"] for m in objects} == {"NamespacedKeyManagementProvider", "NamespacedVerifier",
                                            "NamespacedStore", "NamespacedPolicy"}
    assert {m["kind"]: schema_check.problems(m) for m in objects} == {m["kind"]: [] for m in objects}


def test_the_crd_rejects_the_store_type_tenancy_used_to_render():
    store = {"apiVersion": ratify.RATIFY_API, "kind": "NamespacedStore",
             "metadata": {"name": "store-oras", "namespace": "wf-x"},
             "spec": {"name": "oras", "type": "oras", "parameters": {}}}
    assert any("type" in p for p in schema_check.problems(store))
