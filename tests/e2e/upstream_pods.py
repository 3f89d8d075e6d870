"""The pods upstream controllers create from what tenancy renders, replayed field by field.

Pod Security admission judges pods, not WorkflowTemplates or MiniClusters, so the e2e suite builds the pods
the way the controllers do and asks the real apiserver (server-side dry-run) whether the namespace admits them.

- Argo Workflows v3.7 (argo-workflows `workflow/controller/workflowpod.go`, `createWorkflowPod`,
  `newExecContainer`, `addSchedulingConstraints`, `addInputArtifactsVolumes`, `processPodSpecPatch`;
  `workflow/util/util.go` `ApplyPodSpecPatch`): an `init` and a `wait` container running the executor image
  with the controller's `executor.securityContext` (nil unless the platform configures one), the template's
  `main` container behind the emissary, emptyDir volumes `var-run-argo`, `tmp-dir-argo` and
  `input-artifacts`, the pod security context / node placement of the workflow spec, then the workflow's and
  the template's `podSpecPatch` as a strategic merge patch.
- Flux Operator 0.2.1 (flux-operator `controllers/flux/job.go` `NewMiniClusterJob`, `containers.go`
  `getFluxContainer` / `getContainers`, `volumes.go`, `api/v1alpha2/minicluster_types.go` `Validate`): an
  indexed Job whose pod has the `flux-view` init container (no securityContext) and one container per
  MiniCluster container with `securityContext{privileged: false, capabilities: {add: []}}`; a single container
  becomes the flux runner named after the MiniCluster.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Optional

import yaml

ARGO_VERSION = "v3.7.9"
EXECUTOR_IMAGE = f"quay.io/argoproj/argoexec:{ARGO_VERSION}"
VAR_RUN_ARGO = {"name": "var-run-argo", "mountPath": "/var/run/argo"}
FLUX_VIEW_IMAGE = "ghcr.io/converged-computing/flux-view-rocky:tag-9"


# --- strategic merge patch, as apimachinery applies it to a PodSpec ---------------------------------------------

# patchMergeKey of the PodSpec lists a podSpecPatch can reach (k8s.io/api core/v1 types.go); other lists replace.
_MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
               "volumeMounts": "mountPath", "env": "name", "imagePullSecrets": "name", "ports": "containerPort",
               "hostAliases": "ip", "volumeDevices": "devicePath"}


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    if isinstance(original, dict) and isinstance(patch, dict):
        merged = dict(original)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(original.get(key), value, key)
        return merged
    if isinstance(original, list) and isinstance(patch, list) and field in _MERGE_KEYS:
        key = _MERGE_KEYS[field]
        merged = [copy.deepcopy(item) for item in original]
        for item in patch:
            index = next((i for i, m in enumerate(merged) if m.get(key) == item.get(key)), None)
            if index is None:
                merged.append(item)
            else:
                merged[index] = strategic_merge(merged[index], item, "")
        return merged
    return copy.deepcopy(patch)


# --- Argo Workflows ----------------------------------------------------------------------------------------------

def argo_workflow_pods(workflow_template: dict[str, Any],
                       executor_security_context: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    """One pod per container template of a WorkflowTemplate, as the controller creates it for a Workflow that
    references the template (`workflowTemplateRef`: the template's spec becomes the workflow's spec)."""
    spec = workflow_template["spec"]
    namespace = workflow_template["metadata"]["namespace"]
    return [_argo_pod(spec, template, namespace, executor_security_context)
            for template in spec.get("templates", []) if "container" in template]


def _argo_pod(wf_spec: dict, tmpl: dict, namespace: str, executor_sc: Optional[dict]) -> dict[str, Any]:
    workflow = f"{tmpl['name']}-e2e"

    def executor(name: str) -> dict[str, Any]:
        container = {"name": name, "image": EXECUTOR_IMAGE, "command": ["argoexec", name],
                     "env": [{"name": "ARGO_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}
        if executor_sc is not None:
            container["securityContext"] = copy.deepcopy(executor_sc)
        return container

    main = copy.deepcopy(tmpl["container"])
    main["name"] = "main"
    main["command"] = ["/var/run/argo/argoexec", "emissary", "--", *main.get("command", [])]
    wait = executor("wait")
    init = executor("init")

    volumes = [{"name": "var-run-argo", "emptyDir": {}}, {"name": "tmp-dir-argo", "emptyDir": {}},
               *copy.deepcopy(tmpl.get("volumes", []))]
    # Workflow-level volumes are added when a container mounts them (addVolumeReferences).
    mounted = {m["name"] for m in main.get("volumeMounts", [])}
    volumes += [copy.deepcopy(v) for v in wf_spec.get("volumes", []) if v["name"] in mounted]
    artifacts = tmpl.get("inputs", {}).get("artifacts", [])
    if artifacts:
        volumes.append({"name": "input-artifacts", "emptyDir": {}})
        init["volumeMounts"] = [{"name": "input-artifacts", "mountPath": "/argo/inputs/artifacts"},
                                *({**m, "mountPath": "/mainctrfs" + m["mountPath"]}
                                  for m in main.get("volumeMounts", []))]
        main.setdefault("volumeMounts", []).extend(
            {"name": "input-artifacts", "mountPath": a["path"], "subPath": a["name"]} for a in artifacts)
    # The wait container mirrors the main container's mounts under /mainctrfs to collect outputs.
    wait["volumeMounts"] = [{**m, "mountPath": "/mainctrfs" + m["mountPath"]} for m in main.get("volumeMounts", [])
                            if m["name"] != "input-artifacts"]
    for container in (init, wait, main):
        container.setdefault("volumeMounts", []).append(dict(VAR_RUN_ARGO))
    wait["volumeMounts"].append({"name": "tmp-dir-argo", "mountPath": "/tmp", "subPath": "0"})

    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "volumes": volumes,
                                "initContainers": [init], "containers": [wait, main]}
    if wf_spec.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = tmpl.get("serviceAccountName") or wf_spec["serviceAccountName"]
    automount = tmpl.get("automountServiceAccountToken", wf_spec.get("automountServiceAccountToken"))
    if automount is False:
        pod_spec["automountServiceAccountToken"] = False
    for field, wf_field in (("nodeSelector", "nodeSelector"), ("affinity", "affinity"),
                            ("tolerations", "tolerations"), ("schedulerName", "schedulerName"),
                            ("priorityClassName", "podPriorityClassName"), ("securityContext", "securityContext")):
        value = tmpl.get(field) or wf_spec.get(wf_field)
        if value:
            pod_spec[field] = copy.deepcopy(value)
    for patch in (wf_spec.get("podSpecPatch"), tmpl.get("podSpecPatch")):
        if patch:
            pod_spec = strategic_merge(pod_spec, json.loads(json.dumps(yaml.safe_load(patch))))

    labels = {"workflows.argoproj.io/workflow": workflow, "workflows.argoproj.io/completed": "false"}
    annotations = {"workflows.argoproj.io/node-name": workflow, "kubectl.kubernetes.io/default-container": "main"}
    for meta in (wf_spec.get("podMetadata") or {}, tmpl.get("metadata") or {}):
        labels.update(meta.get("labels") or {})
        annotations.update(meta.get("annotations") or {})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{workflow}-{tmpl['name']}-1", "namespace": namespace,
                         "labels": labels, "annotations": annotations},
            "spec": pod_spec}


# --- Flux Operator -----------------------------------------------------------------------------------------------

def flux_operator_pod(minicluster: dict[str, Any]) -> dict[str, Any]:
    """A pod of the MiniCluster's indexed Job (Flux Operator 0.2.1, MiniCluster v1alpha2)."""
    name, namespace = minicluster["metadata"]["name"], minicluster["metadata"]["namespace"]
    spec = minicluster["spec"]
    pod = spec.get("pod") or {}
    flux = (spec.get("flux") or {}).get("container") or {}
    view_name = flux.get("name", "flux-view")
    entrypoint = f"{name}-entrypoint"
    mounts = [{"name": view_name, "mountPath": flux.get("mountPath", "/mnt/flux")},
              {"name": entrypoint, "mountPath": "/flux_operator/", "readOnly": True}]
    containers = spec.get("containers", [])
    runners = [c.get("runFlux", False) or len(containers) == 1 for c in containers]
    built = []
    for i, (container, runs_flux) in enumerate(zip(containers, runners)):
        security = container.get("securityContext") or {}
        env = [{"name": k, "value": v} for k, v in (container.get("environment") or {}).items()]
        env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref["key"]}}}
                for k, ref in (container.get("secrets") or {}).items()]
        item = {"name": name if runs_flux else container["name"], "image": container["image"],
                "imagePullPolicy": "IfNotPresent", "volumeMounts": copy.deepcopy(mounts), "stdin": True, "tty": True,
                "securityContext": {"privileged": bool(security.get("privileged", False)),
                                    "capabilities": {"add": list(security.get("addCapabilities", []))}}}
        if runs_flux:
            item["command"] = ["/bin/bash", f"/flux_operator/wait-{i}.sh"]
        if env:
            item["env"] = env
        built.append(item)
    labels = {**(pod.get("labels") or {}), "namespace": namespace, "app.kubernetes.io/name": name,
              "hpa-selector": name, "job-name": name, "batch.kubernetes.io/job-completion-index": "0"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-0-e2e", "namespace": namespace, "labels": labels,
                         "annotations": dict(pod.get("annotations") or {})},
            "spec": {
                "subdomain": (spec.get("network") or {}).get("headlessName", "flux-service"),
                "hostname": f"{name}-0", "shareProcessNamespace": False, "setHostnameAsFQDN": False,
                "restartPolicy": "OnFailure", "automountServiceAccountToken": bool(pod.get("automountServiceAccountToken")),
                **({"serviceAccountName": pod["serviceAccountName"]} if pod.get("serviceAccountName") else {}),
                **({"nodeSelector": pod["nodeSelector"]} if pod.get("nodeSelector") else {}),
                "volumes": [{"name": view_name, "emptyDir": {}},
                            {"name": entrypoint, "configMap": {"name": entrypoint, "items": [
                                {"key": f"wait-{i}", "path": f"wait-{i}.sh", "mode": 0o777}
                                for i, runs in enumerate(runners) if runs] + [
                                {"key": view_name, "path": "flux-init.sh", "mode": 0o777},
                                {"key": "curve.cert", "path": "curve.cert"}]}}],
                "initContainers": [{"name": view_name, "image": flux.get("image", FLUX_VIEW_IMAGE),
                                    "command": ["/bin/bash", "/flux_operator/flux-init.sh"],
                                    "imagePullPolicy": "IfNotPresent", "volumeMounts": copy.deepcopy(mounts),
                                    "stdin": True, "tty": True}],
                "containers": built,
            }}
