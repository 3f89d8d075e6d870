"""One cost-allocation key on everything a tenant costs: its AWS resources and its namespace.

What a billing report sees is a resource's effective tags: the provider's default tags merged with the resource's own
tags, the resource's winning on the same key (pulumi_aws 7.x, every taggable class's `tags` argument: "If configured
with a provider `default_tags` configuration block present, tags with matching keys will overwrite those defined at
the provider-level"). Which resources take tags at all is read from the SDK class's `_internal_init`, so a new
taggable resource type is covered without this test naming it. OpenCost aggregates by `label:<key>` over the pod's labels merged over its
namespace's (opencost pkg/costmodel/allocation_helpers.go `applyLabels`) and reads `env` as the environment
(core/pkg/opencost/config.go `NewLabelConfig`).
"""

from __future__ import annotations

import copy
import inspect
import json
from typing import Any, Iterable

import pytest

from components import naming
from tenancy import environment
from tests.conftest import sample
from tests.test_sdk import _typed_class
from tests.test_sharding import make_project

ORG = "calypr"


def _takes_tags(token: str) -> bool:
    return "tags" in inspect.signature(_typed_class(token)._internal_init).parameters


def _owner(record: dict[str, Any], by_urn: dict[str, dict[str, Any]]) -> str | None:
    """The tenant whose Tenant component holds `record`, or None for the platform."""
    parent = record["parent"]
    while parent in by_urn:
        if by_urn[parent]["type"] == "tenancy:index:Tenant":
            return by_urn[parent]["name"]
        parent = by_urn[parent]["parent"]
    return None


def untagged(resources: Iterable[dict[str, Any]], env: str) -> tuple[list[str], int]:
    """Every taggable AWS resource whose effective cost-allocation tag is missing or wrong, and how many were checked."""
    resources = list(resources)
    by_urn = {r["urn"]: r for r in resources}
    problems, checked = [], 0
    for record in resources:
        if not record["custom"] or not record["type"].startswith("aws:") or not _takes_tags(record["type"]):
            continue
        provider = by_urn[record["provider"]]
        defaults = json.loads(provider["inputs"].get("defaultTags", "{}")).get("tags", {})
        effective = {**defaults, **(record["inputs"].get("tags") or {})}
        expected = naming.cost_allocation(ORG, env, _owner(record, by_urn))
        if effective.get(naming.COST_ALLOCATION_KEY) != expected:
            problems.append(f"{record['urn']}: {naming.COST_ALLOCATION_KEY}="
                            f"{effective.get(naming.COST_ALLOCATION_KEY)!r}, expected {expected!r}")
        checked += 1
    return problems, checked


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_taggable_aws_resource_carries_its_cost_allocation(stack):
    problems, checked = untagged(sample(stack).resources, stack)
    assert not problems
    assert checked >= 8, "buckets, keys, roles, policies, users and the registry are taggable"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    return environment.render(make_project(tmp_path_factory.mktemp("sharded"), shards=2, extra=[]), "dev")


def test_shard_stacks_tag_their_tenants_too(sharded):
    """In a shard stack no platform shares the provider, but its default tags still carry the platform's value."""
    assert list(sharded) == ["dev", "dev-shard-0", "dev-shard-1"]
    for result in sharded.values():
        problems, _ = untagged(result.resources, "dev")
        assert not problems


def test_a_tenant_resource_without_its_own_tag_is_found():
    """The check sees a tenant resource that only inherits the provider's (platform) value."""
    resources = copy.deepcopy(sample("dev").resources)
    key = next(r for r in resources if r["type"] == "aws:s3/bucket:Bucket" and r["name"].startswith("research-"))
    del key["inputs"]["tags"][naming.COST_ALLOCATION_KEY]
    problems, _ = untagged(resources, "dev")
    assert problems == [f"{key['urn']}: {naming.COST_ALLOCATION_KEY}='calypr.dev', expected 'calypr.dev.research'"]


def test_tenant_and_platform_values_are_distinct():
    # A platform value has two parts, a tenant's three: no tenant name can make its value the platform's.
    assert naming.cost_allocation("calypr", "dev") == "calypr.dev"
    assert naming.cost_allocation("calypr", "dev", "research") == "calypr.dev.research"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_tenant_namespaces_carry_the_same_value_for_cost_tools(stack):
    result = sample(stack)
    for name in result.tenant_names():
        (namespace,) = [r for r in result.tenant(name) if r["type"] == "kubernetes:core/v1:Namespace"]
        labels = namespace["inputs"]["metadata"]["labels"]
        assert labels[naming.COST_ALLOCATION_KEY] == naming.cost_allocation(ORG, stack, name)
        assert labels["env"] == stack


def test_cost_allocation_tag_is_activated_only_where_the_setting_asks():
    """prod sets `tenancy:costAllocation.activateTag`; dev leaves the default (off). The activation is the payer
    account's, shared by every stack, so it is retained when a stack is destroyed."""
    token = "aws:costexplorer/costAllocationTag:CostAllocationTag"
    assert not sample("dev").of_type(token)
    (tag,) = sample("prod").of_type(token)
    assert tag["inputs"] == {"tagKey": naming.COST_ALLOCATION_KEY, "status": "Active"}
    assert tag["retainOnDelete"] is True


def test_a_cost_value_too_long_for_a_label_is_a_naming_problem():
    # Today the tenant's IAM role name (64 characters, with the same three parts) is refused first; the rule stays
    # with the name, so a later change of the IAM scheme cannot let a value through that Kubernetes would refuse.
    problems = naming.derive("calypr", "dev", "t" * 60).problems()
    assert "label value" in problems["cost_allocation"] and "63" in problems["cost_allocation"]
    assert "cost_allocation" not in naming.derive("calypr", "dev", "research").problems()
