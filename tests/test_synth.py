"""The offline synth contract that CI, the policy pack and reviewers build on."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml

from components import catalogue, settings
from tenancy import cli
from tests.conftest import PROJECT

RECORD_KEYS = {"urn", "type", "name", "parent", "custom", "provider", "inputs", "protect", "retainOnDelete"}


def test_synth_writes_resources_and_manifests(tmp_path):
    out = tmp_path / "o"
    run = subprocess.run([sys.executable, "-m", "tenancy", "synth", "--stack", "dev", "--out", str(out)],
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
        "run `python -m tenancy schema` and commit tenants.schema.json"


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


def test_resources_are_in_the_order_the_program_constructs_them(dev, prod):
    """The README promises registration order. The SDK sends RegisterResource from a thread pool as inputs
    resolve (pulumi/runtime/resource.py, `run_in_executor(None, do_rpc_call)`), so arrival order varies from run
    to run; a tenant's resources must all come before the next tenant's component, as the program builds them."""
    for result in (dev, prod):  # synth restores construction order by type and name: they must identify
        assert len({(r["type"], r["name"]) for r in result.resources}) == len(result.resources)
    tenants = [i for i, r in enumerate(dev.resources) if r["type"] == "tenancy:index:Tenant"]
    for start, end in zip(tenants, tenants[1:] + [len(dev.resources)]):
        name = dev.resources[start]["name"]
        owned = {r["urn"] for r in dev.tenant(name)}
        inside = {r["urn"] for r in dev.resources[start + 1:end]}
        assert owned <= inside, f"{name}: {sorted(owned - inside)[:3]} registered after the next tenant began"


def test_synth_output_is_byte_identical_across_runs(tmp_path):
    for out in ("a", "b"):
        assert cli.main(["synth", "--stack", "dev", "--out", str(tmp_path / out)]) == 0
    assert (tmp_path / "a" / "resources.json").read_bytes() == (tmp_path / "b" / "resources.json").read_bytes()


def test_whole_numbers_stay_integers(dev):
    """The wire format is a protobuf Struct, whose numbers are doubles; resources.json must not show 53.0."""
    policies = [r for r in dev.resources if r["type"] == "kubernetes:networking.k8s.io/v1:NetworkPolicy"]
    ports = [p["port"] for r in policies for rule in r["inputs"]["spec"].get("egress", [])
             for p in rule.get("ports", [])]
    assert ports and all(type(port) is int for port in ports)

    def floats(value):
        if isinstance(value, dict):
            return [f for v in value.values() for f in floats(v)]
        if isinstance(value, list):
            return [f for v in value for f in floats(v)]
        return [value] if isinstance(value, float) and value.is_integer() else []

    assert floats([r["inputs"] for r in dev.resources]) == []


def test_secret_manifest_keeps_its_keys_with_masked_values(dev):
    """A Secret whose stringData is secret as a whole must still be a Secret: a map of key -> string."""
    (token,) = [m for path, m in dev.manifests() if m["kind"] == "Secret" and m["metadata"]["name"] ==
                "tenancy-generator-token"]
    assert token["stringData"] == {"token": "[secret]"}
    assert all(value == "[secret]" for _, m in dev.manifests() if m["kind"] == "Secret"
               for value in {**m.get("data", {}), **m.get("stringData", {})}.values())


def test_summary_shows_lifecycle_and_explains_columns(capsys):
    from tenancy import synth

    table = synth.format_table(synth.tenant_summary(
        _dev(), {"research": "suspended", "compliance": "active", "scratch": "offboarded"}))
    header, *rows = table.splitlines()
    assert header.split()[:2] == ["TENANT", "LIFECYCLE"]
    assert [r.split()[:2] for r in rows[:3]] == [["research", "suspended"], ["compliance", "active"],
                                                 ["scratch", "offboarded"]]
    for column in synth.SUMMARY_COLUMNS:  # every column is explained under the table
        assert any(line.split()[:1] == [column.upper()] for line in rows[3:]), column
    assert cli.main(["synth", "--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^research\s+active\s+wf-calypr-research", out, re.M)  # the catalogue's lifecycle


def _dev():
    from tests.conftest import sample

    return sample("dev")


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _progress(tty: bool, clock):
    import io

    from tenancy import synth

    stream = io.StringIO()
    stream.isatty = lambda: tty
    return synth.Progress("dev", 2, stream=stream, clock=clock), stream


def test_progress_waits_two_seconds_then_prints_plain_lines_in_ci():
    clock = _Clock()
    progress, stream = _progress(False, clock)
    tenant = {"type": "tenancy:index:Tenant"}
    progress.registered(tenant)
    clock.now = 1.9
    progress.registered({"type": "aws:s3/bucket:Bucket"})
    assert stream.getvalue() == ""  # short runs stay quiet
    clock.now = 2.5
    progress.registered(tenant)
    clock.now = 3.0
    progress.registered({"type": "x"})  # within the interval: no new line, a CI log is not flooded
    progress.done()
    assert stream.getvalue().splitlines() == ["dev: 2/2 tenants, 3 resources, 2.5s",
                                              "dev: done, 2/2 tenants, 4 resources, 3.0s"]
    assert "\r" not in stream.getvalue()


def test_progress_draws_a_bar_on_a_terminal():
    clock = _Clock()
    progress, stream = _progress(True, clock)
    clock.now = 2.0
    progress.registered({"type": "tenancy:index:Tenant"})
    progress.done()
    first, final = stream.getvalue().split("\r")[1:]
    assert first.startswith("dev [" + "#" * 15 + "." * 15 + "] 1/2 tenants")
    assert final.startswith("dev [" + "#" * 30 + "]") and final.endswith("\n")


def test_progress_goes_to_stderr_never_stdout(monkeypatch, capsys):
    import functools

    from tenancy import synth

    monkeypatch.setattr(synth, "Progress", functools.partial(synth.Progress, delay=0))
    assert cli.main(["synth", "--stack", "dev"]) == 0
    captured = capsys.readouterr()
    assert "dev: done, 3/3 tenants" in captured.err
    assert "tenants," not in captured.out and captured.out.startswith("TENANT")


def test_run_collects_less_only_while_the_program_runs():
    import gc

    from tenancy import synth
    from tests.conftest import render

    before = gc.get_threshold()
    seen = []
    original = synth._run_program

    def spying(program, monitor):
        seen.append(gc.get_threshold())
        return original(program, monitor)

    synth._run_program, restore = spying, original
    try:
        render("dev")
    finally:
        synth._run_program = restore
    assert seen == [synth.GC_THRESHOLDS] and gc.get_threshold() == before
