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
