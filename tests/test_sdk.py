"""components/sdk.register registers exactly what the provider SDK's typed class registers.

The engine receives a RegisterResourceRequest per resource; `register` must not change one field of it (type
token, inputs and their secrecy, aliases, additional secret outputs, plugin version, dependencies, options),
whichever class and stack. The typed classes are pulumi_aws 7.x, pulumi_vault 7.x and pulumi_random 4.x as
installed (uv.lock); each class's `_internal_init` is the reference for its argument names.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random
import pytest
from google.protobuf import json_format
from pulumi import _types
from pulumi.runtime import rpc
from pulumi.type_token import get_type_token

from components import sdk
from tenancy import synth
from tests.conftest import render, sample

STACKS = ["dev", "staging", "prod"]
TYPED_PACKAGES = ("aws", "vault", "random")
# What the engine uses the stack trace for is the console's source link; it is not configuration and depends on
# the Python call stack, which `register` changes by one frame.
NOT_COMPARED = ("sourcePosition", "stackTrace")


def _requests(monkeypatch: pytest.MonkeyPatch, stack: str, typed: bool) -> dict[tuple[str, str], dict[str, Any]]:
    """Every RegisterResourceRequest of a synth of `stack`, by (type, name); `typed` constructs the SDK's classes."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    original = synth.RecordingMonitor.RegisterResource

    def recording(self, request):
        message = json_format.MessageToDict(request)
        for key in NOT_COMPARED:
            message.pop(key, None)
        message["dependencies"] = sorted(message.get("dependencies", []))
        message["propertyDependencies"] = {k: sorted(v.get("urns", []))
                                           for k, v in message.get("propertyDependencies", {}).items()}
        seen[(request.type, request.name)] = message
        return original(self, request)

    with monkeypatch.context() as patch:
        patch.setattr(synth.RecordingMonitor, "RegisterResource", recording)
        if typed:
            patch.setattr(sdk, "register", lambda cls, name, opts, outputs=(), /, **inputs: cls(name, opts=opts, **inputs))
        render(stack)
    return seen


@pytest.mark.parametrize("stack", STACKS)
def test_register_sends_the_typed_classes_requests(monkeypatch, stack):
    direct = _requests(monkeypatch, stack, typed=False)
    typed = _requests(monkeypatch, stack, typed=True)
    assert direct.keys() == typed.keys()
    compared = [key for key in direct if key[0].split(":")[0] in TYPED_PACKAGES]
    assert len(compared) >= 20, "the stack registers typed-SDK resources; otherwise this compares nothing"
    for key in direct:
        assert direct[key] == typed[key], key


def test_typed_requests_carry_what_register_must_keep(monkeypatch):
    # The comparison above is only as strong as what the typed classes put into their requests: aliases
    # (S3 resources renamed from their V2 types), additional secret outputs, secret inputs and the plugin version.
    typed = _requests(monkeypatch, "dev", typed=True)
    by_type = {key[0]: request for key, request in typed.items()}
    assert by_type["aws:s3/bucket:Bucket"]["aliases"]
    assert by_type["aws:iam/accessKey:AccessKey"]["additionalSecretOutputs"] == ["secret", "sesSmtpPasswordV4"]
    assert by_type["random:index/randomPassword:RandomPassword"]["additionalSecretOutputs"] == ["bcryptHash", "result"]
    assert by_type["vault:kv/secretV2:SecretV2"]["object"]["dataJson"][rpc._special_sig_key] \
        == rpc._special_secret_sig  # noqa: SLF001 - the wire format has no public name
    assert by_type["aws:s3/bucket:Bucket"]["version"] == aws._utilities.get_version()


def _typed_class(token: str) -> type:
    """The SDK class of a type token: `aws:s3/bucket:Bucket` is pulumi_aws.s3.Bucket, `index` the package root."""
    package, module, name = token.split(":")
    path = module.split("/")[0]
    found = getattr(importlib.import_module(f"pulumi_{package}" + ("" if path == "index" else f".{path}")), name)
    assert get_type_token(found) == token
    return found


def _input_names(cls: type) -> set[str]:
    """The engine's names of every argument of the class's `_internal_init`, as the class's own properties spell
    them (each input is also a property of the resource)."""
    parameters = set(inspect.signature(cls._internal_init).parameters) - {"__self__", "resource_name", "opts",
                                                                           "__props__"}
    to_engine = _types.resource_py_to_pulumi_names(cls)
    return {to_engine.get(p, p) for p in parameters}


@pytest.mark.parametrize("stack", STACKS)
def test_every_typed_sdk_resource_uses_only_its_class_input_names(stack):
    result = sample(stack)
    checked = 0
    for record in result.resources:
        if record["type"].split(":")[0] not in TYPED_PACKAGES or not record["custom"]:
            continue
        unknown = set(record["inputs"]) - _input_names(_typed_class(record["type"]))
        assert not unknown, f"{record['urn']}: {sorted(unknown)} are not inputs of {record['type']}"
        checked += 1
    assert checked >= 20


def test_register_refuses_what_the_typed_class_refuses():
    with pytest.raises(TypeError, match="unexpected keyword argument 'force_destory'"):
        sdk.register(aws.s3.Bucket, "b", pulumi.ResourceOptions(), force_destory=True)
    with pytest.raises(TypeError, match="Missing required property 'length'"):
        sdk.register(random.RandomPassword, "p", pulumi.ResourceOptions())
    with pytest.raises(TypeError, match="Bucket has no output arm"):
        sdk.register(aws.s3.Bucket, "b", pulumi.ResourceOptions(), ["arm"], bucket="b")
