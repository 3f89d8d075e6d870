"""The research tenant reproduces Argo's multi-tenant artifact-storage walkthrough, object for object."""

from __future__ import annotations

import yaml

from components import naming
from tests.conftest import sample

NAMESPACE = "wf-calypr-research"


def _objects(stack: str = "dev") -> dict[tuple[str, str], dict]:
    return {(m["kind"], m["metadata"]["name"]): m for _, m in sample(stack).manifests()
            if m["metadata"].get("namespace") == NAMESPACE or m["metadata"]["name"] == NAMESPACE}


def test_namespace_and_its_artifact_repository():
    objects = _objects()
    assert ("Namespace", NAMESPACE) in objects
    configmap = objects[("ConfigMap", "artifact-repositories")]
    annotations = configmap["metadata"]["annotations"]
    assert annotations == {"workflows.argoproj.io/default-artifact-repository": "default-v1"}
    repository = yaml.safe_load(configmap["data"]["default-v1"])
    assert repository == {
        "archiveLogs": True,
        "s3": {
            "bucket": "calypr-research-dev-artifacts",
            "endpoint": "s3.us-west-2.amazonaws.com",
            "region": "us-west-2",
            # keyFormat replaces the deprecated keyPrefix: same keys, path.Join(prefix, DefaultArchivePattern).
            "keyFormat": "research/{{workflow.name}}/{{pod.name}}",
            "insecure": False,
            "accessKeySecret": {"name": "s3-credentials-research", "key": "AWS_ACCESS_KEY_ID"},
            "secretKeySecret": {"name": "s3-credentials-research", "key": "AWS_SECRET_ACCESS_KEY"},
        },
    }


def test_external_secret_delivers_the_keys_the_repository_names():
    objects = _objects()
    external = objects[("ExternalSecret", "s3-credentials-research")]
    assert external["spec"]["target"]["name"] == "s3-credentials-research"
    delivered = {d["secretKey"]: d["remoteRef"] for d in external["spec"]["data"]}
    assert set(delivered) == {naming.S3_ACCESS_KEY_ID_KEY, naming.S3_SECRET_ACCESS_KEY_KEY}
    assert {ref["key"] for ref in delivered.values()} == {"argo/orgs/calypr/research/s3/artifacts"}


def test_workflow_template_runs_the_tenants_repository_as_wf_runner():
    template = _objects()[("WorkflowTemplate", "nextflow-repo-runner")]
    assert template["apiVersion"] == "argoproj.io/v1alpha1"
    spec = template["spec"]
    assert {p["name"]: p["value"] for p in spec["arguments"]["parameters"]} == {
        "repo-url": "https://github.com/calypr/research-workflows.git", "revision": "main"}
    assert spec["serviceAccountName"] == "wf-runner"
    git = spec["templates"][0]["inputs"]["artifacts"][0]["git"]
    assert git["repo"] == "{{workflow.parameters.repo-url}}"
    assert git["revision"] == "{{workflow.parameters.revision}}"


def test_workflow_template_follows_the_tenant_repository_per_stack():
    for stack in ("dev", "staging", "prod"):
        compliance = next(m for _, m in sample(stack).manifests()
                          if m["kind"] == "WorkflowTemplate" and m["metadata"]["namespace"] == "wf-calypr-compliance")
        params = {p["name"]: p["value"] for p in compliance["spec"]["arguments"]["parameters"]}
        assert params == {"repo-url": "https://github.com/calypr/compliance-workflows.git", "revision": "release"}


def test_wf_runner_service_account_with_its_role_and_binding():
    objects = _objects()
    account = objects[("ServiceAccount", "wf-runner")]
    assert account["automountServiceAccountToken"] is True
    role = objects[("Role", naming.EXECUTOR_ROLE)]
    assert {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"],
            "verbs": ["create", "patch"]} in role["rules"]
    binding = objects[("RoleBinding", naming.EXECUTOR_ROLE)]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": naming.EXECUTOR_ROLE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "wf-runner", "namespace": NAMESPACE}]


def test_the_minicluster_namespace_runs_at_baseline():
    labels = _objects()[("Namespace", NAMESPACE)]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert ("MiniCluster", "flux-research") in _objects()


def test_schema_knows_argos_priority_field_names():
    """argo-workflows v3.4-v3.7 `pkg/apis/workflow/v1alpha1/workflow_types.go`: WorkflowSpec has
    `podPriorityClassName`; `priorityClassName` exists only on a template, so strict validation refuses it on
    the spec."""
    from tests import schema_check

    template = _objects()[("WorkflowTemplate", naming.WORKFLOW_TEMPLATE)]
    assert schema_check.problems(template) == []
    assert schema_check.problems({**template, "spec": {**template["spec"], "podPriorityClassName": "x"}}) == []
    assert schema_check.problems({**template, "spec": {**template["spec"], "priorityClassName": "x"}}) != []
