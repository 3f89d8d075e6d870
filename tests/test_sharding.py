"""Platform stack + tenant shard stacks: layout, StackReferences, stable assignment, budget, shard-count changes.

`pulumi state move` (pulumi/pulumi pkg/cmd/pulumi/state/state_move.go, v3.x) moves a resource with its
children, renames only the stack and project of every URN (`renameStackAndProject`: type chains and names are
kept), reparents to the destination's root what lost its parent, and copies the providers the moved resources
use. So a moved tenant is adopted without replacement exactly when the shard program registers every one of its
resources, and every provider they use, with the same type chain, name and inputs: that is what is checked here.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings as hsettings, strategies as st

from components import settings, sharding
from tenancy import cli, environment, synth
from components.problems import InvalidInput

PROJECT = Path(__file__).resolve().parent.parent
PROGRAM = ("__main__.py", "Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml",
           "tenants.yaml", "components", "tenancy", "certs", ".gitignore")
EXTRA_TENANTS = [f"tenant{i}" for i in range(9)]


def make_project(root: Path, shards: int = 1, budget: int | None = None, extra: list[str] = EXTRA_TENANTS) -> Path:
    """A copy of the program with the sample catalogue plus `extra` tenants (copies of `scratch`)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROGRAM:
        source = PROJECT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    catalogue = yaml.safe_load((root / "tenants.yaml").read_text())
    scratch = next(t for t in catalogue["tenants"] if t["name"] == "scratch")
    # Deep copies: shared objects would be written as YAML aliases.
    catalogue["tenants"] += [{**copy.deepcopy(scratch), "name": name, "displayName": name} for name in extra]
    (root / "tenants.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    set_settings(root, shards=shards, stackBudget=budget)
    return root


def set_settings(root: Path, **values) -> None:
    path = root / "Pulumi.dev.yaml"
    doc = yaml.safe_load(path.read_text())
    for key, value in values.items():
        doc["config"].pop(f"tenancy:{key}", None)
        if value is not None:
            doc["config"][f"tenancy:{key}"] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def key(urn: str | None) -> str | None:
    """A URN without its stack: what `pulumi state move` keeps."""
    return None if urn is None else urn.split("::", 2)[2] if urn.startswith("urn:") else urn


def by_key(result: synth.SynthResult) -> dict[str, dict]:
    return {key(r["urn"]): r for r in result.resources}


@pytest.fixture(scope="module")
def one_and_three(tmp_path_factory):
    one = environment.render(make_project(tmp_path_factory.mktemp("one")), "dev")
    three = environment.render(make_project(tmp_path_factory.mktemp("three"), shards=3), "dev")
    return one, three


def test_one_shard_keeps_every_urn_of_the_sample():
    """The default layout is today's: the sample dev stack registers exactly the URNs it did before sharding
    (tests/sample_dev_urns.txt, rendered from main before this change), in the same order."""
    result = synth.run(PROJECT, "dev")
    assert [r["urn"] for r in result.resources] == (PROJECT / "tests/sample_dev_urns.txt").read_text().split()
    assert "platform" not in result.outputs  # nothing new is exported by a one-stack environment


def test_platform_stack_holds_the_platform_and_shards_hold_the_tenants(one_and_three):
    one, three = one_and_three
    assert list(three) == ["dev", "dev-shard-0", "dev-shard-1", "dev-shard-2"]
    platform = three["dev"]
    assert platform.tenant_names() == []
    assert {r["type"] for r in platform.resources} >= {"aws:keyspaces/table:Table", "vault:index/mount:Mount",
                                                       "vault:index/authBackend:AuthBackend"}
    assert platform.outputs["platform"] == {"kvMountPath": "kv-dev", "kubernetesAuthPath": "kubernetes-dev"}
    everyone = one["dev"].tenant_names()
    seen = []
    for stack in ("dev-shard-0", "dev-shard-1", "dev-shard-2"):
        shard = three[stack]
        # A shard creates no platform resource: only providers, the platform view and its tenants.
        assert not {"aws:keyspaces/table:Table", "vault:index/mount:Mount"} & {r["type"] for r in shard.resources}
        for name in shard.tenant_names():
            assert sharding.stack_of("dev", name, 3) == stack
        seen += shard.tenant_names()
    assert sorted(seen) == sorted(everyone)
    assert len({sharding.shard_of(n, 3) for n in everyone}) == 3, "the sample spreads over every shard"


def test_moved_tenants_are_adopted_without_replacement(one_and_three):
    """Every resource of every tenant, and every provider it uses, is registered in its shard with the same
    type chain, name, inputs, protection and (stack-less) provider URN as in the one-stack layout."""
    one, three = one_and_three
    single = one["dev"]
    for stack, shard in list(three.items())[1:]:
        registered = by_key(shard)
        for name in shard.tenant_names():
            before = single.tenant(name)
            after = shard.tenant(name)
            assert [key(r["urn"]) for r in after] == [key(r["urn"]) for r in before]
            for old in before:
                new = registered[key(old["urn"])]
                assert (new["inputs"], new["protect"], new["retainOnDelete"], key(new["provider"])) == \
                    (old["inputs"], old["protect"], old["retainOnDelete"], key(old["provider"])), old["urn"]
                if old["provider"]:
                    assert key(old["provider"]) in registered, f"{stack} lacks provider {old['provider']}"


def test_shard_reads_platform_outputs_through_a_stack_reference(tmp_path):
    """The shard's Vault paths come from the StackReference's outputs (mocked through `new_resource` of
    `pulumi:pulumi:StackReference`), not from its own settings. The registry table is named by the environment's
    settings, which both stacks read: plain values, so a record can refuse a move of the rows at preview."""
    project = make_project(tmp_path, shards=2)
    outputs = {"platform": {"kvMountPath": "kv-from-platform", "kubernetesAuthPath": "auth-from-platform"}}
    stack = sharding.stack_of("dev", "research", 2)
    shard = synth.run(project, stack, stack_outputs={"dev": outputs})
    research = shard.tenant("research")
    secrets = [r for r in research if r["type"] == "vault:kv/secretV2:SecretV2"]
    roles = [r for r in research if r["type"] == "vault:kubernetes/authBackendRole:AuthBackendRole"]
    records = [r for r in research if r["type"] == "pulumi-python:dynamic:Resource"]
    assert secrets and {s["inputs"]["mount"] for s in secrets} == {"kv-from-platform"}
    assert roles and {r["inputs"]["backend"] for r in roles} == {"auth-from-platform"}
    assert records and (records[0]["inputs"]["keyspace"], records[0]["inputs"]["table"]) == \
        ("tenant_ops_dev", "tenant_configs")


@hsettings(max_examples=200, deadline=None)
@given(names=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), unique=True, min_size=1, max_size=40),
       others=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), unique=True, max_size=40),
       shards=st.integers(min_value=1, max_value=16), seed=st.integers())
