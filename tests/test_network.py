"""CIDR rules never reach the cluster's pods or Services.

A NetworkPolicy `ipBlock` matches an address in `cidr` and in none of `except` (Kubernetes
`pkg/apis/networking/types.go`, IPBlock); whether it also matches pod IPs is the CNI's choice, and several do
(Calico, Cilium by default), so a rule from `0.0.0.0/0` or `10.0.0.0/8` would admit every other tenant's pods.
The stacks name their pod and Service ranges (`tenancy:kubernetes.podCidrs`/`serviceCidrs`); every ipBlock a
tenant's policies hold must leave them out, or the CIDR is refused where it is written.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from components import settings
from components.problems import InvalidInput
from tests.conftest import render, sample
from tests.test_settings import BASE, messages

STACKS = ("dev", "staging", "prod")


def _matches(block: dict, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip in ipaddress.ip_network(block["cidr"]) and not any(ip in ipaddress.ip_network(e)
                                                                for e in block.get("except", []))


def _probes(ranges: list[str]) -> list[str]:
    """The first, a middle and the last address of each range."""
    found = []
    for cidr in ranges:
        network = ipaddress.ip_network(cidr)
        found += [str(network[0]), str(network[network.num_addresses // 2]), str(network[-1])]
    return found


def _blocks(result) -> list[tuple[str, dict]]:
    return [(f"{m['metadata']['namespace']}/{m['metadata']['name']}", peer["ipBlock"])
            for _, m in result.manifests() if m["kind"] == "NetworkPolicy"
            for rule in m["spec"].get("ingress", []) + m["spec"].get("egress", [])
            for peer in rule.get("from", rule.get("to", [])) if "ipBlock" in peer]


def _assert_no_block_reaches_the_cluster(result, stack: str) -> None:
    kubernetes = settings.load_stack(__import__("tests.conftest").conftest.PROJECT, stack).kubernetes
    reached = {(policy, address) for policy, block in _blocks(result) for address in _probes(kubernetes.cluster_ranges)
               if _matches(block, address)}
    assert reached == set()


@pytest.mark.parametrize("stack", STACKS)
def test_no_rendered_ip_block_reaches_a_pod_or_service(stack):
    _assert_no_block_reaches_the_cluster(sample(stack), stack)


WIDE = """
tenants:
  - name: edge
    team: e
    repo: {url: "https://github.com/calypr/edge.git"}
    network: {loadBalancerCidrs: ["0.0.0.0/0", "100.0.0.0/8"], allowEgressToInternet: true}
"""


def test_a_load_balancer_range_around_the_cluster_is_excepted_from_it(tmp_path):
    result = render("dev", WIDE, tmp_path)
    _assert_no_block_reaches_the_cluster(result, "dev")
    (ingress,) = [m for _, m in result.manifests() if m["kind"] == "NetworkPolicy"
                  and m["metadata"]["name"] == "allow-ingress-controller"]
    blocks = [peer["ipBlock"] for peer in ingress["spec"]["ingress"][0]["from"]]
    assert blocks == [{"cidr": "0.0.0.0/0", "except": ["100.64.0.0/16", "172.20.0.0/16"]},
                      {"cidr": "100.0.0.0/8", "except": ["100.64.0.0/16"]}]
    assert _matches(blocks[0], "203.0.113.7")  # load balancers still reach the tenant


@pytest.mark.parametrize("cidr", ["100.64.0.0/24", "172.20.1.0/24", "100.64.0.0/16"])
def test_a_load_balancer_range_inside_the_cluster_is_refused(tmp_path, cidr):
    with pytest.raises(InvalidInput) as caught:
        render("dev", WIDE.replace('"100.0.0.0/8"', f'"{cidr}"'), tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        f"tenants.yaml: tenants[0] (name=edge).network.loadBalancerCidrs: {cidr!r} lies inside the cluster's pod or "
        f"Service range {'100.64.0.0/16' if cidr.startswith('100') else '172.20.0.0/16'!r} (tenancy:kubernetes."
        "podCidrs/serviceCidrs of stack 'dev'): ingress from it would admit other tenants' pods; name the load "
        "balancers' own subnets"]


def test_without_named_ranges_every_private_range_counts_as_the_clusters():
    """`10.0.0.0/8` is refused by a stack that does not say where its pods are; the sample's API server range
    too, until podCidrs and serviceCidrs are given."""
    kubernetes = {"apiServerCidrs": ["10.10.0.0/16"]}
    assert messages({**BASE, "tenancy:kubernetes": json.dumps(kubernetes)}) == [
        "Pulumi.dev.yaml: tenancy:kubernetes.apiServerCidrs: '10.10.0.0/16' lies inside the cluster's pod or Service "
        "range '10.0.0.0/8': egress there would reach other tenants' pods; name the control plane's own subnets, or "
        "set podCidrs and serviceCidrs to the cluster's ranges"]
    named = {**kubernetes, "podCidrs": ["10.10.128.0/17"], "serviceCidrs": ["172.20.0.0/16"]}
    loaded = settings.from_config({**BASE, "tenancy:kubernetes": json.dumps(named)}, stack="dev")
    from components import naming, network

    (policy,) = [p for p in [network.workflow_egress(naming.derive("calypr", "dev", "a"), loaded.kubernetes)] if p]
    assert policy["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.10.0.0/16", "except": ["10.10.128.0/17"]}}]
