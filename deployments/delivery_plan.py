"""What Pulumi Deployments does for each tenancy stack, as plain data read from this project's config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

# Files whose change can alter every stack's resources; each stack also watches its own Pulumi.<stack>.yaml.
SHARED_INPUTS = ("tenants.yaml", "Pulumi.yaml", "__main__.py", "requirements.txt", "components/**", "certs/**")


@dataclass(frozen=True)
class StackDelivery:
    name: str
    deploy_commits: bool
    review_stacks: bool
    drift_cron: str
    auto_remediate: bool
    aws_role_arn: str


@dataclass(frozen=True)
class DeliveryPlan:
    organization: str
    project: str
    repository: str
    branch: str
    repo_dir: str
    auto_promote: bool
    stacks: tuple[StackDelivery, ...]

    def hops(self) -> list[tuple[StackDelivery, StackDelivery]]:
        """Promotion order is the order of `stacks`: each successful update leads to the next stack."""
        return list(zip(self.stacks, self.stacks[1:]))


def plan(config: Mapping[str, Any]) -> DeliveryPlan:
    stacks = tuple(
        StackDelivery(name=s["name"], deploy_commits=bool(s.get("deployCommits", False)),
                      review_stacks=bool(s.get("reviewStacks", False)), drift_cron=s["driftCron"],
                      auto_remediate=bool(s.get("autoRemediate", False)), aws_role_arn=s["awsRoleArn"])
        for s in config["stacks"])
    return DeliveryPlan(organization=config["organization"], project=config["project"],
                        repository=config["repository"], branch=config["branch"], repo_dir=config.get("repoDir") or "",
                        auto_promote=bool(config.get("autoPromote", False)), stacks=stacks)


def _in_repo(repo_dir: str, path: str) -> str:
    return f"{repo_dir.rstrip('/')}/{path}" if repo_dir else path


def watched_paths(repo_dir: str, stack: str) -> list[str]:
    """Paths whose change previews or deploys `stack`: the shared inputs and its own stack file."""
    return [_in_repo(repo_dir, p) for p in (*SHARED_INPUTS, f"Pulumi.{stack}.yaml")]


def pre_run_commands(stack: str) -> list[str]:
    # Dependencies go into the venv Pulumi.yaml names, and bad input stops the run before Pulumi starts.
    return [
        "python -m venv venv",
        "venv/bin/pip install -q -r requirements.txt",
        f"venv/bin/python -m components validate --stack {stack}",
    ]
