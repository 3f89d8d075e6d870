"""Ratify (v1 line) image verification scoped to one tenant namespace: only images its own key signed run.

Every kind here is a Namespaced* Ratify resource, so a tenant's trust decisions never leak into another
namespace; the verifier trusts exactly the certificate in the tenant's key-management provider.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from . import naming
from .catalogue import TenantSpec
from .naming import TenantNames

RATIFY_API = "config.ratify.deislabs.io/v1beta1"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
TRUST_STORE = "ca-certs"


def _object(kind: str, name: str, names: TenantNames, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": RATIFY_API, "kind": kind, "metadata": {"name": name, "namespace": names.namespace},
            "spec": spec}


def signer_identity(certificate_pem: str) -> str:
    """Notation's trusted-identity form of the certificate's subject."""
    subject = x509.load_pem_x509_certificate(certificate_pem.encode()).subject
    return f"x509.subject: {subject.rfc4514_string()}"


def key_management_provider(names: TenantNames, certificate_pem: str) -> dict[str, Any]:
    return _object("NamespacedKeyManagementProvider", naming.RATIFY_KEY_PROVIDER, names, {
        "type": "inline",
        "parameters": {"contentType": "certificate", "value": certificate_pem},
    })


def verifier(spec: TenantSpec, names: TenantNames, certificate_pem: str) -> dict[str, Any]:
    return _object("NamespacedVerifier", naming.RATIFY_VERIFIER, names, {
        "name": "notation",
        "type": "notation",
        "artifactTypes": NOTATION_SIGNATURE,
        "parameters": {
            "verificationCertStores": {"ca": {TRUST_STORE: [f"{names.namespace}/{naming.RATIFY_KEY_PROVIDER}"]}},
            "trustPolicyDoc": {
                "version": "1.0",
                "trustPolicies": [{
                    "name": f"{spec.name}-images",
                    "registryScopes": ["*"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": [f"ca:{TRUST_STORE}"],
                    # Only the tenant's own signing identity: a certificate another tenant trusts does not pass.
                    "trustedIdentities": [signer_identity(certificate_pem)],
                }],
            },
        },
    })


def store(names: TenantNames) -> dict[str, Any]:
    return _object("NamespacedStore", naming.RATIFY_STORE, names, {"name": "oras", "type": "oras", "parameters": {}})


def policy(names: TenantNames) -> dict[str, Any]:
    """Ratify only reads a policy named `ratify-policy`: one signature from the trusted signer is enough."""
    return _object("NamespacedPolicy", naming.RATIFY_POLICY, names, {
        "type": "config-policy",
        "parameters": {"artifactVerificationPolicies": {NOTATION_SIGNATURE: "any"}},
    })


def ratify_manifests(spec: TenantSpec, names: TenantNames) -> list[dict[str, Any]]:
    """The four namespaced objects when supply-chain verification is on; none otherwise."""
    certificate = spec.supply_chain.certificate
    if not spec.supply_chain.enabled or certificate is None:
        return []
    return [key_management_provider(names, certificate), verifier(spec, names, certificate), store(names),
            policy(names)]
