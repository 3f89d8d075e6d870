"""What makes re-reading a catalogue cheap (components/catalogue.py `load`, `_read_yaml`, the validated-spec
memo) never returns what the files no longer say."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from components import catalogue, settings
from components.problems import InvalidInput
from tests.conftest import PROJECT, self_signed_ca_pem

STACKS = settings.known_stacks(PROJECT)
DEV = settings.load_stack(PROJECT, "dev")
ROOT_PEM = (PROJECT / "certs" / "compliance-root-ca.pem").read_text()


OTHER_PEM = self_signed_ca_pem("another root")

CATALOGUE = textwrap.dedent("""
    tenants:
      - name: alpha
        team: a
        repo: {url: https://github.com/x/alpha.git}
        supplyChain: {enabled: true, certificateFile: ca.pem, trustedIdentities: ['C=US, ST=Oregon, O=calypr, CN=signer']}
      - name: beta
        team: b
        repo: {url: https://github.com/x/beta.git}
""")


def _certificate(path: Path) -> str:
    spec = next(spec for spec, _ in catalogue.load(path, stacks=STACKS).for_stack(DEV) if spec.name == "alpha")
    return spec.supply_chain.certificate


def test_the_same_catalogue_bytes_see_a_changed_certificate_file(tmp_path: Path):
    """The catalogue is unchanged, the certificate file it names is not: the second load must carry the new PEM
    (the load memo checks the certificates it read; the spec memo keys by the merged tenant with the PEM in it)."""
    path = tmp_path / "tenants.yaml"
    path.write_text(CATALOGUE)
    (tmp_path / "ca.pem").write_text(ROOT_PEM)
    assert _certificate(path) == ROOT_PEM
    assert _certificate(path) == ROOT_PEM
    (tmp_path / "ca.pem").write_text(OTHER_PEM)
    assert _certificate(path) == OTHER_PEM
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    with pytest.raises(InvalidInput, match="ca.pem"):
        catalogue.load(path, stacks=STACKS)


def test_a_tenant_validated_before_keeps_its_own_values(tmp_path: Path):
    """Two catalogues in one process sharing tenants: an edited tenant is validated afresh, the others reused."""
    path = tmp_path / "tenants.yaml"
    (tmp_path / "ca.pem").write_text(ROOT_PEM)
    path.write_text(CATALOGUE)
    first = {spec.name: spec for spec, _ in catalogue.load(path, stacks=STACKS).for_stack(DEV)}
    path.write_text(CATALOGUE.replace("team: b", "team: b2"))
    second = {spec.name: spec for spec, _ in catalogue.load(path, stacks=STACKS).for_stack(DEV)}
    assert second["beta"].team == "b2" and first["beta"].team == "b"
    assert second["alpha"] == first["alpha"]
    path.write_text(CATALOGUE.replace("team: b", "team: [b]"))
    with pytest.raises(InvalidInput, match=r"tenants\[1\] \(name=beta\)\.team"):
        catalogue.load(path, stacks=STACKS)


def test_parsed_catalogues_are_kept_by_their_text_and_refusals_are_not(tmp_path: Path):
    parsed = tmp_path / "parsed"
    text = CATALOGUE.replace("certificateFile: ca.pem", "certificateFile: ca.pem").encode()
    raw = catalogue._read_yaml(text, parsed)  # noqa: SLF001
    [entry] = parsed.glob("*.json")
    assert json.loads(entry.read_text()) == raw
    # Kept entries are what a later read returns: an entry edited behind the tooling's back is used...
    entry.write_text(json.dumps({**raw, "tenants": raw["tenants"][:1]}))
    assert len(catalogue._read_yaml(text, parsed)["tenants"]) == 1  # noqa: SLF001
    # ...so the key must change with the text: one byte more is another entry.
    assert catalogue._read_yaml(text + b"\n", parsed) == raw  # noqa: SLF001
    assert len(list(parsed.glob("*.json"))) == 2
    with pytest.raises(Exception, match="duplicate key"):
        catalogue._read_yaml(b"tenants: []\ntenants: []\n", parsed)  # noqa: SLF001
    assert len(list(parsed.glob("*.json"))) == 2