def test_assignment_is_stable(names, others, shards, seed):
    """Adding, removing or reordering other tenants never moves a tenant; one more shard moves tenants only
    onto the new shard, one fewer only off the removed one."""
    before = {t: stack for stack, ts in sharding.assign("dev", names, shards).items() for t in ts}
    mixed = [*names, *(o for o in others if o not in names)]
    random.Random(seed).shuffle(mixed)
    after = {t: stack for stack, ts in sharding.assign("dev", mixed, shards).items() for t in ts}
    assert all(after[t] == before[t] for t in names)
    if shards > 1:
        grown = {t: sharding.stack_of("dev", t, shards + 1) for t in names}
        assert all(grown[t] in (before[t], sharding.shard_stack("dev", shards)) for t in names)
    if shards > 2:  # (down to one shard, every tenant joins the platform's stack)
        shrunk = {t: sharding.stack_of("dev", t, shards - 1) for t in names}
        removed = sharding.shard_stack("dev", shards - 1)
        assert all(shrunk[t] == before[t] for t in names if before[t] != removed)


def test_growing_moves_about_one_in_n():
    names = [f"tenant-{i}" for i in range(2000)]
    moved = sum(len(m.tenants) for m in sharding.moves("dev", names, 4, 5))
    assert 0.15 * len(names) < moved < 0.25 * len(names)  # 1/5 expected


