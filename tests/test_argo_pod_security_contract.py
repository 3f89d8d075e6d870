"""Contract: the pods Argo's controller builds from the rendered WorkflowTemplate pass the namespace's Pod Security.

Pod construction replays argo-workflows `workflow/controller/workflowpod.go` (`createWorkflowPod`,
`newExecContainer`, `newInitContainer`, `newWaitContainer`) at v3.4.0 and v3.7.18:
- `main` is the template's container merged over the controller's `mainContainer` defaults (strategic merge);
- `init` (init container) and `wait` get `executor.securityContext` from the controller's configuration,
  nothing from the template;
- the pod security context is the template's, else the workflow spec's (here: the WorkflowTemplate's, which
  `workflowTemplateRef` merges into the executed spec);
- the podSpecPatch strings are applied last as Kubernetes strategic merge patches on the PodSpec: v3.4/v3.5
  first merge the workflow's patch with the template's (`util.PodSpecPatchMerge`) and apply the result; v3.6+
  apply the workflow's and then the template's in turn (`util.ApplyPodSpecPatch`, workflow/util/util.go).
The strategic merge replayed is k8s.io/apimachinery `pkg/util/strategicpatch` for the fields involved: maps merge
recursively, `null` deletes, `containers`/`initContainers` merge by `name` (patchMergeKey in k8s.io/api
core/v1 types.go), every other list (`capabilities.add`, `drop`) is replaced. (Its results for the default and
hostile configurations, with and without a workflow-level patch, were compared once with Go's
`strategicpatch.StrategicMergePatch` v0.33.4 on the same inputs, both ways of applying: identical.)

Admission replays k8s.io/pod-security-admission v0.33 `policy/check_*.go` for the checks any of these pods can
touch (baseline: privileged, capabilities_baseline, hostNamespaces, hostPathVolumes, hostPorts, procMount,
seLinuxOptions, seccompProfile_baseline; restricted adds allowPrivilegeEscalation, capabilities_restricted,
runAsNonRoot, runAsUser, seccompProfile_restricted, restrictedVolumes).

Controller configurations: Argo's default (no executor security context), and a hostile one that makes every
executor and main container privileged root with added capabilities and no seccomp: the template must be
admitted whatever the platform configured.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Optional

import pytest

from components import argo

from .conftest import sample

STACKS = ("dev", "staging", "prod")
MERGE_BY_NAME = {"containers", "initContainers", "volumes", "env", "imagePullSecrets"}

DEFAULT_CONFIG: dict[str, Any] = {"executor": {}, "mainContainer": None}
HOSTILE_SC = {"privileged": True, "allowPrivilegeEscalation": True, "runAsUser": 0, "runAsNonRoot": False,
              "capabilities": {"add": ["SYS_ADMIN", "NET_RAW"]}, "seccompProfile": {"type": "Unconfined"}}
HOSTILE_CONFIG: dict[str, Any] = {"executor": {"securityContext": HOSTILE_SC},
                                  "mainContainer": {"securityContext": HOSTILE_SC}}
CONFIGS = {"default": DEFAULT_CONFIG, "hostile": HOSTILE_CONFIG}


# --- strategic merge (k8s.io/apimachinery pkg/util/strategicpatch, the subset PodSpec patches here use) ---

def strategic_merge(original: Any, patch: Any, key: str = "") -> Any:
    if not isinstance(patch, dict) or not isinstance(original, dict):
        if isinstance(patch, list) and isinstance(original, list) and key in MERGE_BY_NAME:
            return _merge_list_by_name(original, patch)
        return copy.deepcopy(patch)
    merged = copy.deepcopy(original)
    for k, v in patch.items():
        if v is None:
            merged.pop(k, None)
        elif k in merged:
            merged[k] = strategic_merge(merged[k], v, k)
        else:
            merged[k] = _without_nulls(v)
    return merged


def _merge_list_by_name(original: list, patch: list) -> list:
    merged = [copy.deepcopy(item) for item in original]
    for item in patch:
        at = next((i for i, o in enumerate(merged) if o.get("name") == item.get("name")), None)
        if at is None:
            merged.append(_without_nulls(item))
        else:
            merged[at] = strategic_merge(merged[at], item)
    return merged


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return copy.deepcopy(value)


# --- the pod Argo's controller creates for the template's step ---

def controller_pod(template: dict[str, Any], config: dict[str, Any], version: str,
                   workflow_patch: Optional[str] = None) -> dict[str, Any]:
    """The pod of the WorkflowTemplate's entrypoint step, submitted through `workflowTemplateRef`."""
    wf_spec = template["spec"]
    tmpl = next(t for t in wf_spec["templates"] if t["name"] == wf_spec["entrypoint"])
    main = dict(tmpl["container"], name=argo.MAIN)
    if config["mainContainer"]:
        main = strategic_merge(config["mainContainer"], main)

    def exec_container(name: str) -> dict[str, Any]:
        container = {"name": name, "image": "quay.io/argoproj/argoexec:v3.7.18",
                     "command": ["argoexec", name], "volumeMounts": [{"name": "var-run-argo",
                                                                       "mountPath": "/var/run/argo"}]}
        if config["executor"].get("securityContext") is not None:
            container["securityContext"] = copy.deepcopy(config["executor"]["securityContext"])
        return container

    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": wf_spec["serviceAccountName"],
        "volumes": [*copy.deepcopy(wf_spec.get("volumes", [])), {"name": "var-run-argo", "emptyDir": {}},
                    {"name": "input-artifacts", "emptyDir": {}}],
        "containers": [exec_container(argo.EXECUTOR_WAIT), main],
        "initContainers": [exec_container(argo.EXECUTOR_INIT)],
    }
    pod_sc = tmpl.get("securityContext") or wf_spec.get("securityContext")
    if pod_sc is not None:
        spec["securityContext"] = copy.deepcopy(pod_sc)
    for field in ("nodeSelector", "tolerations"):
        if field in tmpl or field in wf_spec:
            spec[field] = copy.deepcopy(tmpl.get(field, wf_spec.get(field)))

    patches = [p for p in (workflow_patch or wf_spec.get("podSpecPatch"), tmpl.get("podSpecPatch")) if p]
    if version in ("v3.4", "v3.5") and patches:
        merged: dict[str, Any] = {}
        for p in patches:
            merged = strategic_merge(merged, json.loads(p))
        patches = [json.dumps(merged)]
    for p in patches:
        spec = strategic_merge(spec, json.loads(p))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "run", "namespace": template["metadata"]["namespace"]},
            "spec": spec}


