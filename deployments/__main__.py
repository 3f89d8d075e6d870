"""Pulumi Deployments for the tenancy stacks: deployment settings, review stacks, drift detection, promotion chain."""

import sys
from pathlib import Path

import pulumi
import pulumi_pulumiservice as service

# The tenancy project is this directory's parent: its stack files say how many shards each environment has.
TENANCY_PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TENANCY_PROJECT))

from delivery_plan import plan, pre_run_commands, shard_counts, uv_version, watched_paths  # noqa: E402

config = pulumi.Config()
environments = config.require_object("stacks")
delivery = plan({
    "organization": config.require("organization"), "project": config.require("project"),
    "repository": config.require("repository"), "branch": config.require("branch"), "repoDir": config.get("repoDir"),
    "autoPromote": config.get_bool("autoPromote"), "stacks": environments,
}, shard_counts(TENANCY_PROJECT, [e["name"] for e in environments]))
uv = uv_version(TENANCY_PROJECT)
cloud = service.Provider("pulumi-cloud")
opts = pulumi.ResourceOptions(provider=cloud)

for stack in delivery.stacks:
    service.DeploymentSettings(
        f"{stack.name}-settings",
        organization=delivery.organization, project=delivery.project, stack=stack.name,
        source_context=service.DeploymentSettingsSourceContextArgs(git=service.DeploymentSettingsGitSourceArgs(
            branch=f"refs/heads/{delivery.branch}", repo_dir=delivery.repo_dir or None)),
        github=service.DeploymentSettingsGithubArgs(
            repository=delivery.repository, deploy_commits=stack.deploy_commits, preview_pull_requests=True,
            pull_request_template=stack.review_stacks, paths=watched_paths(delivery.repo_dir, stack.environment)),
        operation_context=service.DeploymentSettingsOperationContextArgs(
            pre_run_commands=pre_run_commands(stack.name, uv),
            options=service.OperationContextOptionsArgs(skip_install_dependencies=True),
            oidc=service.OperationContextOIDCArgs(aws=service.AWSOIDCConfigurationArgs(
                role_arn=stack.aws_role_arn, session_name=f"tenancy-{stack.name}-deployment"))),
        opts=opts)
    service.DriftSchedule(
        f"{stack.name}-drift", organization=delivery.organization, project=delivery.project, stack=stack.name,
        schedule_cron=stack.drift_cron, auto_remediate=stack.auto_remediate, opts=opts)

for source, target in delivery.hops():
    service.Webhook(
        f"{source.name}-to-{target.name}",
        organization_name=delivery.organization, project_name=delivery.project, stack_name=source.name,
        display_name=f"promote {source.name} to {target.name}",
        format=service.WebhookFormat.PULUMI_DEPLOYMENTS, payload_url=f"{delivery.project}/{target.name}",
        filters=[service.WebhookFilters.UPDATE_SUCCEEDED], active=delivery.auto_promote, opts=opts)

pulumi.export("stacks", [s.name for s in delivery.stacks])
pulumi.export("promotion", [f"{a.name} -> {b.name}" for a, b in delivery.hops()])
