"""Network isolation of a tenant namespace: deny everything, then allow exactly what the tenant needs.

Kubernetes NetworkPolicies are additive allow-lists once a default deny selects every pod, so each
function below adds one reason for traffic to flow. No rule ever uses an empty namespaceSelector (that
selects every namespace in the cluster); other namespaces are always named by label.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Sequence

from . import naming
from .catalogue import TenantSpec
from .naming import TenantNames
from .settings import KubernetesSettings

NETWORK_API = "networking.k8s.io/v1"
INTERNET = "0.0.0.0/0"
METADATA_CIDR = "169.254.169.254/32"
# Excluded from every "internet" rule. The metadata address hands out the node's cloud credentials (named on
# its own although link-local covers it, so a reader or policy check finds it); the rest of link-local holds
# the EKS Pod Identity agent; the private and shared ranges hold other tenants' pods, services and nodes,
# which only the same-tenant rule may reach.
NON_INTERNET_CIDRS = (METADATA_CIDR, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
# Argo labels every pod of a workflow with it; only those pods need the API server and the artifact store.
WORKFLOW_POD_LABEL = "workflows.argoproj.io/workflow"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _policy(names: TenantNames, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": NETWORK_API,
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": names.namespace},
        "spec": spec,
    }


def _block(cidr: str, excluded: Sequence[str]) -> dict[str, Any]:
    """An ipBlock for `cidr` minus every range of `excluded` inside it. A `cidr` inside an excluded range is
    refused where it is configured (settings, catalogue), so it never reaches here."""
    network = ipaddress.ip_network(cidr)
    inside = [
        c
        for c in dict.fromkeys(excluded)
        if ipaddress.ip_network(c).version == network.version
        and ipaddress.ip_network(c).subnet_of(network)
        and ipaddress.ip_network(c) != network
    ]
    block: dict[str, Any] = {"cidr": cidr}
    if inside:
        block["except"] = inside
    return {"ipBlock": block}


def _public(cidr: str, kubernetes: KubernetesSettings) -> dict[str, Any]:
    """An ipBlock for `cidr` minus the private, link-local and metadata ranges and the cluster's own (those not
    already inside one of the others: a pod range within 100.64.0.0/10 adds nothing)."""
    excluded = [ipaddress.ip_network(c) for c in NON_INTERNET_CIDRS]
    own = [
        c
        for c in kubernetes.cluster_ranges
        if not any(
            e.version == ipaddress.ip_network(c).version and ipaddress.ip_network(c).subnet_of(e) for e in excluded
        )
    ]
    return _block(cidr, [*NON_INTERNET_CIDRS, *own])


def default_deny(names: TenantNames) -> dict[str, Any]:
    return _policy(names, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})


def same_tenant(spec: TenantSpec, names: TenantNames, org: str) -> dict[str, Any]:
    """Traffic among all namespaces of this tenant, picked by the org and tenant labels tenants cannot set.

    Both labels: another org's stack on the same cluster labels its own same-named tenant's namespaces with the
    same tenant value.
    """
    peer = [{"namespaceSelector": {"matchLabels": {naming.ORG_LABEL: org, naming.TENANT_LABEL: spec.name}}}]
    return _policy(
        names,
        "allow-same-tenant",
        {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": peer}],
            "egress": [{"to": peer}],
        },
    )


def dns(names: TenantNames, kubernetes: KubernetesSettings) -> dict[str, Any]:
    return _policy(
        names,
        "allow-dns",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: kubernetes.dns_namespace}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        },
    )


def ingress(spec: TenantSpec, names: TenantNames, kubernetes: KubernetesSettings) -> dict[str, Any] | None:
    """From the catalogue's ingress-controller pods and load-balancer ranges; None when it names neither.

    The ranges never cover the cluster's pod and Service ranges (excepted here; a range inside them is refused
    by the catalogue): on CNIs whose ipBlocks match pod IPs, `0.0.0.0/0` would otherwise admit every other
    tenant's pods.

    Without namespaceLabels a podSelector alone matches pods of this namespace only (Kubernetes semantics),
    which is the safe reading: widening it to every namespace would need the forbidden empty selector.
    """
    peers: list[dict[str, Any]] = []
    controller = spec.network.ingress
    if controller.pod_labels:
        peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(controller.pod_labels)}}
        if controller.namespace_labels:
            peer["namespaceSelector"] = {"matchLabels": dict(controller.namespace_labels)}
        peers.append(peer)
    peers.extend(_block(cidr, kubernetes.cluster_ranges) for cidr in spec.network.load_balancer_cidrs)
    if not peers:
        return None
    return _policy(
        names, "allow-ingress-controller", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": peers}]}
    )


def workflow_egress(names: TenantNames, kubernetes: KubernetesSettings) -> dict[str, Any] | None:
    """Argo's executor reports to the API server and moves artifacts to and from the store over HTTPS."""
    rules = []
    if kubernetes.api_server_cidrs:
        rules.append(
            {
                "to": [_block(c, kubernetes.cluster_ranges) for c in kubernetes.api_server_cidrs],
                "ports": [{"protocol": "TCP", "port": kubernetes.api_server_port}],
            }
        )
    if kubernetes.artifact_store_cidrs:
        rules.append(
            {
                "to": [_public(c, kubernetes) for c in kubernetes.artifact_store_cidrs],
                "ports": [{"protocol": "TCP", "port": 443}],
            }
        )
    if not rules:
        return None
    return _policy(
        names,
        "allow-workflow-executor",
        {
            "podSelector": {"matchExpressions": [{"key": WORKFLOW_POD_LABEL, "operator": "Exists"}]},
            "policyTypes": ["Egress"],
            "egress": rules,
        },
    )


def internet_egress(spec: TenantSpec, names: TenantNames, kubernetes: KubernetesSettings) -> dict[str, Any] | None:
    if not spec.network.allow_egress_to_internet:
        return None
    return _policy(
        names,
        "allow-internet-egress",
        {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [_public(INTERNET, kubernetes)]}]},
    )


def network_policies(
    spec: TenantSpec, names: TenantNames, org: str, kubernetes: KubernetesSettings
) -> list[dict[str, Any]]:
    optional = (
        ingress(spec, names, kubernetes),
        workflow_egress(names, kubernetes),
        internet_egress(spec, names, kubernetes),
    )
    return [
        default_deny(names),
        same_tenant(spec, names, org),
        dns(names, kubernetes),
        *(policy for policy in optional if policy is not None),
    ]
