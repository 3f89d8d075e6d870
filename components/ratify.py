"""Ratify (v1 line) image verification scoped to one tenant namespace: only images its own key signed run.

Every kind here is a Namespaced* Ratify resource, so a tenant's trust decisions never leak into another
namespace. As notation models trust, the tenant's key-management provider holds its CA (the trust store) and
the verifier's trust policy names the signing leaves that CA issued (components/notation.py). Every field is
one the v1beta1 CRDs of Ratify v1.2-v1.4 define (config/crd/bases, api/v1beta1/namespaced*_types.go).
"""

from __future__ import annotations

from typing import Any

from . import naming
from .catalogue import TenantSpec
from .naming import TenantNames
from .notation import trusted_identity

RATIFY_API = "config.ratify.deislabs.io/v1beta1"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
TRUST_STORE = "ca-certs"


def _object(kind: str, name: str, names: TenantNames, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": RATIFY_API,
        "kind": kind,
        "metadata": {"name": name, "namespace": names.namespace},
        "spec": spec,
    }


def key_management_provider(names: TenantNames, certificate_pem: str) -> dict[str, Any]:
    return _object(
        "NamespacedKeyManagementProvider",
        naming.RATIFY_KEY_PROVIDER,
        names,
        {
            "type": "inline",
            "parameters": {"contentType": "certificate", "value": certificate_pem},
        },
    )


def verifier(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    return _object(
        "NamespacedVerifier",
        naming.RATIFY_VERIFIER,
        names,
        {
            "name": "notation",
            "type": "notation",
            "artifactTypes": NOTATION_SIGNATURE,
            "parameters": {
                "verificationCertStores": {"ca": {TRUST_STORE: [f"{names.namespace}/{naming.RATIFY_KEY_PROVIDER}"]}},
                "trustPolicyDoc": {
                    "version": "1.0",
                    "trustPolicies": [
                        {
                            "name": f"{spec.name}-images",
                            "registryScopes": ["*"],
                            "signatureVerification": {"level": "strict"},
                            "trustStores": [f"ca:{TRUST_STORE}"],
                            # Only the tenant's own signing leaves: another leaf of the same CA does not pass.
                            "trustedIdentities": [trusted_identity(dn) for dn in spec.supply_chain.trusted_identities],
                        }
                    ],
                },
            },
        },
    )


def store(names: TenantNames) -> dict[str, Any]:
    return _object("NamespacedStore", naming.RATIFY_STORE, names, {"name": "oras", "parameters": {}})


def policy(names: TenantNames) -> dict[str, Any]:
    """Ratify only reads a policy named `ratify-policy`: one signature from the trusted signer is enough."""
    return _object(
        "NamespacedPolicy",
        naming.RATIFY_POLICY,
        names,
        {
            "type": "config-policy",
            "parameters": {"artifactVerificationPolicies": {NOTATION_SIGNATURE: "any"}},
        },
    )


def ratify_manifests(spec: TenantSpec, names: TenantNames) -> list[dict[str, Any]]:
    """The four namespaced objects when supply-chain verification is on; none otherwise."""
    certificate = spec.supply_chain.certificate
    if not spec.supply_chain.enabled or certificate is None:
        return []
    return [key_management_provider(names, certificate), verifier(spec, names), store(names), policy(names)]
