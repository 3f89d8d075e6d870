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
    fields = {"team": "c", "repo": "{url: https://github.com/x/gamma.git}", **fields}
    extra = "".join(f"\n    {k}: {v}" for k, v in fields.items())
    return BASE + f"""  - name: gamma{extra}
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
     "tenants.yaml: tenants[2] (name=gamma).quota: requests.cpu: 'lots' is not a Kubernetes quantity"),
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
    ("tenants: {alpha: {}}\n", "tenants.yaml: tenants: must be a list of tenants, got a mapping"),
    ("", "tenants.yaml: the file is empty"),
    ("defaults: {}\n", "tenants.yaml: tenants: missing"),
    ("- just\n- a list\n", "tenants.yaml: expected a mapping with `defaults` and `tenants`, got a list"),
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
    assert "the tag !!python/object/apply:os.system is not used" in problems(
        "tenants: !!python/object/apply:os.system ['true']\n", tmp_path)[0]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    assert "alias-expansion bomb" in problems(bomb + "tenants: []\n", tmp_path)[0]


def test_many_values_without_aliases_are_refused_and_repeated_scalars_each_checked(tmp_path):
    """Without aliases the node count comes from the event pass; scalar tags are resolved once per text, so the
    same ambiguous text in two places must still be reported at both."""
    from components import safe_yaml

    many = "[" + ",".join(["0"] * (safe_yaml.MAX_NODES + 1)) + "]"
    assert "expands to more than" in problems(f"tenants: []\nx: {many}\n", tmp_path)[0]
    found = problems(with_tenant(labels="{a: yes, b: yes}"), tmp_path)
    assert [f.split(": ", 2)[1] for f in found] == ["tenants[2] (name=gamma).labels.a", "tenants[2] (name=gamma).labels.b"], found


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
    run = subprocess.run([sys.executable, "-m", "tenancy", command, "--stack", "dev", "--tenants", str(path),
                          *(["--out", str(out)] if command == "synth" else [])],
                         cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr + run.stdout
    assert run.stderr.splitlines()[0].startswith("tenants.yaml: ")
    assert not out.exists(), "nothing may be rendered from invalid input"


# --- input that is never half-understood --------------------------------------------------------------------

def test_a_second_tenants_block_is_refused_not_silently_kept(tmp_path):
    # YAML keeps the last of two equal keys: the earlier tenants would vanish from every stack with exit 0.
    text = BASE + "tenants:\n  - name: gamma\n    team: c\n    repo: {url: https://github.com/x/gamma.git}\n"
    assert problems(text, tmp_path) == [
        "tenants.yaml: tenants: line 9, column 1: duplicate key 'tenants' (first at line 2, column 1); "
        "YAML would keep only the last one"]


def test_duplicate_keys_are_refused_at_any_depth(tmp_path):
    found = problems(with_tenant(artifacts="\n      keyPrefix: a/\n      keyPrefix: b/"), tmp_path)
    assert found == ["tenants.yaml: tenants[2] (name=gamma).artifacts.keyPrefix: line 14, column 7: duplicate key "
                     "'keyPrefix' (first at line 13, column 7); YAML would keep only the last one"]


@pytest.mark.parametrize("field, value, expected", [
    ("minicluster", "{enabled: true, size: 010}", "minicluster.size: line 12, column 40: '010' is read as 8 by YAML 1.1"),
    ("quota", "{pods: 010}", "quota.pods: line 12, column 19: '010' is read as 8 by YAML 1.1"),
    ("displayName", "yes", "displayName: line 12, column 18: 'yes' is read as the boolean true by YAML 1.1"),
    ("network", "{allowEgressToInternet: on}", "network.allowEgressToInternet: line 12, column 38: 'on' is read as "
                                               "the boolean true by YAML 1.1 but as text by YAML 1.2; write true"),
    ("params", "{since: 2024-01-01}", "params.since: line 12, column 21: '2024-01-01' is read as a date"),
    ("labels", "{on: x}", "labels: line 12, column 14: the key 'on' is read as a boolean; keys must be text"),
])
def test_yaml_1_1_surprises_are_refused_with_line_and_column(field, value, expected, tmp_path):
    found = problems(with_tenant(**{field: value}), tmp_path)
    assert len(found) == 1 and found[0].startswith(f"tenants.yaml: tenants[2] (name=gamma).{expected}"), found


def test_quoted_or_unambiguous_values_are_read_as_written(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(with_tenant(displayName="'yes'", quota="{pods: '010'}", minicluster="{enabled: true, size: 8}"))
    gamma = catalogue.load(path, stacks=STACKS).for_stack(DEV)[2][0]
    assert (gamma.display_name, gamma.quota["pods"], gamma.minicluster.size) == ("yes", "010", 8)


@pytest.mark.parametrize("text", [
    "tenants: []\n",
    "defaults: {environments: [prod]}\n" + BASE.removeprefix("\n"),
])
def test_a_stack_without_tenants_is_refused_unless_allowed(text, tmp_path):
    assert problems(text, tmp_path) == [
        "tenants.yaml: tenants: no tenant is in stack 'dev', so deploying it would remove every tenant it has; if an "
        "empty stack is intended, set tenancy:allowNoTenants: true in Pulumi.dev.yaml"]
    assert problems(text, tmp_path, DEV.model_copy(update={"allow_no_tenants": True})) == []


def test_environments_spelt_in_another_case_are_refused_everywhere(tmp_path):
    found = problems("defaults: {environments: [Dev]}\n" + BASE.removeprefix("\n"), tmp_path)
    assert "tenants.yaml: defaults.environments[0]: no stack 'Dev'; stacks are dev, prod, staging; did you mean 'dev'?" \
        in found
    found = problems(with_tenant(Environments="[dev]"), tmp_path)
    assert found == ["tenants.yaml: tenants[2] (name=gamma).Environments: unknown field; did you mean 'environments'?"]
    assert problems(with_tenant(environments="[]"), tmp_path) == [
        "tenants.yaml: tenants[2] (name=gamma).environments: an empty list puts the tenant in no stack; list its "
        "stacks, or leave `environments` out for every stack"]


@pytest.mark.parametrize("fields, expected", [
    ({"artifacts": "{expireAfterDays: 7}"}, "artifacts.expireAfterDays: has no effect in any stack of this tenant: "
                                           "only storageClass `temporary` expires artifacts"),
    ({"artifacts": "{storageClass: temporary, archiveAfterDays: 9}"},
     "artifacts.archiveAfterDays: has no effect in any stack of this tenant: only storageClass `archive`"),
    ({"minicluster": "{size: 4}"}, "minicluster.size: has no effect in any stack of this tenant: minicluster.enabled"),
    ({"supplyChain": "{certificateFile: certs/x.pem}"}, "supplyChain.certificateFile: has no effect in any stack"),
    ({"environments": "[dev]", "overrides": "{prod: {podSecurity: baseline}}"},
     "overrides.prod: has no effect: the tenant is not in stack 'prod'"),
    ({"minicluster": "{enabled: true}", "overrides": "{prod: {minicluster: {enabled: false, size: 3}}}"},
     "overrides.prod.minicluster.size: has no effect in stack 'prod': minicluster.enabled is false"),
])
def test_settings_without_effect_are_refused(fields, expected, tmp_path):
    found = problems(with_tenant(**fields), tmp_path)
    assert len(found) == 1 and found[0].startswith(f"tenants.yaml: tenants[2] (name=gamma).{expected}"), found


def test_a_value_that_acts_in_some_stack_is_kept(tmp_path):
    # MiniCluster settings in the entry act in dev and staging; prod switching it off is not a mistake.
    assert problems(with_tenant(minicluster="{enabled: true, size: 4}",
                                overrides="{prod: {minicluster: {enabled: false}}}"), tmp_path) == []
    # Defaults are for the tenants that use them.
    assert problems("defaults: {artifacts: {expireAfterDays: 3}}\n" + BASE.removeprefix("\n"), tmp_path) == []


# --- certificateFile reads only what it should -------------------------------------------------------------

CERT_PEM = (PROJECT / "certs" / "compliance-root-ca.pem").read_text()


def _private_key_pem(marker: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return key.replace("-----END PRIVATE KEY-----", f"{marker}\n-----END PRIVATE KEY-----")


def cert_problems(tmp_path: Path, name: str) -> list[str]:
    return problems(with_tenant(supplyChain=f"{{enabled: true, certificateFile: '{name}', "
                                                 f"trustedIdentities: ['C=US, ST=Oregon, O=calypr, CN=signer']}}"), tmp_path)


@pytest.mark.parametrize("name, expected", [
    ("/etc/hostname", "'/etc/hostname' must be a relative path inside"),
    ("../outside.pem", "'../outside.pem' must be a relative path inside"),
    ("certs/../../outside.pem", "'certs/../../outside.pem' must be a relative path inside"),
    ("link.pem", "'link.pem' leads outside"),
    ("certs", "'certs' is a directory, not a regular file"),
    ("big.pem", "'big.pem' is 200000 bytes; the limit is 65536"),
    ("notes.pem", "'notes.pem' must hold PEM CERTIFICATE blocks and nothing else"),
    ("binary.pem", "'binary.pem' is not PEM text"),
    ("key.pem", "'key.pem' holds a PRIVATE KEY block; only CERTIFICATE blocks are allowed"),
    ("bundle.pem", "'bundle.pem' holds a PRIVATE KEY block"),
    ("missing.pem", "cannot read 'missing.pem': No such file or directory"),
])
def test_certificate_file_is_confined_to_certificates_in_the_catalogue_folder(name, expected, tmp_path):
    project = tmp_path / "project"
    (project / "certs").mkdir(parents=True)
    (tmp_path / "outside.pem").write_text(CERT_PEM)
    (project / "link.pem").symlink_to(tmp_path / "outside.pem")
    (project / "big.pem").write_text("x" * 200_000)
    (project / "notes.pem").write_text(CERT_PEM + "\nsee https://wiki/certs\n")
    (project / "binary.pem").write_bytes(bytes(range(256)))
    (project / "key.pem").write_text(_private_key_pem("SECRET-MARKER"))
    (project / "bundle.pem").write_text(CERT_PEM + _private_key_pem("SECRET-MARKER"))
    found = cert_problems(project, name)
    assert len(found) == 1, found
    assert found[0].startswith("tenants.yaml: tenants[2] (name=gamma).supplyChain.certificateFile: " + expected), found
    assert "SECRET-MARKER" not in found[0] and "MIIB" not in found[0]


def test_certificate_file_inside_the_folder_is_read(tmp_path):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "a.pem").write_text(CERT_PEM)
    (tmp_path / "certs" / "b.pem").symlink_to("a.pem")  # a link that stays inside is fine
    assert cert_problems(tmp_path, "certs/b.pem") == []


def test_an_inline_certificate_with_a_private_key_is_refused(tmp_path):
    pem = (CERT_PEM + _private_key_pem("SECRET-MARKER")).replace("\n", "\\n")
    found = problems(with_tenant(supplyChain=f'{{enabled: true, certificate: "{pem}"}}'), tmp_path)
    assert "SECRET-MARKER" not in "".join(found)
    assert ("tenants.yaml: tenants[2] (name=gamma).supplyChain.certificate: the certificate holds a PRIVATE KEY block; "
            "only CERTIFICATE blocks are allowed (its content is published in cluster objects, resources.json and "
            "the diff)") in found


# --- names that must be globally unique --------------------------------------------------------------------

def test_an_explicit_bucket_cannot_be_used_by_every_stack(tmp_path):
    found = problems(with_tenant(artifacts="{bucket: gamma-artifacts}"), tmp_path)
    assert found == ["tenants.yaml: tenants[2] (name=gamma).artifacts.bucket: bucket 'gamma-artifacts' is also the "
                     "bucket of tenants[2] (name=gamma) in stack 'prod'; S3 bucket names are global, so each stack "
                     "needs its own (set `bucket` per stack in `overrides`, or leave it out)"]
    per_stack = "{dev: {artifacts: {bucket: gamma-dev}}, staging: {artifacts: {bucket: gamma-staging}}}"
    assert problems(with_tenant(artifacts="{bucket: gamma-prod}", overrides=per_stack), tmp_path) == []


def test_an_explicit_bucket_cannot_take_another_stacks_derived_bucket(tmp_path):
    found = problems(with_tenant(environments="[dev]", artifacts="{bucket: calypr-alpha-prod-artifacts}"), tmp_path)
    assert found == ["tenants.yaml: tenants[2] (name=gamma).artifacts.bucket: bucket 'calypr-alpha-prod-artifacts' is "
                     "also the bucket of tenants[0] (name=alpha) in stack 'prod'; S3 bucket names are global, so each "
                     "stack needs its own (set `bucket` per stack in `overrides`, or leave it out)"]


def test_a_tenant_cannot_take_the_platforms_own_names(tmp_path):
    found = problems(BASE + "  - name: argocd-generator\n    team: z\n    repo: {url: https://github.com/x/z.git}\n",
                     tmp_path)
    assert found == ["tenants.yaml: tenants[2] (name=argocd-generator).name: derived iam role "
                     "'tenancy-calypr-dev-argocd-generator' is the platform's own in stack 'dev'; choose another name"]
    settings_ns = DEV.model_copy(update={"argocd": DEV.argocd.model_copy(update={"namespace": "wf-calypr-alpha"})})
    assert problems(BASE, tmp_path, settings_ns) == [
        "tenants.yaml: tenants[0] (name=alpha).name: derived namespace 'wf-calypr-alpha' is the platform's own in "
        "stack 'dev'; choose another name"]


# --- messages a user fixes in seconds ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (BASE.replace("name: beta", "name: 123"), "tenants.yaml: tenants[1].name: must be text (a DNS-1123 label), got an integer"),
    (with_tenant(minicluster="{enabled: true, size: big}"),
     "tenants.yaml: tenants[2] (name=gamma).minicluster.size: Input should be a valid integer, unable to parse string "
     "as an integer, got text"),
    (with_tenant(team="[a, b]"), "tenants.yaml: tenants[2] (name=gamma).team: Input should be a valid string, got a list"),
    (with_tenant(podSecurity="lax"), "tenants.yaml: tenants[2] (name=gamma).podSecurity: Input should be 'restricted', "
                                     "'baseline' or 'privileged', got 'lax'"),
    (with_tenant(artifacts="{keyprefix: x/}"),
     "tenants.yaml: tenants[2] (name=gamma).artifacts.keyprefix: unknown field; did you mean 'keyPrefix'?"),
    (with_tenant(network="{ingres: {}}"), "tenants.yaml: tenants[2] (name=gamma).network.ingres: unknown field; did you "
                                          "mean 'ingress'?"),
    (with_tenant(displayname="x"), "tenants.yaml: tenants[2] (name=gamma).displayname: unknown field; did you mean "
                                   "'displayName'?"),
    ("defaults: {podsecurity: baseline}\n" + BASE.removeprefix("\n"),
     "tenants.yaml: defaults.podsecurity: unknown field; did you mean 'podSecurity'?"),
    ("tenant:\n" + BASE.removeprefix("\ntenants:\n"), "tenants.yaml: tenant: unknown field; did you mean 'tenants'?"),
    (with_tenant(overrides="{Prod: {podSecurity: baseline}}"),
     "tenants.yaml: tenants[2] (name=gamma).overrides.Prod: no stack 'Prod'; stacks are dev, prod, staging; did you "
     "mean 'prod'?"),
    (with_tenant(quota="{limits.memory: 1e1000000}"),
     "tenants.yaml: tenants[2] (name=gamma).quota: limits.memory: '1e1000000' is outside the range Kubernetes keeps"),
    (with_tenant(limits="{max: {memory: 9Ei}}"),
     "tenants.yaml: tenants[2] (name=gamma).limits.max: memory: '9Ei' is larger than Kubernetes keeps (2^63-1)"),
    (with_tenant(quota="{requests.cpu: 0.1n}"),
     "tenants.yaml: tenants[2] (name=gamma).quota: requests.cpu: '0.1n' is finer than Kubernetes keeps (1n)"),
])
def test_messages_say_what_to_fix(text, expected, tmp_path):
    found = problems(text, tmp_path)
    assert any(line.startswith(expected) for line in found), found


def test_a_quota_that_leaves_the_range_once_scaled_names_its_key(tmp_path):
    prod = settings.load_stack(PROJECT, "prod")
    scaled = prod.model_copy(update={"quota_scale": 4.0})
    found = problems(with_tenant(quota="{requests.memory: 4Ei}"), tmp_path, scaled)
    assert found == ["tenants.yaml: tenants[2] (name=gamma).quota.requests.memory: requests.memory: '4Ei' times "
                     "tenancy:quotaScale 4.0: '16Ei' is larger than Kubernetes keeps (2^63-1)"]


def test_cli_lists_the_stacks_when_stack_names_none(capsys):
    from tenancy import cli

    assert cli.main(["validate", "--stack", "qa"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "Pulumi.qa.yaml: no stack 'qa'; the stacks of this project are dev, prod, staging")
    assert cli.main(["validate", "--stack", "Prod"]) == 1
    assert "did you mean 'prod'?" in capsys.readouterr().err


def test_a_problem_stays_one_line_when_the_input_holds_line_breaks(tmp_path):
    # Found by the fuzzer: a key holding U+2028 split one problem over two lines of output.
    [line] = problems(with_tenant(**{'"col\\u2028our\\tx"': "blue"}), tmp_path)
    assert line.startswith("tenants.yaml: tenants[2] (name=gamma).col\\u2028our\\tx: unknown field")
    assert len(line.splitlines()) == 1


@pytest.mark.parametrize("key", ["count/", "'count/\U0001F600'", "/pods", "count/" + "w" * 64, "count/a/b",
                                 "'count/-x'"])
def test_quota_keys_the_api_server_refuses_are_refused(key, tmp_path):
    """kube-apiserver pkg/apis/core/validation/validation.go ValidateResourceQuotaResourceName: every spec.hard key
    is a qualified name (apimachinery pkg/util/validation IsQualifiedName: optional DNS-subdomain prefix, '/', a
    name of 1-63 [A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]); `count/` and `count/😀` passed validate and failed there."""
    [line] = problems(with_tenant(quota=f"{{{key}: 1}}"), tmp_path)
    assert line.startswith("tenants.yaml: tenants[2] (name=gamma).quota: ") and \
        "is not a ResourceQuota resource name: Kubernetes needs a qualified name" in line, line


@pytest.mark.parametrize("limits, expected", [
    ("{default: {memory: 2Gi}, max: {memory: 1Gi}}", "limits.default.memory: 2Gi is more than max.memory (1Gi)"),
    ("{defaultRequest: {cpu: '2'}}", "limits.defaultRequest.cpu: 2 is more than default.cpu (1)"),
    ("{defaultRequest: {ephemeral-storage: 2Gi}, max: {ephemeral-storage: 1Gi}}",
     "limits.defaultRequest.ephemeral-storage: 2Gi is more than max.ephemeral-storage (1Gi)"),
])
def test_limits_the_api_server_would_refuse_are_refused(limits, expected, tmp_path):
    """kubernetes pkg/apis/core/validation/limit_ranges.go ValidateLimitRange: defaultRequest <= default <= max."""
    assert problems(with_tenant(limits=limits), tmp_path) == [f"tenants.yaml: tenants[2] (name=gamma).{expected}"]


def test_object_count_quota_keys_the_api_server_takes_are_kept(tmp_path):
    assert problems(with_tenant(quota="{count/workflows.argoproj.io: 5, count/jobs.batch: 2, count/pods: 3}"),
                    tmp_path) == []


def test_a_key_that_is_a_digit_only_to_str_isdigit_is_an_unknown_field(tmp_path):
    # `²` is a digit to str.isdigit but not to int(): sorting problem paths crashed on it.
    found = problems(BASE + "\u00b2: 1\n\u0663: 1\n", tmp_path)
    assert found == ["tenants.yaml: \u00b2: unknown field", "tenants.yaml: \u0663: unknown field"]


@pytest.mark.parametrize("fields, place", [
    ({"artifacts": "{'': 1}"}, "tenants.yaml: tenants[2] (name=gamma).artifacts.'': unknown field"),
    ({"overrides": "{dev: {'': 1}}"}, "tenants.yaml: tenants[2] (name=gamma).overrides.dev.'': unknown field"),
    ({"'' ": "1"}, "tenants.yaml: tenants[2] (name=gamma).'': unknown field"),
])
def test_an_empty_key_is_named_as_a_place(fields, place, tmp_path):
    assert place in problems(with_tenant(**fields), tmp_path)


def test_a_top_level_empty_key_is_named(tmp_path):
    assert problems("'': 1\n" + BASE, tmp_path) == ["tenants.yaml: '': unknown field"]


@pytest.mark.parametrize("text, place", [
    (with_tenant(region="a" * 1_500_000), "tenants[2] (name=gamma).region: 'aaa"),
    (BASE.replace("name: beta", "name: " + "N" * 1_500_000), "tenants[1] (name=NNN"),
    (with_tenant(labels="{tier: " + "x" * 1_500_000 + "}"), "tenants[2] (name=gamma).labels: label value 'xxx"),
    (with_tenant(owners="{admins: [' " + "g" * 1_500_000 + "']}"), "tenants[2] (name=gamma).owners.admins: ' ggg"),
])
def test_echoed_values_are_cut_to_a_readable_length(text, place, tmp_path):
    """A 1.5 MB value is quoted by its head and its length, and the line still says where and why."""
    found = problems(text, tmp_path)
    assert found and all(len(line) <= 1000 for line in found), [len(line) for line in found]
    assert any(line.startswith(f"tenants.yaml: {place}") and "characters" in line for line in found), \
        [line[:200] for line in found]


def test_merging_never_writes_into_the_catalogues_layers():
    """One tenant's merged spec is assigned into (e.g. supplyChain.certificate read from its file); no other
    tenant, and not the defaults, may see that."""
    defaults = {"labels": {"tier": "a"}, "artifacts": {"keyPrefix": "runs/", "tags": ["x"]}}
    tenant = {"artifacts": {"storageClass": "archive"}}
    merged = catalogue.deep_merge(catalogue.deep_merge({}, defaults), tenant)
    assert merged == {"labels": {"tier": "a"}, "artifacts": {"keyPrefix": "runs/", "tags": ["x"],
                                                             "storageClass": "archive"}}
    merged["labels"]["tier"] = "changed"
    merged["artifacts"]["keyPrefix"] = "changed/"
    assert defaults == {"labels": {"tier": "a"}, "artifacts": {"keyPrefix": "runs/", "tags": ["x"]}}
    assert tenant == {"artifacts": {"storageClass": "archive"}}
