"""The bench's floors measure what they say: the requests floor (bench/synth_scale.py) replays synth's own
registration requests, so its time is the SDK's cost of exactly the resources the program registers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.sync_await import _sync_await

from tenancy import synth

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "bench"))

import synth_scale  # noqa: E402


def _fields(request) -> dict[str, Any]:
    """What the engine would act on in a RegisterResource request."""
    return {
        "type": request.type, "name": request.name, "parent": request.parent, "custom": request.custom,
        "provider": request.provider, "dependencies": sorted(request.dependencies), "protect": request.protect,
        "retainOnDelete": request.retainOnDelete, "additionalSecretOutputs": sorted(request.additionalSecretOutputs),
        "aliases": sorted(json_format.MessageToJson(alias, sort_keys=True) for alias in request.aliases),
        "object": synth._unwrap(json_format.MessageToDict(request.object)),  # noqa: SLF001
    }


def test_the_requests_floor_replays_synths_requests():
    """Secrets travel unwrapped in the replay (a plain value costs the SDK less than a secret one, so the floor
    errs low); every other field of every request is synth's."""
    captured = synth_scale._captured_requests(str(PROJECT / "tenants.yaml"))  # noqa: SLF001
    replayed: list = []
    mocks = synth.SynthMocks()
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="tenancy", stack="dev", preview=False,
                             monitor=synth_scale.capturing_monitor(replayed)(mocks))
    _sync_await(pulumi.runtime.stack.run_pulumi_func(synth_scale._replay(captured)))  # noqa: SLF001

    original = {(r.type, r.name): _fields(r) for _, r in captured}
    again = {(r.type, r.name): _fields(r) for r in replayed}
    assert again.keys() == original.keys()
    assert any(fields["aliases"] for fields in original.values())
    assert any(fields["dependencies"] for fields in original.values())
    assert {key: fields for key, fields in again.items() if fields != original[key]} == {}
