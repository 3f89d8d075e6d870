"""The Pulumi program itself (what `pulumi up` runs) refuses bad input before registering anything."""

from __future__ import annotations

import pulumi
import pytest

from tenancy import synth
from tests.conftest import PROJECT


def test_invalid_catalogue_stops_the_program_before_any_resource(tmp_path, monkeypatch):
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  - name: Bad_Name\n    team: t\n    repo: {url: https://github.com/x/y.git}\n")
    registered = []
    original = synth.RecordingMonitor.RegisterResource

    def counting(self, request):
        if request.type != "pulumi:pulumi:Stack":
            registered.append(request.type)
        return original(self, request)

    monkeypatch.setattr(synth.RecordingMonitor, "RegisterResource", counting)
    with pytest.raises(pulumi.RunError) as raised:
        synth.run(PROJECT, "dev", bad)
    assert "tenants.yaml: tenants[0] (name=Bad_Name).name: 'Bad_Name' is not a DNS-1123 label" in str(raised.value)
    assert registered == []


def test_default_providers_are_disabled_for_every_package():
    import yaml

    project = yaml.safe_load((PROJECT / "Pulumi.yaml").read_text())
    assert project["config"]["pulumi:disable-default-providers"]["value"] == ["*"]
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "uv", "virtualenv": "venv"}}
