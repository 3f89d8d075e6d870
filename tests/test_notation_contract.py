"""Ratify's notation verifier, run for real over what tenancy renders.

tests/contract/notation is a small Go program of ours built against notation-go v1.3.0 and notation-core-go
v1.2.0, the versions ratify v1.4.0's go.mod requires. It builds each verifier the way Ratify does
(ratify v1.4.0 pkg/verifier/notation/notation.go: `trustPolicyDoc` decoded into trustpolicy.Document and given
to verifier.NewWithOptions, which validates it with verifier/trustpolicy/trustpolicy.go and internal/pkix/pkix.go),
serves the trust store from the NamespacedKeyManagementProvider the verifier names, filtered as
pkg/verifier/notation/truststore.go filters it, then signs with notation-go's own signer and verifies the
envelope (notation-core-go x509/codesigning_cert_validations.go checks the chain).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components import notation
from tests.conftest import PROJECT, render, sample

GO_PROGRAM = PROJECT / "tests" / "contract" / "notation"
STACKS = ("dev", "staging", "prod")
REFERENCE = "registry.example.com/tenants/app"


def _load_pki_script():
    spec = importlib.util.spec_from_file_location("make_sample_pki", PROJECT / "certs" / "make-sample-pki.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pki = _load_pki_script()


@pytest.fixture(scope="session")
def notation_contract() -> Path:
    """The built contract program, cached by the hash of its sources (a cold build takes a few minutes)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("`go` is not installed: the notation-go contract program (tests/contract/notation) needs it")
    digest = hashlib.sha256(b"".join((GO_PROGRAM / f).read_bytes() for f in ("go.mod", "go.sum", "main.go")))
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tenancy"
    binary = cache / f"notation-contract-{digest.hexdigest()[:16]}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        subprocess.run([go, "build", "-mod=readonly", "-o", str(partial), "."], cwd=GO_PROGRAM, check=True,
                       timeout=1200)
        partial.rename(binary)
    return binary


