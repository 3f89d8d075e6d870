"""What Pulumi Deployments does for each tenancy stack, as plain data read from this project's config."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from components import sharding  # stdlib only: the tenancy program's rule for naming an environment's stacks

# Files whose change can alter every stack's resources; each stack also watches its own Pulumi.<stack>.yaml.
SHARED_INPUTS = ("tenants.yaml", "Pulumi.yaml", "__main__.py", "pyproject.toml", "uv.lock", "components/**", "certs/**")


@dataclass(frozen=True)
class StackDelivery:
    name: str
    # The environment whose settings, stack file and promotion gate this stack shares (itself, or a shard's).
    environment: str
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
        """Promotion goes from environment to environment in the order of `stacks` (the environments' own
        stacks, which hold their platforms; shards are updated with their environment, never promoted alone)."""
        environments = [s for s in self.stacks if s.name == s.environment]
        return list(zip(environments, environments[1:]))


def plan(config: Mapping[str, Any], shards: Mapping[str, int] | None = None) -> DeliveryPlan:
    """`shards`: each environment's `tenancy:shards` (read from its Pulumi.<env>.yaml); every stack of an
    environment, platform and shards, is deployed alike."""
    stacks = tuple(
        StackDelivery(name=name, environment=s["name"], deploy_commits=bool(s.get("deployCommits", False)),
                      review_stacks=bool(s.get("reviewStacks", False)), drift_cron=s["driftCron"],
                      auto_remediate=bool(s.get("autoRemediate", False)), aws_role_arn=s["awsRoleArn"])
        for s in config["stacks"] for name in sharding.stacks_of(s["name"], (shards or {}).get(s["name"], 1)))
    return DeliveryPlan(organization=config["organization"], project=config["project"],
                        repository=config["repository"], branch=config["branch"], repo_dir=config.get("repoDir") or "",
                        auto_promote=bool(config.get("autoPromote", False)), stacks=stacks)


def _in_repo(repo_dir: str, path: str) -> str:
    return f"{repo_dir.rstrip('/')}/{path}" if repo_dir else path


def watched_paths(repo_dir: str, environment: str) -> list[str]:
    """Paths whose change previews or deploys a stack of `environment`: the shared inputs and the
    environment's stack file (a shard stack has no settings of its own)."""
    return [_in_repo(repo_dir, p) for p in (*SHARED_INPUTS, f"Pulumi.{environment}.yaml")]


def shard_counts(project_dir: Any, environments: list[str]) -> dict[str, int]:
    """`tenancy:shards` of each environment, from the tenancy project's Pulumi.<env>.yaml (default 1)."""
    import yaml

    counts = {}
    for env in environments:
        path = project_dir / f"Pulumi.{env}.yaml"
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {} if path.exists() else {}
        counts[env] = int(config.get("tenancy:shards", 1))
    return counts


def uv_version(project_dir: Path) -> str:
    """The uv release pyproject.toml pins (`[tool.uv] required-version = "==X"`), which make installs too."""
    pinned = tomllib.loads((project_dir / "pyproject.toml").read_text())["tool"]["uv"]["required-version"]
    return pinned.removeprefix("==")


def pre_run_commands(stack: str, uv: str) -> list[str]:
    # The locked dependencies go into the venv Pulumi.yaml names, and bad input stops the run before Pulumi starts.
    return [
        "python -m venv venv",
        f"venv/bin/pip install -q uv=={uv}",
        "UV_PROJECT_ENVIRONMENT=venv venv/bin/uv sync --locked --inexact",
        f"venv/bin/python -m tenancy validate --stack {stack}",
    ]
