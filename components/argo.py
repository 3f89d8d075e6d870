"""Argo Workflows in a tenant namespace: the namespace's artifact repository and the repo-runner template.

Follows Argo's multi-tenant artifact storage design: each namespace carries its own `artifact-repositories`
ConfigMap, so a workflow writes to its tenant's bucket and prefix with its tenant's credentials, and the
Secrets it names live in the same namespace.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from . import naming, yaml_emit
from .catalogue import TenantSpec
from .images import NEXTFLOW_IMAGE
from .namespace import node_placement
from .naming import TenantNames
from .quota import ephemeral_defaults

ARGO_API = "argoproj.io/v1alpha1"
DEFAULT_REPOSITORY_ANNOTATION = "workflows.argoproj.io/default-artifact-repository"
# Any non-root identity works for the restricted Pod Security level; 1000 matches the image's home layout.
RUNNER_UID = 1000
SOURCE_PATH = "/src"
WORK_PATH = "/work"
# Argo's own containers in every pod of a container template (argo-workflows `workflow/common/common.go`:
# InitContainerName, WaitContainerName, MainContainerName), v3.4 through v3.7.
EXECUTOR_INIT, EXECUTOR_WAIT, MAIN = "init", "wait", "main"
# Argo's default archive key (`DefaultArchivePattern`, pkg/apis/workflow/v1alpha1/artifact_repository_types.go);
# `keyPrefix` (deprecated) means `path.Join(keyPrefix, DefaultArchivePattern)`.
ARCHIVE_PATTERN = "{{workflow.name}}/{{pod.name}}"


def s3_endpoint(region: str) -> str:
    return f"s3.{region}.amazonaws.com"


def artifact_repository(
    spec: TenantSpec, names: TenantNames, bucket: str, region: str, kms_key_arn: Optional[str]
) -> dict[str, Any]:
    """The repository Argo reads from the ConfigMap key: the tenant's bucket and prefix, and how to reach them."""
    s3: dict[str, Any] = {
        "bucket": bucket,
        "endpoint": s3_endpoint(region),
        "region": region,
        # The current field, in v3.4 through v3.7, for exactly the keys the deprecated `keyPrefix` produced; the
        # catalogue refuses `{` in the prefix, so it cannot smuggle in other workflow variables.
        "keyFormat": spec.artifacts.key_prefix + ARCHIVE_PATTERN,
        "insecure": False,
    }
    if spec.artifacts.credentials == "irsa":
        # The pod's service account carries the IRSA annotation; the SDK finds the web-identity token itself.
        s3["useSDKCreds"] = True
    else:
        s3["accessKeySecret"] = {"name": names.s3_credentials_secret, "key": naming.S3_ACCESS_KEY_ID_KEY}
        s3["secretKeySecret"] = {"name": names.s3_credentials_secret, "key": naming.S3_SECRET_ACCESS_KEY_KEY}
    if kms_key_arn is not None:
        s3["encryptionOptions"] = {"enableEncryption": True, "kmsKeyId": kms_key_arn}
    return {"archiveLogs": spec.artifacts.archive_logs, "s3": s3}


