"""kube.apply registers manifests under the same type tokens the SDK's typed classes use."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.sync_await import _sync_await

from components import kube
from tenancy import synth

TYPED = {
    ("v1", "Namespace"): k8s.core.v1.Namespace, ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap, ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service, ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange, ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
}


def test_type_tokens_match_the_typed_classes():
    mocks = synth.SynthMocks()
    monitor = synth.RecordingMonitor(mocks)
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="t", stack="dev", preview=False, monitor=monitor)

    def program():
        provider = k8s.Provider("k")
        for (_, kind), cls in TYPED.items():
            required = {"spec": {"selector": {}, "template": {}}} if kind == "Deployment" else {}
            required = {"role_ref": {"apiGroup": "", "kind": "Role", "name": "r"}} if kind == "RoleBinding" else required
            cls(f"typed-{kind}", opts=pulumi.ResourceOptions(provider=provider), **required)

    _sync_await(pulumi.runtime.stack.run_pulumi_func(program))
    recorded = {r["name"].removeprefix("typed-"): r["type"] for r in monitor.records if r["name"].startswith("typed-")}
    for api_version, kind in TYPED:
        assert kube.type_token(api_version, kind) == recorded[kind]
    assert kube.type_token("argoproj.io/v1alpha1", "WorkflowTemplate") == \
        "kubernetes:argoproj.io/v1alpha1:WorkflowTemplate"


def test_secret_data_is_secret_as_a_whole(dev):
    secrets = [r for r in dev.resources if r["type"] == "kubernetes:core/v1:Secret"]
    assert secrets
    for record in secrets:
        for field in ("data", "stringData"):
            # Secret as a whole (the key names too, in state); synth shows the keys, every value masked.
            assert set(record["inputs"].get(field, {}).values()) <= {"[secret]"}
