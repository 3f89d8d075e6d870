"""Every catalogue rule, observed the way a user sees it: the CLI's exit code and the problem lines it prints."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from components import catalogue, settings
from components.problems import InvalidInput
from tests.conftest import PROJECT

STACKS = settings.known_stacks(PROJECT)
DEV = settings.load_stack(PROJECT, "dev")

BASE = """
tenants:
  - name: alpha
    team: a
    repo: {url: https://github.com/x/alpha.git}
  - name: beta
    team: b
    repo: {url: https://github.com/x/beta.git}
"""


def problems(text: str, tmp_path: Path, stack: settings.StackSettings = DEV) -> list[str]:
    path = tmp_path / "tenants.yaml"
    path.write_text(textwrap.dedent(text))
    try:
        catalogue.load(path, stacks=STACKS).for_stack(stack)
    except InvalidInput as invalid:
        return [str(p) for p in invalid.problems]
    return []


def with_tenant(**fields: str) -> str:
    extra = "".join(f"\n    {k}: {v}" for k, v in fields.items())
    return BASE + f"""  - name: gamma
    team: c
    repo: {{url: https://github.com/x/gamma.git}}{extra}
"""


def test_sample_catalogue_is_valid_in_every_stack(tmp_path):
    cat = catalogue.load(PROJECT / "tenants.yaml", stacks=STACKS)
    for stack in STACKS:
        assert cat.for_stack(settings.load_stack(PROJECT, stack))


@pytest.mark.parametrize("text, expected", [
    (BASE + "  - name: alpha\n    team: z\n    repo: {url: https://github.com/x/a2.git}\n",
     "tenants.yaml: tenants[2] (name=alpha).name: duplicate name of tenants[0]"),
    (BASE + "  - name: al--pha\n    team: z\n    repo: {url: https://github.com/x/a2.git}\n  - name: al-pha\n"
            "    team: z\n    repo: {url: https://github.com/x/a3.git}\n",
     "tenants.yaml: tenants[3] (name=al-pha).name: name collides after normalisation with 'al--pha' of tenants[2]"),
    (with_tenant(), None),
    (BASE.replace("name: beta", "name: Beta_1"),
     "tenants.yaml: tenants[1] (name=Beta_1).name: 'Beta_1' is not a DNS-1123 label"),
    (with_tenant(artifacts="{keyprefix: x/}"),
     "tenants.yaml: tenants[2] (name=gamma).artifacts.keyprefix: unknown field"),
    (with_tenant(colour="blue"), "tenants.yaml: tenants[2] (name=gamma).colour: unknown field"),
    (with_tenant(overrides="{qa: {podSecurity: baseline}}"),
     "tenants.yaml: tenants[2] (name=gamma).overrides.qa: no stack 'qa'"),
    (with_tenant(environments="[dev, qa]"), "tenants.yaml: tenants[2] (name=gamma).environments[1]: no stack 'qa'"),
    (with_tenant(network="{loadBalancerCidrs: [10.0.0.1/8]}"),
     "tenants.yaml: tenants[2] (name=gamma).network.loadBalancerCidrs: '10.0.0.1/8' is not a CIDR block"),
    (with_tenant(network="{loadBalancerCidrs: [not-a-cidr]}"),
     "tenants.yaml: tenants[2] (name=gamma).network.loadBalancerCidrs: 'not-a-cidr' is not a CIDR block"),
    (with_tenant(quota="{requests.cpu: lots}"),
     "tenants.yaml: tenants[2] (name=gamma).quota: 'lots' is not a Kubernetes quantity"),
    (with_tenant(quota="{pods: 1.5}"),
     "tenants.yaml: tenants[2] (name=gamma).quota: pods: object counts must be whole numbers"),
    (with_tenant(quota="{gpus: 1}"), "tenants.yaml: tenants[2] (name=gamma).quota: 'gpus' is not a ResourceQuota resource name"),
    (with_tenant(region="us-middle-9"), "tenants.yaml: tenants[2] (name=gamma).region: 'us-middle-9' is not an AWS region"),
    (with_tenant(labels="{'bad key!': x}"), "tenants.yaml: tenants[2] (name=gamma).labels: label key name 'bad key!'"),
    (with_tenant(labels="{tier: 'spaces are bad'}"), "tenants.yaml: tenants[2] (name=gamma).labels: label value 'spaces are bad'"),
    (with_tenant(artifacts="{keyPrefix: '*/'}"), "tenants.yaml: tenants[2] (name=gamma).artifacts.keyPrefix: must"),
    (with_tenant(artifacts="{keyPrefix: no-trailing-slash}"), "tenants.yaml: tenants[2] (name=gamma).artifacts.keyPrefix: must"),
    (with_tenant(supplyChain="{enabled: true, certificate: not-a-pem}"),
     "tenants.yaml: tenants[2] (name=gamma).supplyChain.certificate: is not a PEM X.509 certificate"),
    (with_tenant(supplyChain="{enabled: true, certificateFile: missing.pem}"),
     "tenants.yaml: tenants[2] (name=gamma).supplyChain.certificateFile: cannot read 'missing.pem'"),
    (with_tenant(supplyChain="{enabled: true}"),
     "tenants.yaml: tenants[2] (name=gamma).supplyChain: enabled supply-chain verification needs a certificate"),
    (with_tenant(artifacts="{bucket: calypr-alpha-dev-artifacts}"),
     "tenants.yaml: tenants[2] (name=gamma).artifacts.bucket: derived bucket 'calypr-alpha-dev-artifacts' collides "
     "with tenants[0] (name=alpha)"),
    (with_tenant(artifacts="{bucket: 192.168.1.1}"),
     "tenants.yaml: tenants[2] (name=gamma).artifacts.bucket: bucket name '192.168.1.1' must not look like an IP address"),
    (BASE.replace("name: beta", "name: " + "b" * 45),
     f"tenants.yaml: tenants[1] (name={'b' * 45}).name: bucket name 'calypr-{'b' * 45}-dev-artifacts' is 66 characters"),
    (with_tenant(minicluster="{enabled: true, users: [alice, alice]}"),
     "tenants.yaml: tenants[2] (name=gamma).minicluster.users: user names must be unique"),
    (with_tenant(params="{namespace: x}"), "tenants.yaml: tenants[2] (name=gamma).params: param key 'namespace' is reserved"),
    (with_tenant(repo="{url: 'https://user:token@github.com/x/y.git'}"),
     "tenants.yaml: tenants[2] (name=gamma).repo.url: must be an https://"),
    ("tenants: {alpha: {}}\n", "tenants.yaml: tenants: must be a list of tenants, got dict"),
    ("", "tenants.yaml: the file is empty"),
    ("defaults: {}\n", "tenants.yaml: tenants: missing"),
    ("- just\n- a list\n", "tenants.yaml: expected a mapping with `defaults` and `tenants`, got list"),
    ("tenants: [1]\n", "tenants.yaml: tenants[0]: must be a mapping of tenant fields"),
    ("tenants:\n  - team: a\n    repo: {url: https://github.com/x/y.git}\n", "tenants.yaml: tenants[0].name: missing"),
    ("defaults: {name: x}\ntenants: []\n", "tenants.yaml: defaults.name: a default name"),
])
def test_each_rule_reports_the_field_path(text, expected, tmp_path):
    found = problems(text, tmp_path)
    if expected is None:
        assert found == []
    else:
        assert any(line.startswith(expected) for line in found), found


def test_all_problems_are_reported_together(tmp_path):
    found = problems(with_tenant(region="mars-1", podSecurity="lax", network="{loadBalancerCidrs: [x]}"), tmp_path)
    assert len(found) == 3
    assert {line.split(": ")[1] for line in found} == {
        "tenants[2] (name=gamma).region", "tenants[2] (name=gamma).podSecurity",
        "tenants[2] (name=gamma).network.loadBalancerCidrs"}


def test_problem_in_defaults_points_at_defaults(tmp_path):
    found = problems("defaults:\n  quota: {requests.cpu: lots}\n" + BASE, tmp_path)
    assert found and all(line.startswith("tenants.yaml: defaults.quota: ") for line in found)


def test_problem_in_an_override_points_at_that_override_even_for_another_stack(tmp_path):
    # A bad prod value must fail CI for dev too: every environment a tenant lists is validated.
    found = problems(with_tenant(overrides="{prod: {network: {loadBalancerCidrs: [300.1.1.1/32]}}}"), tmp_path)
    assert found == [f for f in found if "tenants[2] (name=gamma).overrides.prod.network.loadBalancerCidrs" in f]
    assert len(found) == 1


def test_yaml_is_read_safely(tmp_path):
    assert "not valid YAML" in problems("tenants: !!python/object/apply:os.system ['true']\n", tmp_path)[0]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    assert "alias-expansion bomb" in problems(bomb + "tenants: []\n", tmp_path)[0]


def test_oversized_file_is_refused(tmp_path):
    assert "limit" in problems("tenants: []\n#" + "x" * (3 * 1024 * 1024), tmp_path)[0]


def test_merge_order_defaults_then_env_then_tenant_then_tenant_env(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(textwrap.dedent("""
        defaults:
          podSecurity: baseline
          quota: {pods: "10"}
          overrides:
            dev: {quota: {pods: "20", services: "3"}}
        tenants:
          - name: alpha
            team: a
            repo: {url: https://github.com/x/alpha.git}
            quota: {services: "5"}
            overrides:
              dev: {quota: {secrets: "7"}}
    """))
    [(spec, _)] = catalogue.load(path, stacks=STACKS).for_stack(DEV)
    assert spec.pod_security == "baseline"
    assert spec.quota == {"pods": "20", "services": "5", "secrets": "7"}


def test_environments_decide_membership(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(with_tenant(environments="[dev]"))
    cat = catalogue.load(path, stacks=STACKS)
    assert [s.name for s, _ in cat.for_stack(DEV)] == ["alpha", "beta", "gamma"]
    assert [s.name for s, _ in cat.for_stack(settings.load_stack(PROJECT, "prod"))] == ["alpha", "beta"]


def test_stack_defaults_fill_region_credentials_and_versioning(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(BASE)
    prod = settings.load_stack(PROJECT, "prod")
    spec, _ = catalogue.load(path, stacks=STACKS).for_stack(prod)[0]
    assert (spec.region, spec.artifacts.credentials, spec.artifacts.versioning) == (
        prod.region, prod.artifacts.credentials, prod.artifacts.versioning)


@pytest.mark.parametrize("text", ["", "tenants: {a: 1}\n", BASE.replace("alpha", "Alpha"),
                                  with_tenant(network="{loadBalancerCidrs: [bad]}")])
@pytest.mark.parametrize("command", ["validate", "synth"])
def test_cli_exits_1_with_problem_lines_and_no_traceback(text, command, tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(textwrap.dedent(text))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "components", command, "--stack", "dev", "--tenants", str(path),
                          *(["--out", str(out)] if command == "synth" else [])],
                         cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr + run.stdout
    assert run.stderr.splitlines()[0].startswith("tenants.yaml: ")
    assert not out.exists(), "nothing may be rendered from invalid input"
