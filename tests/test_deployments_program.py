"""The deployments/ program under Pulumi mocks: what it would configure in Pulumi Cloud for the three stacks."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.sync_await import _sync_await

from tenancy.synth import RecordingMonitor, SynthMocks

PROGRAM = Path(__file__).resolve().parent.parent / "deployments"


def _run(overrides: dict | None = None) -> list[dict]:
    config = yaml.safe_load((PROGRAM / "Pulumi.calypr.yaml").read_text())["config"]
    config.update(overrides or {})
    flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    monitor = RecordingMonitor(SynthMocks())
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_all_config(flat, [])
    pulumi.runtime.set_mocks(monitor.synth_mocks, project="tenancy-deployments", stack="calypr", preview=False,
                             monitor=monitor)
    sys.path.insert(0, str(PROGRAM))
    try:
        _sync_await(pulumi.runtime.stack.run_pulumi_func(
            lambda: runpy.run_path(str(PROGRAM / "__main__.py"), run_name="__main__")))
    finally:
        sys.path.remove(str(PROGRAM))
        sys.modules.pop("delivery_plan", None)
    return monitor.records


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return _run()


def _by_stack(records, typ: str, key: str = "stack") -> dict[str, dict]:
    return {r["inputs"][key]: r["inputs"] for r in records if r["type"] == typ}


def test_every_stack_deploys_from_the_repository(records):
    settings = _by_stack(records, "pulumiservice:index:DeploymentSettings")
    assert set(settings) == {"dev", "staging", "prod"}
    for stack, s in settings.items():
        assert s["organization"] == "calypr" and s["project"] == "tenancy"
        assert s["sourceContext"]["git"]["branch"] == "refs/heads/main"
        github = s["github"]
        assert github["repository"] == "calypr/tenancy" and github["previewPullRequests"] is True
        # A stack wakes up for its own config file and the shared inputs, never for another stack's config.
        assert f"Pulumi.{stack}.yaml" in github["paths"] and "tenants.yaml" in github["paths"]
        assert not [p for p in github["paths"] if p.startswith("Pulumi.") and p not in (f"Pulumi.{stack}.yaml",
                                                                                        "Pulumi.yaml")]
        commands = s["operationContext"]["preRunCommands"]
        # The locked dependencies, with the uv release pyproject.toml pins, before anything runs the program.
        assert commands.index("venv/bin/pip install -q uv==0.13.10") < commands.index(
            "UV_PROJECT_ENVIRONMENT=venv venv/bin/uv sync --locked --inexact") < commands.index(
            f"venv/bin/python -m tenancy validate --stack {stack}")
        assert s["operationContext"]["oidc"]["aws"]["roleARN"].endswith(f"role/tenancy-deploy-{stack}")


def test_only_dev_deploys_commits_and_hosts_review_stacks(records):
    settings = _by_stack(records, "pulumiservice:index:DeploymentSettings")
    assert {s: v["github"]["deployCommits"] for s, v in settings.items()} == {
        "dev": True, "staging": False, "prod": False}
    assert {s: v["github"]["pullRequestTemplate"] for s, v in settings.items()} == {
        "dev": True, "staging": False, "prod": False}


def test_drift_detection_everywhere_remediation_never_in_prod(records):
    drift = _by_stack(records, "pulumiservice:index:DriftSchedule")
    assert set(drift) == {"dev", "staging", "prod"}
    assert drift["prod"]["autoRemediate"] is False and drift["staging"]["autoRemediate"] is False
    assert all(d["scheduleCron"].count(" ") == 4 for d in drift.values())


def test_webhooks_chain_dev_to_staging_to_prod(records):
    hooks = _by_stack(records, "pulumiservice:index:Webhook", key="stackName")
    assert {s: h["payloadUrl"] for s, h in hooks.items()} == {"dev": "tenancy/staging", "staging": "tenancy/prod"}
    for hook in hooks.values():
        assert hook["format"] == "pulumi_deployments"
        assert hook["filters"] == ["update_succeeded"]
        assert hook["active"] is False  # promotion stays a human decision unless autoPromote is set


def test_auto_promote_activates_the_chain():
    hooks = [r for r in _run({"tenancy-deployments:autoPromote": "true"}) if r["type"] == "pulumiservice:index:Webhook"]
    assert len(hooks) == 2 and all(h["inputs"]["active"] is True for h in hooks)


def test_every_resource_uses_the_explicit_provider(records):
    custom = [r for r in records if r["custom"] and not r["type"].startswith("pulumi:providers:")]
    assert custom and all(r["provider"] and r["provider"].endswith("::pulumi-cloud") for r in custom)


def test_every_shard_stack_is_deployed_like_its_environment(monkeypatch):
    """With dev in 3 shards, each shard stack gets deployment settings and drift detection like dev's, watching
    dev's stack file (a shard has none), validating itself; promotion still goes environment to environment."""
    sys.path.insert(0, str(PROGRAM))
    try:
        import delivery_plan
    finally:
        sys.path.remove(str(PROGRAM))
    monkeypatch.setattr(delivery_plan, "shard_counts", lambda project, envs: {"dev": 3, "staging": 1, "prod": 1})
    records = _run()
    settings = _by_stack(records, "pulumiservice:index:DeploymentSettings")
    assert set(settings) == {"dev", "dev-shard-0", "dev-shard-1", "dev-shard-2", "staging", "prod"}
    for shard in ("dev-shard-0", "dev-shard-1", "dev-shard-2"):
        s = settings[shard]
        assert "Pulumi.dev.yaml" in s["github"]["paths"] and s["github"]["deployCommits"] is True
        assert f"venv/bin/python -m tenancy validate --stack {shard}" in s["operationContext"]["preRunCommands"]
        assert s["operationContext"]["oidc"]["aws"]["roleARN"].endswith("role/tenancy-deploy-dev")
    assert set(_by_stack(records, "pulumiservice:index:DriftSchedule")) == set(settings)
    hooks = _by_stack(records, "pulumiservice:index:Webhook", key="stackName")
    assert {s: h["payloadUrl"] for s, h in hooks.items()} == {"dev": "tenancy/staging", "staging": "tenancy/prod"}


def test_shard_counts_come_from_the_tenancy_stack_files(tmp_path):
    sys.path.insert(0, str(PROGRAM))
    try:
        import delivery_plan
    finally:
        sys.path.remove(str(PROGRAM))
        sys.modules.pop("delivery_plan", None)
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  tenancy:shards: 4\n")
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  tenancy:org: calypr\n")
    assert delivery_plan.shard_counts(tmp_path, ["dev", "prod"]) == {"dev": 4, "prod": 1}
