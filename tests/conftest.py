"""Shared harness: run the real program under mocks for a given catalogue and stack.

`render(stack, catalogue=None)` validates like the CLI, runs the program, and returns a `SynthResult`
(every registered resource, secrets masked). Results for the shipped catalogue are cached per stack,
since most tests only read them.
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path
from typing import Optional

import pytest

from tenancy import inputs, synth

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT / "tenants.yaml"


def render(stack: str = "dev", catalogue: Optional[str] = None, tmp_path: Optional[Path] = None) -> synth.SynthResult:
    """Synth `stack`; `catalogue` is YAML text (written beside a copy of the sample's certs) or the sample."""
    tenants = SAMPLE
    if catalogue is not None:
        assert tmp_path is not None, "a custom catalogue needs tmp_path"
        tenants = tmp_path / "tenants.yaml"
        tenants.write_text(textwrap.dedent(catalogue))
        (tmp_path / "certs").mkdir(exist_ok=True)
        for cert in (PROJECT / "certs").glob("*.pem"):
            (tmp_path / "certs" / cert.name).write_text(cert.read_text())
    inputs.load_inputs(PROJECT, stack, tenants)
    return synth.run(PROJECT, stack, tenants)


@functools.lru_cache(maxsize=None)
def sample(stack: str) -> synth.SynthResult:
    return render(stack)


@pytest.fixture(scope="session")
def dev() -> synth.SynthResult:
    return sample("dev")


@pytest.fixture(scope="session")
def staging() -> synth.SynthResult:
    return sample("staging")


@pytest.fixture(scope="session")
def prod() -> synth.SynthResult:
    return sample("prod")


def self_signed_ca_pem(name: str) -> str:
    """A self-signed CA certificate (what a trust store holds)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()