def test_budget_refused_with_the_shards_needed(tmp_path, capsys):
    project = make_project(tmp_path, budget=300)
    assert cli.main(["--project", str(project), "synth", "--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert "Pulumi.dev.yaml: tenancy:shards: stack dev would hold" in err and "more than tenancy:stackBudget (300)" in err
    needed = int(err.split("set tenancy:shards to at least ")[1].split()[0])
    set_settings(project, shards=needed)
    assert cli.main(["--project", str(project), "synth", "--stack", "dev"]) == 0, capsys.readouterr().err
    sizes = [environment.stack_size(s, r) for s, r in environment.render(project, "dev").items()]
    assert max(sizes) <= 300
    set_settings(project, shards=needed - 1)
    if needed > 2:  # the advice is the smallest count that fits
        assert cli.main(["--project", str(project), "synth", "--stack", "dev"]) == 1


def test_budget_too_small_for_one_tenant(tmp_path, capsys):
    project = make_project(tmp_path, budget=40, extra=[])
    assert cli.main(["--project", str(project), "synth", "--stack", "dev"]) == 1
    assert "no shard count fits" in capsys.readouterr().err


def test_shard_stack_files_repeat_no_setting(tmp_path, capsys):
    project = make_project(tmp_path, shards=2)
    assert settings.known_stacks(project) == ("dev", "prod", "staging")
    (project / "Pulumi.dev-shard-1.yaml").write_text("encryptionsalt: v1:abc\n")
    assert settings.load_stack(project, "dev-shard-1").shards == 2
    (project / "Pulumi.dev-shard-1.yaml").write_text("config:\n  tenancy:quotaScale: 2\n")
    assert cli.main(["--project", str(project), "validate", "--stack", "dev-shard-1"]) == 1
    assert "Pulumi.dev-shard-1.yaml: tenancy:quotaScale: a shard stack takes its settings from Pulumi.dev.yaml" \
        in capsys.readouterr().err
    with pytest.raises(InvalidInput, match="not a shard of this environment"):
        settings.load_stack(project, "dev-shard-2")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def make_repo(root: Path, **kwargs) -> Path:
    project = make_project(root, **kwargs)
    git(project, "init", "-q")
    git(project, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
    git(project, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "base")
    return project


def test_shard_count_change_is_refused_without_state_moves(tmp_path, capsys):
    project = make_repo(tmp_path)
    set_settings(project, shards=3)
    code = cli.main(["--project", str(project), "diff", "--stack", "dev", "--base", "HEAD", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 3
    assert json.loads(out)["destructive"] == []  # matched resource by resource: nothing is recreated after moves
    assert "REFUSED without state moves: tenancy:shards 1 -> 3 moves 12 tenant(s)" in err
    target = sharding.stack_of("dev", "research", 3)
    assert f"pulumi state move --source dev --dest {target} " in err
    assert "urn:pulumi:dev::tenancy::tenancy:index:Tenant::research" in err
    assert err.index("pulumi state move") < err.index("pulumi up --stack dev ") < err.index(f"pulumi up --stack {target}")


def plan_of(project: Path) -> dict[str, list[str]]:
    assert cli.main(["--project", str(project), "plan", "--stack", "dev", "--base", "HEAD", "--format", "json"]) == 0
    return {s["stack"]: s["reasons"] for s in json.loads(CAPTURED.readouterr().out)["stacks"]}


@pytest.fixture
def sharded_repo(tmp_path, capsys):
    global CAPTURED
    CAPTURED = capsys
    return make_repo(tmp_path, shards=3)


def test_plan_one_tenant_changed(sharded_repo):
    assert plan_of(sharded_repo) == {}
    catalogue = yaml.safe_load((sharded_repo / "tenants.yaml").read_text())
    catalogue["tenants"][-1]["labels"] = {"cost-centre": "42"}
    (sharded_repo / "tenants.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    name = catalogue["tenants"][-1]["name"]
    assert plan_of(sharded_repo) == {sharding.stack_of("dev", name, 3): [f"tenant {name} changed"]}


def test_plan_touches_the_platform_when_what_it_serves_changes(sharded_repo):
    """The platform stack renders the generator's expected tenants and the admission parameters from every
    tenant: suspending one changes both its shard and the platform, platform first."""
    catalogue = yaml.safe_load((sharded_repo / "tenants.yaml").read_text())
    catalogue["tenants"][-1]["lifecycle"] = "suspended"
    (sharded_repo / "tenants.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    name = catalogue["tenants"][-1]["name"]
    planned = plan_of(sharded_repo)
    assert list(planned) == ["dev", sharding.stack_of("dev", name, 3)]
    assert "the tenants the platform serves changed" in planned["dev"][0]


def test_plan_settings_changed(sharded_repo):
    set_settings(sharded_repo, quotaScale=0.75)
    planned = plan_of(sharded_repo)
    assert list(planned) == ["dev", "dev-shard-0", "dev-shard-1", "dev-shard-2"]
    assert planned["dev"] == ["settings changed: tenancy:quotaScale"]


def test_plan_program_changed(sharded_repo):
    with (sharded_repo / "components" / "quota.py").open("a") as f:
        f.write("\n# a program change\n")
    planned = plan_of(sharded_repo)
    assert list(planned) == ["dev", "dev-shard-0", "dev-shard-1", "dev-shard-2"]
    assert planned["dev-shard-1"] == ["program changed: components/quota.py"]


def test_plan_ignores_docs_and_lists_moves(sharded_repo):
    (sharded_repo / "README.md").write_text("docs only\n")
    assert plan_of(sharded_repo) == {}
    # The offline tooling is not what `pulumi up` runs: changing it touches no stack.
    with (sharded_repo / "tenancy" / "synth.py").open("a") as f:
        f.write("\n# a tooling change\n")
    assert plan_of(sharded_repo) == {}
    set_settings(sharded_repo, shards=4)
    planned = plan_of(sharded_repo)
    assert "dev-shard-3" in planned and any("receives" in r for r in planned["dev-shard-3"])
    assert all("settings changed: tenancy:shards" in reasons[0] for reasons in planned.values())


def test_catalogue_wide_rules_see_every_tenant_whatever_the_shard(tmp_path, capsys):
    """`dup-three` and `dup--three` collide (names compare with repeated `-` folded) although they live in
    different shards: every stack refuses the catalogue, the shard holding only one of them included."""
    assert sharding.shard_of("dup-three", 3) != sharding.shard_of("dup--three", 3)
    project = make_project(tmp_path, shards=3, extra=["dup-three", "dup--three"])
    assert cli.main(["--project", str(project), "validate", "--stack", sharding.stack_of("dev", "dup-three", 3)]) == 1
    assert "dup--three" in capsys.readouterr().err
    with pytest.raises(Exception, match="invalid input, nothing was changed"):
        synth.run(project, sharding.stack_of("dev", "dup-three", 3), stack_outputs={"dev": {"platform": {}}})


def test_the_program_refuses_settings_in_a_shard_stack(tmp_path):
    """Under `pulumi up` the shard's own config is what Pulumi hands the program: a setting there is refused
    before anything is registered, as the tooling refuses it in the file."""
    project = make_project(tmp_path, shards=2)
    (project / "Pulumi.dev-shard-1.yaml").write_text("config:\n  tenancy:protectData: true\n")
    with pytest.raises(Exception, match="tenancy:protectData: a shard stack takes its settings from Pulumi.dev.yaml"):
        synth.run(project, "dev-shard-1", stack_outputs={"dev": {}})


def test_shrinking_moves_tenants_off_the_removed_shards_and_retires_them():
    names = [f"tenant-{i}" for i in range(200)]
    moved = sharding.moves("dev", names, 4, 3)
    assert {m.source for m in moved} == {"dev-shard-3"} and {m.dest for m in moved} <= {"dev-shard-0", "dev-shard-1",
                                                                                        "dev-shard-2"}
    steps = sharding.move_steps("dev", "tenancy", moved, 3)
    assert steps[-2:] == ["pulumi destroy --stack dev-shard-3   # holds no tenant any more",
                          "pulumi stack rm --stack dev-shard-3"]
    state_moves = [s for s in steps if s.startswith("pulumi state move")]
    assert len(state_moves) == len(moved)
    assert all(s.startswith("pulumi state move --source dev-shard-3 --dest dev-shard-") for s in state_moves)
    back = sharding.moves("dev", names, 3, 1)
    assert {m.dest for m in back} == {"dev"} and sum(len(m.tenants) for m in back) == 200


def test_a_budget_below_the_smallest_platform_stack_is_refused_by_validate(tmp_path, capsys):
    """`tenancy:stackBudget: 4` passed validate, then synth refused every stack: validate refuses it now, and the
    floor stays below the smallest platform stack the program renders (every optional part off, no tenant)."""
    root = make_project(tmp_path / "small", extra=[])
    doc = yaml.safe_load((root / "Pulumi.dev.yaml").read_text())
    config = doc["config"]
    for optional in ("tenancy:argocd", "tenancy:irsa"):
        config.pop(optional)
    config["tenancy:registry"] = {"enabled": False}
    config["tenancy:allowNoTenants"] = True
    config["tenancy:vault"]["kvMount"]["create"] = config["tenancy:vault"]["kubernetesAuth"]["create"] = False
    (root / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (root / "tenants.yaml").write_text("tenants: []\n")
    smallest = environment.stack_size("dev", environment.render(root, "dev")["dev"])
    assert settings.MIN_STACK_BUDGET <= smallest

    set_settings(root, stackBudget=4)
    assert cli.main(["--project", str(root), "validate", "--stack", "dev"]) == 1
    assert capsys.readouterr().err.startswith("Pulumi.dev.yaml: tenancy:stackBudget: Input should be greater than or "
                                              f"equal to {settings.MIN_STACK_BUDGET}")
    set_settings(root, stackBudget=settings.MIN_STACK_BUDGET)
    assert cli.main(["--project", str(root), "validate", "--stack", "dev"]) == 0
