"""The install is reproducible and what is tested is what `pulumi up` installs.

- `uv.lock` pins every package; the generator image installs `generator/requirements.txt`, which must be the
  lock's export with hashes (a stale export would ship other versions than the tests ran).
- The engine loads a provider plugin at exactly the version each resource registration asks for, and the SDK
  asks for its own package version (pulumi-kubernetes 4.25.0 `pulumi_kubernetes/_utilities.py`:
  `get_resource_opts_defaults()` sets `version=get_version()`), so the installed pulumi-kubernetes SDK must be
  the version of the plugin `make engines` builds (tools/engines/kubernetes-provider.sh).
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from tests.e2e.kube import pinned_version

PROJECT = Path(__file__).resolve().parent.parent
UV = PROJECT / "venv" / "bin" / "uv"


def _locked() -> dict[str, str]:
    lock = tomllib.loads((PROJECT / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"] if "version" in package}


def test_generator_requirements_are_the_lock_exported_with_hashes():
    exported = subprocess.run(
        [str(UV), "export", "--locked", "--only-group", "generator", "--no-emit-project"],
        cwd=PROJECT, capture_output=True, text=True, check=True).stdout
    written = (PROJECT / "generator" / "requirements.txt").read_text()
    body = lambda text: [line for line in text.splitlines() if not line.startswith("#")]  # noqa: E731
    assert body(written) == body(exported), "generator/requirements.txt is stale: run `make lock`"
    assert "--hash=sha256:" in written


def test_the_kubernetes_sdk_requests_the_plugin_make_engines_builds():
    from pulumi_kubernetes import _utilities

    provider = pinned_version("kubernetes-provider.sh", "K8S_PROVIDER_VERSION")
    assert _locked()["pulumi-kubernetes"] == provider
    assert _utilities.get_resource_opts_defaults().version == provider


def test_every_pulumi_sdk_is_pinned_exactly():
    dependencies = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    sdks = [d for d in dependencies if d.startswith("pulumi")]
    assert len(sdks) == 5 and all("==" in d for d in sdks), sdks
