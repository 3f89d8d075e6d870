"""Synth's records of the Vault side as Vault's own API takes them (shared by the OpenBao contract tests and e2e)."""

from __future__ import annotations

from typing import Any


def role_payload(inputs: dict[str, Any]) -> dict[str, Any]:
    """The AuthBackendRole inputs as Vault's API fields (the provider sends the same values, snake_cased)."""
    fields = {
        "bound_service_account_names": inputs["boundServiceAccountNames"],
        "bound_service_account_namespaces": inputs["boundServiceAccountNamespaces"],
        "audience": inputs["audience"],
        "token_policies": inputs["tokenPolicies"],
        "token_no_default_policy": inputs["tokenNoDefaultPolicy"],
        "token_ttl": int(inputs["tokenTtl"]),  # numbers cross the wire as doubles
        "token_max_ttl": int(inputs["tokenMaxTtl"]),
    }
    assert set(inputs) - {"backend", "roleName"} == {
        "boundServiceAccountNames", "boundServiceAccountNamespaces", "audience", "tokenPolicies",
        "tokenNoDefaultPolicy", "tokenTtl", "tokenMaxTtl"}, "a role field this replay does not load"
    return fields
