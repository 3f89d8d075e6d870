"""The offline synth contract that CI, the policy pack and reviewers build on."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from components import catalogue, cli, settings
from tests.conftest import PROJECT

RECORD_KEYS = {"urn", "type", "name", "parent", "custom", "provider", "inputs", "protect", "retainOnDelete"}


def test_synth_writes_resources_and_manifests(tmp_path):
    out = tmp_path / "o"
    run = subprocess.run([sys.executable, "-m", "components", "synth", "--stack", "dev", "--out", str(out)],
                         cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "research" in run.stdout and "wf-calypr-research" in run.stdout  # the per-tenant table
    resources = json.loads((out / "resources.json").read_text())
    assert isinstance(resources, list) and resources
    urns = set()
    for record in resources:
        assert set(record) == RECORD_KEYS
        assert record["parent"] is None or record["parent"] in urns | {_stack_urn(resources)}, \
            "registration order lists parents first"
        urns.add(record["urn"])
    for path in (out / "manifests").rglob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        folder = doc["metadata"].get("namespace", "_cluster")
        assert path.parent.name == folder
        assert path.name == f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"


def _stack_urn(resources):
    return next(r["parent"] for r in resources if r["parent"] and r["parent"].endswith("::tenancy-dev"))


def test_every_dev_tenant_is_a_component_with_its_namespace(dev):
    assert dev.tenant_names() == ["research", "compliance", "scratch"]
    for name in dev.tenant_names():
        namespaces = [r for r in dev.tenant(name) if r["type"] == "kubernetes:core/v1:Namespace"]
        assert [n["inputs"]["metadata"]["name"] for n in namespaces] == [f"wf-calypr-{name}"]
        labels = namespaces[0]["inputs"]["metadata"]["labels"]
        assert labels["source"] == "repo-registration" and labels["calypr.io/application"] == name
        assert labels["tenancy.io/tenant"] == name and labels["tenancy.io/environment"] == "dev"


def test_scratch_exists_only_in_dev(prod, staging):
    assert "scratch" not in prod.tenant_names() and "scratch" not in staging.tenant_names()
    assert set(prod.tenant_names()) == {"research", "compliance"}


def test_children_are_parented_and_prefixed(dev):
    for tenant in dev.of_type("tenancy:index:Tenant"):
        direct = [r for r in dev.resources if r["parent"] == tenant["urn"]]
        assert direct
        assert all(r["name"].startswith(tenant["name"] + "-") for r in direct)


def test_every_custom_resource_has_an_explicit_provider(dev, prod):
    for result in (dev, prod):
        for record in result.resources:
            if record["custom"] and not record["type"].startswith("pulumi:providers:"):
                assert record["provider"], record["urn"]


def test_one_aws_provider_per_region_in_use(dev):
    regions = sorted(r["inputs"]["region"] for r in dev.of_type("pulumi:providers:aws"))
    assert regions == ["eu-west-1", "us-west-2"]


def test_stack_outputs_resolve_to_concrete_values(dev):
    assert dev.outputs["namespaces"]["research"] == "wf-calypr-research"


def test_schema_file_is_current():
    shipped = json.loads((PROJECT / cli.SCHEMA_FILE).read_text())
    assert shipped == catalogue.json_schema(settings.known_stacks(PROJECT)), \
        "run `python -m components schema` and commit tenants.schema.json"


def test_sample_catalogue_validates_against_its_json_schema():
    import jsonschema

    schema = json.loads((PROJECT / cli.SCHEMA_FILE).read_text())
    doc = yaml.safe_load((PROJECT / "tenants.yaml").read_text())
    jsonschema.validate(doc, schema)
    doc["tenants"][0]["colour"] = "blue"
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("the schema must reject unknown fields so editors flag them")


def test_catalogue_references_its_schema():
    assert (PROJECT / "tenants.yaml").read_text().startswith("# yaml-language-server: $schema=./tenants.schema.json")
