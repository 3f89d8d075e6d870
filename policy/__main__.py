"""The tenancy guardrails pack. Rules live in tenancy_policies.py, which tests import without starting this server."""

from pulumi_policy import EnforcementLevel, PolicyPack

from tenancy_policies import ALL_POLICIES

PolicyPack(name="tenancy-guardrails", enforcement_level=EnforcementLevel.MANDATORY, policies=ALL_POLICIES)
