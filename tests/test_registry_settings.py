"""Registry credentials in stack config: the password is a secret, required for service-specific auth only."""

from __future__ import annotations

import json

import pytest

from components import registry_provider, settings
from components.problems import InvalidInput

from .conftest import PROJECT, render

PLAINTEXT = "hunter2-registry-plaintext"


def _service_specific(config: dict) -> dict:
    registry = json.loads(config["tenancy:registry"])
    return {**config, "tenancy:registry": json.dumps({**registry, "auth": "service-specific", "username": "svc-dev"})}


def test_service_specific_needs_the_password():
    config, secret = settings.read_stack_file(PROJECT, "dev")
    with pytest.raises(InvalidInput, match="tenancy:registryPassword: required"):
        settings.from_config(_service_specific(config), stack="dev", secret_keys=secret)


def test_password_must_be_a_secret():
    config, secret = settings.read_stack_file(PROJECT, "dev")
    config = {**_service_specific(config), settings.REGISTRY_PASSWORD_KEY: PLAINTEXT}
    with pytest.raises(InvalidInput, match="pulumi config set --secret"):
        settings.from_config(config, stack="dev", secret_keys=secret)


def test_password_reaches_records_only_as_a_secret(monkeypatch):
    original = settings.read_stack_file

    def with_password(project_dir, stack):
        config, secret = original(project_dir, stack)
        config = {**_service_specific(config), settings.REGISTRY_PASSWORD_KEY: PLAINTEXT}
        return config, secret | {settings.REGISTRY_PASSWORD_KEY}

    monkeypatch.setattr(settings, "read_stack_file", with_password)
    result = render("dev")
    records = result.of_type("pulumi-python:dynamic:Resource")
    assert records and all(r["inputs"]["password"] == "[secret]" for r in records)
    assert all(r["inputs"]["username"] == "svc-dev" for r in records)
    assert PLAINTEXT not in json.dumps(result.resources) + json.dumps(result.outputs)


def test_many_records_do_not_exhaust_the_stack(tmp_path):
    # The SDK leaks a pickle shim per dynamic resource; without the reset in RegistryRecord each record added
    # a frame to every later pickle and 1,000 tenants raised RecursionError (a real `pulumi up` runs this code).
    import pickle

    from tests.conftest import render

    entries = "".join(f"  - {{name: t{i}, team: t, repo: {{url: https://github.com/x/t{i}.git}}, "
                      f"environments: [dev]}}\n" for i in range(3))
    before = pickle._Pickler._batch_setitems
    render("dev", "tenants:\n" + entries, tmp_path)
    assert pickle._Pickler._batch_setitems is before


def test_records_carry_the_provider_as_the_sdk_pickles_it(monkeypatch):
    """Each record's `__provider` is what pulumi's dynamic.Resource sends (pulumi/dynamic/dynamic.py, SDK 3.27x):
    the provider pickled by the SDK's `serialize_provider`, always secret, and it unpickles to the provider the
    engine's python dynamic-provider host runs."""
    import base64

    import dill
    from pulumi.dynamic.dynamic import serialize_provider
    from pulumi.runtime import rpc

    from tenancy import synth
    from components.registry import serialized_provider
    from components.registry_provider import RegistryProvider

    sent = []
    original = synth.RecordingMonitor.RegisterResource

    def recording(self, request):
        if request.type == "pulumi-python:dynamic:Resource":
            sent.append(request.object["__provider"])
        return original(self, request)

    monkeypatch.setattr(synth.RecordingMonitor, "RegisterResource", recording)
    render("dev")
    expected = serialize_provider(RegistryProvider())
    assert sent and serialized_provider() == expected
    for value in sent:
        assert value[rpc._special_sig_key] == rpc._special_secret_sig  # noqa: SLF001
        assert value["value"] == expected
    assert isinstance(dill.loads(base64.b64decode(expected)), RegistryProvider)


# --- tenancy:registry.endpoint: a Cassandra-compatible registry other than Amazon Keyspaces ----------------------

CA_FILE = "certs/compliance-root-ca.pem"
ENDPOINT = {"host": "cassandra.platform.example", "port": 9042, "caCertFile": CA_FILE}


def _at_endpoint(config: dict, **endpoint) -> dict:
    registry = json.loads(_service_specific(config)["tenancy:registry"])
    return {**config, "tenancy:registry": json.dumps({**registry, "endpoint": {**ENDPOINT, **endpoint}}),
            settings.REGISTRY_PASSWORD_KEY: settings.SECRET_PLACEHOLDER}