def run_contract(binary: Path, verifiers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    done = subprocess.run([str(binary)], input=json.dumps({"verifiers": verifiers}), capture_output=True,
                          text=True, timeout=120, check=True)
    return {result["name"]: result for result in json.loads(done.stdout)["verifiers"]}


def verifier_inputs(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One contract input per rendered NamespacedVerifier, its trust store read from the providers it names."""
    providers = {f"{m['metadata']['namespace']}/{m['metadata']['name']}": m["spec"]
                 for m in manifests if m["kind"] == "NamespacedKeyManagementProvider"}
    inputs = []
    for m in manifests:
        if m["kind"] != "NamespacedVerifier":
            continue
        params = m["spec"]["parameters"]
        stores = {kind: {name: [providers[ref]["parameters"]["value"] for ref in refs]
                         for name, refs in named.items()}
                  for kind, named in params["verificationCertStores"].items()}
        inputs.append({"name": f"{m['metadata']['namespace']}/{m['metadata']['name']}",
                       "trustPolicyDoc": params["trustPolicyDoc"], "trustStores": stores,
                       "reference": REFERENCE, "signers": []})
    return inputs


def rendered(result) -> list[dict[str, Any]]:
    return [manifest for _, manifest in result.manifests()]


def signer(name: str, chain: list, key) -> dict[str, Any]:
    return {"name": name, "chain": [pki.pem(cert) for cert in chain], "key": pki.pem(key)}


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_verifier_loads_in_notation(notation_contract, stack):
    inputs = verifier_inputs(rendered(sample(stack)))
    assert inputs, f"stack {stack} renders no NamespacedVerifier"
    results = run_contract(notation_contract, inputs)
    assert {name: r.get("error") for name, r in results.items()} == {name: None for name in results}


def test_committed_sample_is_a_root_and_a_leaf_it_issued_matching_the_trusted_identity():
    from cryptography import x509
    root = x509.load_pem_x509_certificate((PROJECT / "certs" / "compliance-root-ca.pem").read_bytes())
    leaf = x509.load_pem_x509_certificate((PROJECT / "certs" / "compliance-signer.pem").read_bytes())
    leaf.verify_directly_issued_by(root)
    assert not notation.trust_anchor_problems(pki.pem(root))
    assert notation.trust_anchor_problems(pki.pem(leaf))  # a leaf is no trust anchor
    manifests = rendered(sample("dev"))
    identities = next(m for m in manifests if m["kind"] == "NamespacedVerifier")[
        "spec"]["parameters"]["trustPolicyDoc"]["trustPolicies"][0]["trustedIdentities"]
    leaf_dn = {a.rfc4514_attribute_name: a.value for a in leaf.subject}
    assert any(notation.is_subset(notation.parse_dn(i.split(":", 1)[1]), leaf_dn) for i in identities)
    assert not list((PROJECT / "certs").glob("*key*")), "no private key is ever committed"


def _catalogue(root_file: str, identity: str) -> str:
    text = (PROJECT / "tenants.yaml").read_text()
    text = text.replace("certificateFile: certs/compliance-root-ca.pem", f"certificateFile: certs/{root_file}")
    return text.replace('"C=US, ST=Oregon, O=calypr, CN=compliance image signer"', json.dumps(identity))


def test_notation_accepts_only_the_tenants_signing_leaves(notation_contract, tmp_path):
    """The rendered verifier accepts a leaf of the tenant's CA with the trusted subject, and nothing else."""
    root, root_key = pki.make_root("gen")
    leaf, leaf_key = pki.make_leaf(root, root_key, "gen")
    other_leaf, other_leaf_key = pki.make_leaf(root, root_key, "another team")
    foreign_root, foreign_root_key = pki.make_root("gen")
    forged, forged_key = pki.make_leaf(foreign_root, foreign_root_key, "gen")  # same subject, other CA
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "gen-root-ca.pem").write_text(pki.pem(root))
    result = render("dev", _catalogue("gen-root-ca.pem", "C=US, ST=Oregon, O=calypr, CN=gen image signer"),
                    tmp_path)
    [contract] = verifier_inputs(rendered(result))
    contract["signers"] = [
        signer("tenant leaf", [leaf, root], leaf_key),
        signer("other leaf of the same CA", [other_leaf, root], other_leaf_key),
        signer("same subject, other CA", [forged, foreign_root], forged_key),
        signer("the CA itself", [root], root_key),
    ]
    outcome = run_contract(notation_contract, [contract])[contract["name"]]
    assert outcome.get("error") is None
    verified = {s["name"]: s["verified"] for s in outcome["signers"]}
    assert verified == {"tenant leaf": True, "other leaf of the same CA": False,
                        "same subject, other CA": False, "the CA itself": False}, outcome["signers"]
    why = {s["name"]: s.get("error", "") for s in outcome["signers"]}
    assert "does not match the X.509 trusted identities" in why["other leaf of the same CA"]
    assert "not produced by a trusted signer" in why["same subject, other CA"]
    assert "ca field must be set to false" in why["the CA itself"]


# Distinguished names with the verdict notation gives them as trusted identities (True = accepted).
IDENTITIES = [
    ("C=US, ST=WA, O=calypr", True),
    ("C=US,S=WA,O=calypr,CN=signer", True),
    ("CN=signer,O=calypr,ST=WA,C=US,OU=ops", True),
    ("O=calypr,CN=compliance image signing", False),  # the shape tenancy used to render: no C or ST
    ("C=US, O=calypr, CN=x", False),
    ("C=US, ST=WA, O=a, O=b", False),
    ("C=US+ST=WA, O=calypr", False),
    ("C=US, ST=WA, O=#0403616263", False),
    ("C=US, ST=WA, O=calypr\\, inc", True),
    ("c=US, ST=WA, O=calypr", False),
]


def test_python_identity_rules_match_notation(notation_contract):
    """components/notation.py decides like notation-go: the catalogue refuses exactly what Ratify would."""
    root, _ = pki.make_root("x")
    inputs = [{"name": dn, "reference": REFERENCE, "signers": [],
               "trustStores": {"ca": {"ca-certs": [pki.pem(root)]}},
               "trustPolicyDoc": {"version": "1.0", "trustPolicies": [{
                   "name": "p", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
                   "trustStores": ["ca:ca-certs"], "trustedIdentities": [notation.trusted_identity(dn)]}]}}
              for dn, _ in IDENTITIES]
    results = run_contract(notation_contract, inputs)
    for dn, accepted in IDENTITIES:
        try:
            notation.parse_dn(dn)
            python = True
        except ValueError:
            python = False
        assert (results[dn].get("error") is None, python) == (accepted, accepted), (dn, results[dn].get("error"))


def test_expired_root_is_reported():
    old = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    root, _ = pki.make_root("old", not_before=old, days=30)
    assert any("expired on 2000-01-31" in p for p in notation.trust_anchor_problems(pki.pem(root)))