# --- Pod Security admission (k8s.io/pod-security-admission v0.33 policy/check_*.go) ---

BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                 "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def pod_security_violations(pod: dict[str, Any], level: str) -> list[str]:
    if level == "privileged":
        return []
    spec = pod["spec"]
    psc = spec.get("securityContext") or {}
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    found: list[str] = []
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            found.append(f"host namespaces ({host})")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            found.append(f"hostPath volume {volume['name']}")
        if level == "restricted" and not kinds <= RESTRICTED_VOLUMES:
            found.append(f"restricted volume types {volume['name']}")
    for sc_owner, sc in [("pod", psc)] + [(c["name"], c.get("securityContext") or {}) for c in containers]:
        selinux = sc.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            found.append(f"seLinuxOptions ({sc_owner})")
        if (sc.get("seccompProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
            found.append(f"seccompProfile ({sc_owner})")
        if level == "restricted" and sc.get("runAsUser") == 0:
            found.append(f"runAsUser=0 ({sc_owner})")
    if level == "restricted" and psc.get("runAsNonRoot") is False:
        found.append("runAsNonRoot=false (pod)")
    for c in containers:
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        if sc.get("privileged"):
            found.append(f"privileged ({c['name']})")
        if set(caps.get("add") or []) - BASELINE_CAPS:
            found.append(f"non-default capabilities ({c['name']})")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"hostPort ({c['name']})")
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"procMount ({c['name']})")
        if level != "restricted":
            continue
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"allowPrivilegeEscalation != false ({c['name']})")
        if "ALL" not in (caps.get("drop") or []) or set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"unrestricted capabilities ({c['name']})")
        if sc.get("runAsNonRoot") is False or (sc.get("runAsNonRoot") is None and psc.get("runAsNonRoot") is not True):
            found.append(f"runAsNonRoot != true ({c['name']})")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"seccompProfile not set ({c['name']})")
    return found


