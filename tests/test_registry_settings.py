"""Registry credentials in stack config: the password is a secret, required for service-specific auth only."""

from __future__ import annotations

import json

import pytest

from components import settings
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
