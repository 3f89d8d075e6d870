"""The Notary Project rules Ratify's notation verifier applies to what a tenant gives it, checked at the edge.

Ratify v1.4.0 links notation-go v1.3.0 and notation-core-go v1.2.0. Its verifier refuses to start when the
trust policy breaks notation's rules, and refuses every signature whose chain breaks them, so a catalogue
that would do either is refused here instead, naming the setting:

- A trusted identity `x509.subject: <DN>` must parse as an RFC 4514 DN with no `=#` value, no multi-valued
  RDN, no repeated attribute, and at least C, ST (or S) and O (notation-go internal/pkix/pkix.go); two
  identities of one policy may not overlap, one being a subset of the other, and `*` cannot be combined with
  anything (verifier/trustpolicy/trustpolicy.go).
- The trust store holds CA certificates: Ratify drops a certificate that is neither a CA nor self-signed
  (ratify pkg/verifier/notation/truststore.go), and notation-core-go requires a chain's CA certificates to carry
  a critical basicConstraints CA:TRUE and a critical keyUsage with keyCertSign (x509/helper.go,
  x509/codesigning_cert_validations.go), while a signing leaf must not be a CA. So the trust anchor is the
  root (or intermediate) CA, and trusted identities are the subjects of the leaves it issued.
"""

from __future__ import annotations

import datetime
import functools

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from .problems import shown

X509_SUBJECT = "x509.subject"
MANDATORY_ATTRIBUTES = ("C", "ST", "O")


def _split(text: str, separator: str) -> list[str]:
    """Split at every `separator` not escaped by a backslash."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current, escaped = current + "\\" + char, False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts, current = parts + [current], ""
        else:
            current += char
    return parts + [current + ("\\" if escaped else "")]


def _unescape(value: str) -> str:
    out, i = "", 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out, i = out + chr(int(pair, 16)), i + 3
                continue
            out, i = out + value[i + 1], i + 2
            continue
        out, i = out + value[i], i + 1
    return out


def parse_dn(name: str) -> dict[str, str]:
    """Attribute type -> value of a trusted identity's DN, by notation's rules; ValueError says what breaks."""
    return dict(_parse_dn(name))


# Thousands of tenants name the same few signers and CA files, and each is validated in every environment it
# names: parse each distinct DN and PEM once per process (the parsed forms are immutable tuples; callers get copies).
@functools.lru_cache(maxsize=4096)
def _parse_dn(name: str) -> tuple[tuple[str, str], ...]:
    if "=#" in name:
        raise ValueError(f"{shown(name)}: notation does not support x509.subject identities containing '=#'")
    attributes: dict[str, str] = {}
    for rdn in _split(name, ","):
        if not rdn.strip():
            continue
        values = _split(rdn, "+")
        if len(values) > 1:
            raise ValueError(
                f"{shown(name)} has a multi-valued RDN ({shown(rdn.strip())}), which notation does not support"
            )
        kind, sep, value = values[0].partition("=")
        kind = kind.strip()
        if not sep or not kind or not value.strip():
            raise ValueError(
                f"{shown(name)} is not an RFC 4514 distinguished name ({shown(rdn.strip())} is not type=value)"
            )
        kind = "ST" if kind == "S" else kind
        if kind in attributes:
            raise ValueError(f"{shown(name)} repeats the attribute {shown(kind)}; notation needs each attribute once")
        attributes[kind] = _unescape(value.strip())
    missing = [kind for kind in MANDATORY_ATTRIBUTES if not attributes.get(kind)]
    if missing:
        raise ValueError(
            f"{shown(name)} lacks {', '.join(missing)}; notation needs at least C, ST (or S) and O "
            "in an x509.subject identity"
        )
    return tuple(attributes.items())


def is_subset(dn1: dict[str, str], dn2: dict[str, str]) -> bool:
    """notation's overlap test: every attribute of dn1 has the same value in dn2."""
    return all(dn2.get(kind) == value for kind, value in dn1.items())


def trusted_identity(dn: str) -> str:
    """The trust-policy form of a signing leaf's subject."""
    return f"{X509_SUBJECT}: {dn}"


def overlap_problems(identities: list[str]) -> list[str]:
    """Pairs notation refuses in one policy: one identity's attributes all found, equal, in another."""
    parsed = [(dn, parse_dn(dn)) for dn in identities]
    return [
        f"trustedIdentities[{i}] {shown(a)} overlaps trustedIdentities[{j}] {shown(b)} (notation refuses overlapping "
        "identities in one trust policy)"
        for i, (a, pa) in enumerate(parsed)
        for j, (b, pb) in enumerate(parsed)
        if i < j and (is_subset(pa, pb) or is_subset(pb, pa))
    ]


def _ca_problem(cert: x509.Certificate) -> str | None:
    try:
        constraints = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
        key_usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    except x509.ExtensionNotFound:
        constraints = key_usage = None
    if constraints is None or not constraints.value.ca:
        return (
            "is not a CA certificate (no basicConstraints CA:TRUE): a signing leaf does not belong in the "
            "trust store; give the root CA that issued it, and put the leaf's subject in "
            "supplyChain.trustedIdentities"
        )
    if not constraints.critical:
        return "has a basicConstraints extension that is not critical, which notation refuses for a CA"
    if key_usage is None or not key_usage.critical or not key_usage.value.key_cert_sign:
        return "lacks a critical keyUsage with keyCertSign, which notation requires of a CA"
    return None


@functools.lru_cache(maxsize=64)
def _anchors(pem: str) -> tuple[tuple[str, str | None, datetime.datetime, tuple[tuple[str, str], ...]], ...]:
    """(description, CA problem, expiry, notation-form subject) of each PEM certificate; ValueError if none parse."""
    certs = x509.load_pem_x509_certificates(pem.encode())
    described = []
    for index, cert in enumerate(certs):
        which = (
            f"certificate {index + 1} ({cert.subject.rfc4514_string()})"
            if len(certs) > 1
            else f"certificate ({cert.subject.rfc4514_string()})"
        )
        attributes = {attr.rfc4514_attribute_name: attr.value for attr in cert.subject}
        subject = tuple((("ST" if k == "S" else k), str(v)) for k, v in attributes.items())
        described.append((which, _ca_problem(cert), cert.not_valid_after_utc, subject))
    return tuple(described)


def trust_anchor_problems(pem: str, now: datetime.datetime | None = None) -> list[str]:
    """Why notation could not use these PEM certificates as the trust store; empty when it can."""
    try:
        anchors = _anchors(pem)
    except ValueError as exc:
        return [f"is not a PEM X.509 certificate ({exc})"]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    problems = []
    for which, why, not_after, _ in anchors:
        if why:
            problems.append(f"{which} {why}")
        if not_after < now:
            problems.append(f"{which} expired on {not_after:%Y-%m-%d}")
    return problems


def anchor_subjects(pem: str) -> list[dict[str, str]]:
    """Subjects of the trust-store certificates in notation's DN form (for telling a CA from a signer)."""
    return [dict(subject) for *_, subject in _anchors(pem)]