# --- the contract ---

def _templates(stack: str) -> list[tuple[dict[str, Any], str]]:
    """(WorkflowTemplate, enforced level of its namespace) for every tenant that has one."""
    manifests = [m for _, m in sample(stack).manifests()]
    levels = {m["metadata"]["name"]: m["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
              for m in manifests if m["kind"] == "Namespace"}
    found = [(m, levels[m["metadata"]["namespace"]]) for m in manifests if m["kind"] == "WorkflowTemplate"]
    assert found, f"{stack}: no WorkflowTemplate rendered"
    return found


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("version", ["v3.4", "v3.5", "v3.6", "v3.7"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_workflow_pods_pass_their_namespaces_pod_security(stack, version, config):
    for template, level in _templates(stack):
        patch = next(t for t in template["spec"]["templates"] if t["name"] == template["spec"]["entrypoint"])["podSpecPatch"]
        assert "{{" not in patch, "Argo would substitute workflow variables into the patch"
        pod = controller_pod(template, CONFIGS[config], version)
        assert [c["name"] for c in pod["spec"]["initContainers"]] == [argo.EXECUTOR_INIT]
        assert [c["name"] for c in pod["spec"]["containers"]] == [argo.EXECUTOR_WAIT, argo.MAIN], \
            "the patch must not add a container Argo did not create"
        for enforced in {level, "restricted"}:
            assert pod_security_violations(pod, enforced) == [], (template["metadata"]["namespace"], enforced)


def test_a_workflow_level_patch_cannot_undo_the_template_hardening():
    """A submitter's own podSpecPatch is applied before the template's (v3.6+) or merged under it (v3.4/v3.5)."""
    user_patch = json.dumps({"initContainers": [{"name": "init", "securityContext": HOSTILE_SC}],
                             "containers": [{"name": "wait", "securityContext": HOSTILE_SC}]})
    for version in ("v3.4", "v3.7"):
        for template, _ in _templates("dev"):
            pod = controller_pod(template, DEFAULT_CONFIG, version, workflow_patch=user_patch)
            assert pod_security_violations(pod, "restricted") == []


def test_without_the_patch_argo_executor_containers_are_refused_at_restricted():
    """The failure the template's podSpecPatch exists for, and proof the replay can refuse a pod."""
    template, _ = _templates("dev")[0]
    bare = copy.deepcopy(template)
    for tmpl in bare["spec"]["templates"]:
        tmpl.pop("podSpecPatch", None)
    violations = pod_security_violations(controller_pod(bare, DEFAULT_CONFIG, "v3.7"), "restricted")
    assert any("(init)" in v for v in violations) and any("(wait)" in v for v in violations), violations
    assert not any("(main)" in v for v in violations), violations


def test_strategic_merge_replay_merges_containers_by_name_and_replaces_plain_lists():
    original = {"containers": [{"name": "wait", "image": "x", "securityContext": {"capabilities": {"add": ["A"]},
                                                                                "runAsUser": 0}}]}
    patch = {"containers": [{"name": "wait", "securityContext": {"capabilities": {"add": [], "drop": ["ALL"]},
                                                                 "runAsUser": None}}]}
    assert strategic_merge(original, patch) == {
        "containers": [{"name": "wait", "image": "x", "securityContext": {"capabilities": {"add": [], "drop": ["ALL"]}}}]}
