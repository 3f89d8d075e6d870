"""Make a Notary Project sample PKI: a root CA (the trust anchor) and a code-signing leaf it issued.

    python certs/make-sample-pki.py --out certs --name compliance            # public certificates only
    python certs/make-sample-pki.py --out /tmp/pki --name t --keys           # also the PKCS#8 private keys

Notation's rules shape both certificates (notation-core-go v1.2.0, x509/codesigning_cert_validations.go and
x509/helper.go): the root carries critical basicConstraints CA:TRUE and a critical keyUsage with keyCertSign;
the leaf carries basicConstraints CA:FALSE and a critical keyUsage of digitalSignature only, with the
codeSigning EKU. The leaf subject holds C, ST and O, which a trusted identity must name (notation-go v1.3.0,
internal/pkix/pkix.go). Without `--keys` the private keys are thrown away: the committed sample can be trusted,
never used to sign.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
_KEY_USAGE = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                  crl_sign=False, encipher_only=False, decipher_only=False)


def _name(country: str, state: str, org: str, common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                      x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, state),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_root(name: str, *, org: str = "calypr", country: str = "US", state: str = "Oregon",
              not_before: datetime.datetime = START, days: int = 3650,
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed root CA as notation wants one."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(country, state, org, f"{name} image signing root CA")
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_before + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, **_KEY_USAGE), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_leaf(root: x509.Certificate, root_key: ec.EllipticCurvePrivateKey, name: str, *, org: str = "calypr",
              country: str = "US", state: str = "Oregon", not_before: datetime.datetime = START, days: int = 3650,
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A code-signing leaf `root` issued, subject `C, ST, O, CN=<name> image signer`."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(country, state, org, f"{name} image signer"))
            .issuer_name(root.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_before + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, **_KEY_USAGE), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    return cert, key


def pem(obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", required=True, help="tenant name; files are <name>-root-ca.pem, <name>-signer.pem")
    parser.add_argument("--keys", action="store_true", help="also write the private keys (never commit them)")
    args = parser.parse_args()
    root, root_key = make_root(args.name)
    leaf, leaf_key = make_leaf(root, root_key, args.name)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}-root-ca.pem").write_text(pem(root))
    (args.out / f"{args.name}-signer.pem").write_text(pem(leaf))
    if args.keys:
        (args.out / f"{args.name}-root-key.pem").write_text(pem(root_key))
        (args.out / f"{args.name}-signer-key.pem").write_text(pem(leaf_key))
    print(f"trusted identity: {', '.join(reversed(leaf.subject.rfc4514_string().split(',')))}")

if __name__ == "__main__":
    main()
