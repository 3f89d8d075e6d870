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
