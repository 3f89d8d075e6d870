"""No generated secret (IAM secret keys, passwords, tokens) reaches anything synth writes or prints."""

from __future__ import annotations

import pytest

from tenancy import synth
from tests.conftest import sample


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_generated_secrets_never_reach_synth_output(stack, tmp_path):
    result = sample(stack)
    synth.write(result, tmp_path)
    written = "\n".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    written += synth.format_table(synth.tenant_summary(result))
    for secret in result.generated_secrets:
        assert secret not in written


def test_the_leak_check_sees_generated_secrets():
    # Static keys and MiniCluster passwords exist in dev; if the mocks stopped generating them the
    # test above would pass vacuously.
    assert len(sample("dev").generated_secrets) >= 3