def artifact_repositories_configmap(names: TenantNames, repository_yaml: Any) -> dict[str, Any]:
    """`repository_yaml` is the YAML text of `artifact_repository` (an Output while the bucket is unknown)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": naming.ARTIFACT_REPOSITORIES_CONFIGMAP,
            "namespace": names.namespace,
            "annotations": {DEFAULT_REPOSITORY_ANNOTATION: naming.ARTIFACT_REPOSITORY_KEY},
        },
        "data": {naming.ARTIFACT_REPOSITORY_KEY: repository_yaml},
    }


def repository_yaml(repository: dict[str, Any]) -> str:
    return yaml_emit.dump(repository)


def pod_security_context() -> dict[str, Any]:
    """Pod fields the restricted Pod Security level requires (and so every weaker level accepts)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNNER_UID,
        "runAsGroup": RUNNER_UID,
        "fsGroup": RUNNER_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Every field a Pod Security check reads on a container, set to what `restricted` accepts.

    Stated in full because it is merged, not substituted: Argo merges the controller's `mainContainer` defaults
    under `main`, and a strategic-merge `podSpecPatch` only overwrites the fields it names, so each field the
    controller's configuration could set must be named here (`add: []` replaces any added capability).
    """
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"], "add": []},
        "runAsNonRoot": True,
        "runAsUser": RUNNER_UID,
        "runAsGroup": RUNNER_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def executor_pod_spec_patch() -> str:
    """The template's `podSpecPatch`: the restricted security context on Argo's `init` and `wait` containers too.

    Argo gives those two the controller's `executor.securityContext` (empty by default), not the template's
    (argo-workflows `workflow/controller/workflowpod.go`, `newExecContainer`), so a template hardened only in
    `main` is refused by a `restricted` namespace. Argo applies this string to the finished pod spec as a
    Kubernetes strategic merge patch (v3.4: `util.PodSpecPatchMerge` then `strategicpatch.StrategicMergePatch`;
    v3.5-v3.7: `util.ApplyPodSpecPatch`), where `containers` and `initContainers` merge by `name`. `main` is
    named too, over the controller's `mainContainer` defaults. JSON, which every version reads (v3.4 only
    converts YAML that is not already JSON) and which never contains Argo's `{{` variable marker.
    """
    hardened = container_security_context()
    return json.dumps(
        {
            "initContainers": [{"name": EXECUTOR_INIT, "securityContext": hardened}],
            "containers": [
                {"name": EXECUTOR_WAIT, "securityContext": hardened},
                {"name": MAIN, "securityContext": hardened},
            ],
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def workflow_template(spec: TenantSpec, names: TenantNames) -> dict[str, Any]:
    """`nextflow-repo-runner`: clone the tenant's repository at a revision and run its pipeline in the pod."""
    workflow_spec: dict[str, Any] = {
        "entrypoint": "run",
        "serviceAccountName": naming.RUNNER_SERVICE_ACCOUNT,
        "arguments": {
            "parameters": [
                {"name": "repo-url", "value": spec.repo.url},
                {"name": "revision", "value": spec.repo.default_branch},
            ]
        },
        "securityContext": pod_security_context(),
        # Bounded like the container that writes it (its LimitRange default): the kubelet evicts this pod when the
        # work directory outgrows it, before the node's disk fills and other tenants' pods are evicted.
        "volumes": [{"name": "work", "emptyDir": {"sizeLimit": ephemeral_defaults(spec)[1]}}],
        **node_placement(spec, names),
        "templates": [
            {
                "name": "run",
                # On the template, not the spec: it then also applies when a Workflow reaches this template through
                # `templateRef` instead of `workflowTemplateRef`.
                "podSpecPatch": executor_pod_spec_patch(),
                "inputs": {
                    "artifacts": [
                        {
                            "name": "source",
                            "path": SOURCE_PATH,
                            "git": {
                                "repo": "{{workflow.parameters.repo-url}}",
                                "revision": "{{workflow.parameters.revision}}",
                                "depth": 1,
                            },
                        }
                    ]
                },
                "container": {
                    "image": NEXTFLOW_IMAGE,
                    "command": ["nextflow"],
                    "args": ["run", SOURCE_PATH, "-ansi-log", "false"],
                    "workingDir": WORK_PATH,
                    "env": [{"name": "NXF_HOME", "value": f"{WORK_PATH}/.nextflow"}],
                    "volumeMounts": [{"name": "work", "mountPath": WORK_PATH}],
                    "securityContext": container_security_context(),
                },
            }
        ],
    }
    return {
        "apiVersion": ARGO_API,
        "kind": "WorkflowTemplate",
        "metadata": {"name": naming.WORKFLOW_TEMPLATE, "namespace": names.namespace},
        "spec": workflow_spec,
    }
