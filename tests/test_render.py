"""tenancy/render.py and render_cache.py: cached and parallel renders are the single-process render, always."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from components import sharding
from tenancy import cli, diff, environment, inputs, render, render_cache, synth
from tests.project_copy import copy_project

from .conftest import PROJECT

TENANT = """  - name: t{i:03d}
    team: team-{i}
    region: {region}
    repo: {{url: https://github.com/bench/t{i:03d}.git, defaultBranch: main, path: deploy}}
    owners: {{admins: [t{i:03d}-admins], developers: [t{i:03d}-devs]}}
    artifacts: {{keyPrefix: runs/, encryption: {encryption}}}
    minicluster: {minicluster}
"""

# The catalogue refuses MiniCluster settings on a tenant whose MiniCluster is off: they would act nowhere.
MINICLUSTER_ON = '{enabled: true, size: 2, command: "flux run hostname", users: [alice]}'
MINICLUSTER_OFF = "{enabled: false}"


def _catalogue(n: int) -> str:
    regions = ["us-west-2", "eu-west-1", "us-east-1"]
    return "tenants:\n" + "".join(TENANT.format(i=i, region=regions[i % 3], encryption="kms" if i % 2 else "aes256",
                                                minicluster=MINICLUSTER_ON if i % 3 == 0 else MINICLUSTER_OFF) for i in range(n))


def _resources_json(result: synth.SynthResult) -> str:
    # What `synth --out` writes as resources.json.
    return json.dumps(result.resources, indent=2, sort_keys=False) + "\n"


def _render(project: Path, stack: str, tenants: Path | None, cache: Path | None, jobs: int = 1,
            stats: dict | None = None) -> synth.SynthResult:
    stack_settings, specs = inputs.load_inputs(project, stack, tenants)
    return render.render(project, stack, tenants, specs, stack_settings, cache, jobs, stats=stats)


@pytest.fixture
def seven(tmp_path: Path) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(_catalogue(7))
    return path


def test_chunked_render_is_byte_for_byte_the_single_process_render(seven: Path, monkeypatch):
    """Tenants rendered two at a time, by separate runs of the program, merge into the full render's bytes."""
    serial = synth.run(PROJECT, "dev", seven)
    monkeypatch.setattr(render, "CHUNK", 2)
    stats: dict = {}
    chunked = _render(PROJECT, "dev", seven, None, stats=stats)
    assert stats["runs"] == 4
    assert _resources_json(chunked) == _resources_json(serial)
    assert chunked.outputs == serial.outputs
    assert chunked.manifests() == serial.manifests()


def test_two_processes_render_the_single_process_bytes(seven: Path, monkeypatch):
    """The parallel path proper: spawned workers, each running the program for its share of the tenants."""
    serial = synth.run(PROJECT, "dev", seven)
    monkeypatch.setattr(render, "PARALLEL_FROM", 0)
    stats: dict = {}
    parallel = _render(PROJECT, "dev", seven, None, jobs=2, stats=stats)
    assert stats["runs"] == 2 and stats["rendered"] == 7
    assert _resources_json(parallel) == _resources_json(serial)
    assert parallel.outputs == serial.outputs


def test_a_selective_render_constructs_only_its_tenants_and_every_shared_record(seven: Path):
    """Providers of every region and the stack outputs over every tenant, however few tenants are constructed."""
    full = synth.run(PROJECT, "dev", seven)
    order = full.tenant_names()
    part = render._render_chunk(PROJECT, "dev", seven, ["t001"], order)  # noqa: SLF001
    assert list(part["tenants"]) == ["t001"]
    assert part["tenants"]["t001"] == [full.of_type(render.TENANT_TYPE)[1], *full.tenant("t001")]
    shared = [r for r in full.resources if r["urn"] not in {x["urn"] for t in order for x in
                                                             [*full.tenant(t), *full.of_type(render.TENANT_TYPE)]}]
    assert part["shared"] == shared
    assert {r["name"] for r in shared if r["type"] == "pulumi:providers:aws"} == \
        {"aws-us-west-2", "aws-eu-west-1", "aws-us-east-1"}
    assert part["outputs"] == full.outputs


def test_merge_refuses_records_that_are_not_shared_then_whole_tenants():
    def record(urn, typ, name, parent=None):
        return {"urn": urn, "type": typ, "name": name, "parent": parent}

    tenant_a = record("a", render.TENANT_TYPE, "a")
    late_shared = record("p", "pulumi:providers:aws", "aws-eu-west-1")
    with pytest.raises(render.MergeRefused, match="outside every tenant"):
        render._split([tenant_a, late_shared], ["a"])  # noqa: SLF001
    tenant_b = record("b", render.TENANT_TYPE, "b")
    with pytest.raises(render.MergeRefused, match="not contiguous"):
        render._split([tenant_a, tenant_b, record("x", "t", "x", parent="a")], ["a", "b"])  # noqa: SLF001
    with pytest.raises(render.MergeRefused, match="out of catalogue order"):
        render._split([tenant_b, tenant_a], ["a", "b"])  # noqa: SLF001


def test_a_warm_cache_renders_only_the_edited_tenant(seven: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    first: dict = {}
    _render(PROJECT, "dev", seven, cache, stats=first)
    assert first["rendered"] == 7
    again: dict = {}
    _render(PROJECT, "dev", seven, cache, stats=again)
    assert again == {"rendered": 0, "cached": 7}
    seven.write_text(seven.read_text().replace("team: team-4\n", "team: team-four\n"))
    edited: dict = {}
    result = _render(PROJECT, "dev", seven, cache, stats=edited)
    assert edited["rendered"] == 1 and edited["cached"] == 6
    assert _resources_json(result) == _resources_json(synth.run(PROJECT, "dev", seven))


def test_keys_follow_code_settings_and_spec(repo_copy: Path):
    """Every input a tenant's rendering depends on is part of its key; the catalogue's path is not."""
    stack_settings, specs = inputs.load_inputs(repo_copy, "dev", None)
    spec, names = specs[0]
    code = render_cache.code_fingerprint(repo_copy)
    settings_fp = render_cache.settings_fingerprint(repo_copy, "dev", stack_settings)
    key = render_cache.tenant_key(code, settings_fp, spec, names)

    (repo_copy / "components" / "quota.py").write_text((repo_copy / "components" / "quota.py").read_text() + "\n#\n")
    assert render_cache.code_fingerprint(repo_copy) != code
    assert render_cache.settings_fingerprint(repo_copy, "staging", stack_settings) != settings_fp
    stack_file = repo_copy / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("quotaScale: 0.5", "quotaScale: 0.25"))
    assert render_cache.settings_fingerprint(repo_copy, "dev", stack_settings) != settings_fp
    other_spec = spec.model_copy(update={"team": spec.team + "-x"})
    assert render_cache.tenant_key(code, settings_fp, other_spec, names) != key
    assert render_cache.tenant_key(code, settings_fp, spec, names) == key


def test_code_key_follows_the_tooling_that_records(repo_copy: Path, monkeypatch):
    """The mocks and recording monitor (tenancy/synth.py) shape every record, so the tooling package that runs is
    part of the code key, although it is not the Pulumi program."""
    # Stand the copy's tooling in for the running package (code_fingerprint hashes the package it is loaded from).
    monkeypatch.setattr(render_cache, "__file__", str(repo_copy / "tenancy" / "render_cache.py"))
    code = render_cache.code_fingerprint(repo_copy)
    _edit(repo_copy / "tenancy" / "synth.py", '"""', '"""Changed. ')
    assert render_cache.code_fingerprint(repo_copy) != code


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A throw-away git repository holding a copy of the project (program, stacks, sample), committed."""
    project = tmp_path / "project"
    copy_project(project)
    git = ["git", "-C", str(project), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "base"], check=True)
    return project


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _change_the_program(project: Path, monkeypatch) -> None:
    """Program code: every namespace gets one more label, in the project's files (what the cache key reads) and in
    the loaded module (what runs in this process, which imported components/ from the repository under test)."""
    from components import tenant as tenant_module

    original = tenant_module.namespace_manifest

    def labelled(*args, **kwargs):
        manifest = original(*args, **kwargs)
        manifest["metadata"]["labels"]["tenancy.example/changed"] = "yes"
        return manifest

    monkeypatch.setattr(tenant_module, "namespace_manifest", labelled)
    _edit(project / "components" / "namespace.py", '"""', '"""Changed. ')


def test_a_stale_cache_never_changes_a_diff(repo_copy: Path, monkeypatch):
    """Program code, settings and catalogue change in turn; each time, `diff --base` and synth with the warm
    cache equal the same without a cache.

    The program code change is made twice over: in the project's files (what the cache key reads) and in the
    loaded module (what runs in this process, which imported components/ from the repository under test).
    """
    cache = repo_copy / render_cache.CACHE_DIR

    def check() -> None:
        cached = diff.against_base(repo_copy, "dev", "HEAD", cache_dir=cache)
        fresh = diff.against_base(repo_copy, "dev", "HEAD")
        assert diff.format_json(cached) == diff.format_json(fresh)
        assert _resources_json(_render(repo_copy, "dev", None, cache)) == \
            _resources_json(synth.run(repo_copy, "dev", None))

    doc = yaml.safe_load((repo_copy / "tenants.yaml").read_text())
    doc["tenants"][0]["team"] = "renamed-team"
    (repo_copy / "tenants.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    check()  # warms the cache for both sides

    _change_the_program(repo_copy, monkeypatch)
    check()
    assert any("tenancy.example/changed" in json.dumps(r["inputs"]) for r in
               _render(repo_copy, "dev", None, cache).resources)

    # Settings: the working tree's quotas halve (the base keeps its own stack file).
    _edit(repo_copy / "Pulumi.dev.yaml", "quotaScale: 0.5", "quotaScale: 0.25")
    check()

    # Catalogue: another tenant changes, in a field every part of it reads.
    doc = yaml.safe_load((repo_copy / "tenants.yaml").read_text())
    doc["tenants"][1]["team"] = "another-team"
    (repo_copy / "tenants.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    check()


def test_tenants_rendered_beside_other_shared_records_are_rendered_again(seven: Path, tmp_path: Path):
    """A cached tenant read platform outputs; when this render's shared records hash differently, it is stale."""
    cache = tmp_path / "cache"
    _render(PROJECT, "dev", seven, cache)
    for path in cache.rglob("*.json"):
        head, body = path.read_text().split("\n")
        if "outputs" in json.loads(body):
            path.unlink()  # the shared records must be rendered again, so the platform hash is recomputed
        else:
            path.write_text(json.dumps({**json.loads(head), "platform": "another platform"}) + "\n" + body)
    render._open.cache_clear()  # noqa: SLF001 - a new process would read the folder afresh
    stats: dict = {}
    result = _render(PROJECT, "dev", seven, cache, stats=stats)
    assert stats["rendered"] == 7 and stats["runs"] == 2
    assert _resources_json(result) == _resources_json(synth.run(PROJECT, "dev", seven))


def test_a_copy_of_the_program_has_the_programs_fingerprint(repo_copy: Path):
    """The base side of a diff renders from a copy: identical code must find the working tree's entries."""
    assert render_cache.code_fingerprint(repo_copy) == render_cache.code_fingerprint(PROJECT)


def test_the_base_side_of_a_diff_renders_only_what_differs(repo_copy: Path):
    """Working tree: every tenant and the shared records are rendered; base: only the edited tenant's old spec
    and its shared records, which makes two entries more (a base copy keyed apart would render all three)."""
    cache = repo_copy / render_cache.CACHE_DIR
    doc = yaml.safe_load((repo_copy / "tenants.yaml").read_text())
    doc["tenants"][0]["team"] = "renamed-team"
    (repo_copy / "tenants.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    diff.against_base(repo_copy, "dev", "HEAD", cache_dir=cache)
    head_tenants = len(inputs.load_inputs(repo_copy, "dev", None)[1])
    assert len(list(cache.rglob("*.json"))) == (head_tenants + 1) + (1 + 1)


def test_a_diff_reads_the_records_of_changed_tenants_only(repo_copy: Path, monkeypatch):
    """Warm cache, one tenant edited: the tenants found under one key on both sides are neither read nor compared
    (equal keys, equal records), and the diff is the uncached one."""
    cache = repo_copy / render_cache.CACHE_DIR
    diff.against_base(repo_copy, "dev", "HEAD", cache_dir=cache)
    render._open.cache_clear()  # noqa: SLF001 - as a new process: nothing read yet
    doc = yaml.safe_load((repo_copy / "tenants.yaml").read_text())
    edited = doc["tenants"][1]["name"]
    doc["tenants"][1]["team"] = "renamed-team"
    (repo_copy / "tenants.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    read: list[str] = []
    original = render_cache.RenderCache.get

    def spy(self, key, platform=None):
        entry = original(self, key, platform)
        if entry is not None and "outputs" not in entry:
            read.append(next(r["name"] for r in entry["records"] if r["type"] == render.TENANT_TYPE))
        return entry

    monkeypatch.setattr(render_cache.RenderCache, "get", spy)
    cached = diff.against_base(repo_copy, "dev", "HEAD", cache_dir=cache)
    assert read == [edited]  # the base side's entry; the working tree's was rendered just now
    assert diff.format_json(cached) == diff.format_json(diff.against_base(repo_copy, "dev", "HEAD"))
    assert [t.tenant for t in cached.tenants if not t.empty()] == [edited]


def test_a_cached_diff_keeps_the_stack_budget(repo_copy: Path, capsys):
    """The cached `diff --base` counts resources from entry heads; over the budget it refuses as synth does."""
    _edit(repo_copy / "Pulumi.dev.yaml", "tenancy:stackBudget: 5000", "tenancy:stackBudget: 120")
    args = ["--project", str(repo_copy), "diff", "--stack", "dev", "--base", "HEAD"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "Pulumi.dev.yaml: tenancy:shards: stack dev would hold" in err and "set tenancy:shards to at least" in err
    assert cli.main(args) == 1  # warm: nothing renders, the heads still count

    def problems(text: str) -> list[str]:  # progress lines come and go with the machine's speed
        return [line for line in text.splitlines() if line.startswith("Pulumi.") or "problem(s)" in line]
    assert problems(capsys.readouterr().err) == problems(err)


# Sharded environments: the platform stack `dev` (no tenants) and shard stacks reading its outputs.

def _commit(project: Path, message: str) -> None:
    git = ["git", "-C", str(project), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", message], check=True)


@pytest.fixture
def sharded_copy(repo_copy: Path) -> Path:
    """repo_copy with `tenancy:shards: 2` and two more tenants (copies of `scratch`), committed: dev-shard-0 holds
    research, compliance and scratch, dev-shard-1 tenant0 and tenant1 (sharding.assign)."""
    _edit(repo_copy / "Pulumi.dev.yaml", "tenancy:shards: 1", "tenancy:shards: 2")
    doc = yaml.safe_load((repo_copy / "tenants.yaml").read_text())
    scratch = next(t for t in doc["tenants"] if t["name"] == "scratch")
    doc["tenants"] += [{**json.loads(json.dumps(scratch)), "name": name, "displayName": name}
                       for name in ("tenant0", "tenant1")]
    (repo_copy / "tenants.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    _commit(repo_copy, "sharded")
    assert sharding.assign("dev", [t["name"] for t in doc["tenants"]], 2) == {
        "dev": [], "dev-shard-0": ["research", "compliance", "scratch"], "dev-shard-1": ["tenant0", "tenant1"]}
    return repo_copy


def _synth_environment(project: Path) -> dict[str, str]:
    """stack -> resources.json of every stack, rendered without any cache as `synth` did before the cache knew
    shards: the platform with `synth.run`, then each shard with `synth.run` answering its StackReference."""
    environment, shards = "dev", inputs.load_inputs(project, "dev", None)[0].shards
    results: dict[str, synth.SynthResult] = {}
    for name in sharding.stacks_of(environment, shards):
        outputs = {environment: results[environment].outputs} if name != environment else None
        results[name] = synth.run(project, name, None, stack_outputs=outputs)
    return {name: _resources_json(result) for name, result in results.items()}


def _cached_environment(project: Path, stats: dict | None = None) -> dict[str, str]:
    results = environment.render(project, "dev", None, cache_dir=project / render_cache.CACHE_DIR, stats=stats)
    return {name: _resources_json(result) for name, result in results.items()}


def _edit_tenant(project: Path, name: str, **fields) -> None:
    doc = yaml.safe_load((project / "tenants.yaml").read_text())
    next(t for t in doc["tenants"] if t["name"] == name).update(fields)
    (project / "tenants.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def test_a_sharded_synth_with_a_warm_cache_is_the_uncached_one_and_renders_only_the_edited_tenant(sharded_copy):
    """Every stack's resources.json is byte for byte the uncached render, cold, warm, and after one tenant is
    edited: then only that tenant renders, in its shard, beside the platform (keyed by every tenant, no tenant
    of its own); the other shard runs no program at all."""
    cold: dict = {}
    assert _cached_environment(sharded_copy, cold) == _synth_environment(sharded_copy)
    assert {name: s["rendered"] for name, s in cold.items()} == {"dev": 0, "dev-shard-0": 3, "dev-shard-1": 2}
    render._open.cache_clear()  # noqa: SLF001 - as a new process: nothing read yet
    warm: dict = {}
    _cached_environment(sharded_copy, warm)
    assert warm == {name: {"rendered": 0, "cached": n} for name, n in (("dev", 0), ("dev-shard-0", 3),
                                                                       ("dev-shard-1", 2))}
    _edit_tenant(sharded_copy, "tenant1", team="team-renamed")
    edited: dict = {}
    assert _cached_environment(sharded_copy, edited) == _synth_environment(sharded_copy)
    # (program runs, tenants rendered, tenants cached) per stack
    assert {name: (s.get("runs", 0), s["rendered"], s["cached"]) for name, s in edited.items()} == \
        {"dev": (1, 0, 0), "dev-shard-0": (0, 0, 3), "dev-shard-1": (1, 1, 1)}


def test_a_stale_cache_never_changes_a_sharded_diff(sharded_copy: Path, monkeypatch):
    """As test_a_stale_cache_never_changes_a_diff, for an environment of two shards: a tenant, the program code,
    a setting (quotas), a setting that changes the platform's outputs the shards read (the Vault KV mount path), and a tenant added
    (which changes the platform's records: the generator expects every tenant) change in turn; each time, the
    cached `diff --base` and synth of every stack equal the uncached ones."""
    cache = sharded_copy / render_cache.CACHE_DIR

    def check() -> None:
        cached = diff.against_base(sharded_copy, "dev", "HEAD", cache_dir=cache)
        fresh = diff.against_base(sharded_copy, "dev", "HEAD")
        assert diff.format_json(cached) == diff.format_json(fresh)
        assert _cached_environment(sharded_copy) == _synth_environment(sharded_copy)

    _edit_tenant(sharded_copy, "tenant0", team="renamed-team")
    check()  # warms the cache for both sides

    _change_the_program(sharded_copy, monkeypatch)
    check()

    _edit(sharded_copy / "Pulumi.dev.yaml", "quotaScale: 0.5", "quotaScale: 0.25")
    check()

    _edit(sharded_copy / "Pulumi.dev.yaml", "path: kv-dev", "path: kv-dev-moved")
    check()
    assert '"kv-dev-moved/' in _cached_environment(sharded_copy)["dev-shard-1"]

    doc = yaml.safe_load((sharded_copy / "tenants.yaml").read_text())
    doc["tenants"].append({**json.loads(json.dumps(doc["tenants"][-1])), "name": "tenant9", "displayName": "tenant9"})
    (sharded_copy / "tenants.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    check()


def test_a_shard_is_keyed_by_the_platform_outputs_it_reads(sharded_copy: Path):
    """A shard's tenants read the platform stack's outputs through a StackReference; rendered beside other outputs
    (whatever changed them), every tenant renders again and the result is the uncached render with those outputs."""
    cache = sharded_copy / render_cache.CACHE_DIR
    stack_settings, specs = inputs.load_inputs(sharded_copy, "dev", None)
    shard = [(spec, names) for spec, names in specs if spec.name in ("tenant0", "tenant1")]
    platform = synth.run(sharded_copy, "dev", None).outputs
    moved = {**platform, "platform": {**platform["platform"], "kvMountPath": "kv-elsewhere"}}
    for outputs in (platform, moved):
        stats: dict = {}
        cached = render.render(sharded_copy, "dev-shard-1", None, shard, stack_settings, cache, stats=stats,
                               stack_outputs={"dev": outputs})
        assert stats["rendered"] == 2
        assert _resources_json(cached) == \
            _resources_json(synth.run(sharded_copy, "dev-shard-1", None, stack_outputs={"dev": outputs}))
    assert '"kv-elsewhere/' in _resources_json(cached)