def test_endpoint_reaches_the_records_and_the_generator(monkeypatch):
    """Every record dials the endpoint with its CA, the generator's Deployment is configured (as the generator's
    own `Config.from_env` reads it, generator/tenancy_generator/app.py) to the same host, port and CA, its
    NetworkPolicy opens that port, and no Keyspaces keyspace or table is created for a table that is not there."""
    import sys

    sys.path.insert(0, str(PROJECT / "generator"))
    from tenancy_generator.app import Config

    from components import naming

    original = settings.read_stack_file

    def with_endpoint(project_dir, stack):
        config, secret = original(project_dir, stack)
        return _at_endpoint(config), secret | {settings.REGISTRY_PASSWORD_KEY}

    monkeypatch.setattr(settings, "read_stack_file", with_endpoint)
    result = render("dev")
    pem = (PROJECT / CA_FILE).read_text()
    records = result.of_type("pulumi-python:dynamic:Resource")
    assert records
    for record in records:
        target = registry_provider._target(record["inputs"])  # noqa: SLF001 - how the provider reads its props
        assert (target.host, target.port, target.ca_cert) == ("cassandra.platform.example", 9042, pem)
    assert [r for r in result.resources if r["type"].startswith("aws:keyspaces/")] == []

    def generator(kind: str, name: str) -> dict:
        (found,) = [r["inputs"] for r in result.of_type(kind) if r["inputs"]["metadata"]["name"] == name]
        return found

    deployment = generator("kubernetes:apps/v1:Deployment", naming.GENERATOR)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    config = Config.from_env({**env, "KEYSPACES_PASSWORD": "from-the-secret"})
    assert (config.endpoint, config.endpoint_port) == ("cassandra.platform.example", 9042)
    # The CA file the generator opens is the ConfigMap key holding the PEM, mounted where the env says.
    (mount,) = [m for m in container["volumeMounts"] if config.root_cert.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    key = config.root_cert[len(mount["mountPath"]) + 1:]
    assert [i["path"] for i in volume["configMap"]["items"]] == [key]
    ca_map = generator("kubernetes:core/v1:ConfigMap", volume["configMap"]["name"])
    assert ca_map["data"][volume["configMap"]["items"][0]["key"]] == pem
    policy = generator("kubernetes:networking.k8s.io/v1:NetworkPolicy", naming.GENERATOR)
    registry_rule = policy["spec"]["egress"][1]
    assert registry_rule["ports"] == [{"protocol": "TCP", "port": 9042}]


def _project_copy(tmp_path, registry: dict):
    """The project's stack files, catalogue and certs, with `registry` merged into dev's tenancy:registry."""
    import shutil

    import yaml

    for path in PROJECT.glob("Pulumi.*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    shutil.copy(PROJECT / "tenants.yaml", tmp_path / "tenants.yaml")
    shutil.copytree(PROJECT / "certs", tmp_path / "certs")
    dev = yaml.safe_load((tmp_path / "Pulumi.dev.yaml").read_text())
    dev["config"]["tenancy:registry"].update(registry)
    dev["config"]["tenancy:registryPassword"] = {"secure": "v1:c2VjcmV0"}
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(dev, sort_keys=False))
    return tmp_path


@pytest.mark.parametrize("endpoint, problem", [
    ({"host": "https://cassandra.example:9142"},
     "tenancy:registry.endpoint.host: 'https://cassandra.example:9142' is not a host name or IP address"),
    ({"host": "cass_1.example"}, "tenancy:registry.endpoint.host: 'cass_1.example' is not a host name"),
    ({"port": 0}, "tenancy:registry.endpoint.port: Input should be greater than or equal to 1"),
    ({"port": 70000}, "tenancy:registry.endpoint.port: Input should be less than or equal to 65535"),
    ({"caCertFile": "certs/missing.pem"}, "tenancy:registry.endpoint.caCertFile: cannot read 'certs/missing.pem'"),
    ({"caCertFile": "tenants.yaml"}, "tenancy:registry.endpoint.caCertFile: 'tenants.yaml' must hold PEM CERTIFICATE"),
])
def test_a_bad_endpoint_is_a_problem_line_not_a_traceback(tmp_path, endpoint, problem):
    import subprocess
    import sys

    project = _project_copy(tmp_path, {"auth": "service-specific", "username": "svc",
                                       "endpoint": {**ENDPOINT, **endpoint}})
    run = subprocess.run([sys.executable, "-m", "tenancy", "--project", str(project), "validate", "--stack", "dev"],
                         cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert any(line.startswith(f"Pulumi.dev.yaml: {problem}") for line in run.stderr.splitlines()), run.stderr


def test_endpoint_with_sigv4_is_refused():
    config, secret = settings.read_stack_file(PROJECT, "dev")
    registry = json.loads(config["tenancy:registry"])
    config = {**config, "tenancy:registry": json.dumps({**registry, "endpoint": ENDPOINT})}
    with pytest.raises(InvalidInput, match="tenancy:registry.endpoint needs tenancy:registry.auth: service-specific"):
        settings.from_config(config, stack="dev", secret_keys=secret)
