"""What Ratify's notation verifier and the Flux Operator would reject is refused at validation, naming the setting.

Notation rules: notation-go v1.3.0 verifier/trustpolicy/trustpolicy.go and internal/pkix/pkix.go, notation-core-go
v1.2.0 x509/codesigning_cert_validations.go and x509/helper.go (the versions ratify v1.4.0's go.mod requires);
ratify v1.4.0 pkg/verifier/notation/truststore.go. MiniCluster rules: flux-framework/flux-operator tags 0.1.1
(api/v1alpha1/minicluster_types.go, controllers/flux/configmap.go, controllers/flux/templates/wait.sh) and 0.2.1
(api/v1alpha2/minicluster_types.go); flux-restful-api app/core/config.py and app/db/init_db.py.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from components import minicluster, settings
from tests.conftest import PROJECT
from tests.test_catalogue_errors import DEV, problems, with_tenant
from tests.test_notation_contract import pki

GOOD_DN = "C=US, ST=Oregon, O=calypr, CN=gamma image signer"
WHERE = "tenants.yaml: tenants[2] (name=gamma)"


def _supply(tmp_path: Path, pem: str, identities: list[str]) -> str:
    (tmp_path / "anchor.pem").write_text(pem)
    return with_tenant(supplyChain=json.dumps({"enabled": True, "certificateFile": "anchor.pem",
                                               "trustedIdentities": identities}))


@pytest.fixture(scope="module")
def root():
    return pki.make_root("gamma")


def test_a_valid_root_and_leaf_identity_pass(tmp_path, root):
    assert problems(_supply(tmp_path, pki.pem(root[0]), [GOOD_DN]), tmp_path) == []


@pytest.mark.parametrize("identities, expected", [
    (["O=calypr, CN=gamma image signer"], ".supplyChain.trustedIdentities: [0] 'O=calypr, CN=gamma image signer' "
                                          "lacks C, ST; notation needs at least C, ST (or S) and O"),
    (["C=US, ST=WA, O=a, O=b"], "repeats the attribute 'O'"),
    (["C=US+ST=WA, O=calypr"], "multi-valued RDN"),
    (["C=US, ST=WA, O=#0403616263"], "containing '=#'"),
    (["*"], "a wildcard would trust every leaf of the CA"),
    (["x509.subject: " + GOOD_DN], "give the signing certificate's subject DN itself"),
    ([GOOD_DN, "C=US, ST=Oregon, O=calypr"], "trustedIdentities[0] 'C=US, ST=Oregon, O=calypr, CN=gamma image "
                                             "signer' overlaps trustedIdentities[1]"),
    (["C=US, ST=Oregon, O=calypr, CN=gamma image signing root CA"],
     ".supplyChain: trustedIdentities[0] 'C=US, ST=Oregon, O=calypr, CN=gamma image signing root CA' is the "
     "subject of the CA certificate itself"),
    ([], ".supplyChain: enabled supply-chain verification needs trustedIdentities"),
])
def test_identities_notation_refuses_are_refused(tmp_path, root, identities, expected):
    found = problems(_supply(tmp_path, pki.pem(root[0]), identities), tmp_path)
    assert len(found) == 1 and found[0].startswith(WHERE) and expected in found[0], found


def test_a_leaf_or_an_expired_root_is_no_trust_anchor(tmp_path, root):
    leaf, _ = pki.make_leaf(*root, "gamma")
    [found] = problems(_supply(tmp_path, pki.pem(leaf), [GOOD_DN]), tmp_path)
    assert found.startswith(f"{WHERE}.supplyChain.certificateFile: certificate (CN=gamma image signer,")
    assert "is not a CA certificate" in found and "give the root CA that issued it" in found
    old, _ = pki.make_root("gamma", not_before=datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc), days=10)
    [found] = problems(_supply(tmp_path, pki.pem(old), [GOOD_DN]), tmp_path)
    assert found.startswith(f"{WHERE}.supplyChain.certificateFile:") and "expired on 2001-01-11" in found
    [found] = problems(_supply(tmp_path, "not a certificate", [GOOD_DN]), tmp_path)
    # Anything but PEM certificates is refused by the confined reader before notation's rules apply.
    assert "supplyChain.certificateFile: 'anchor.pem' must hold PEM CERTIFICATE blocks and nothing else" in found


def test_the_cli_stops_before_registering_anything(tmp_path, root):
    """A refused supply chain stops `validate` with exit 1 and one located line, no traceback."""
    import subprocess
    import sys
    (tmp_path / "tenants.yaml").write_text(_supply(tmp_path, pki.pem(root[0]), ["O=calypr, CN=x"]))
    done = subprocess.run([sys.executable, "-m", "tenancy", "validate", "--stack", "dev",
                           "--tenants", str(tmp_path / "tenants.yaml")], cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert f"{WHERE}.supplyChain.trustedIdentities" in done.stderr + done.stdout


def _stack(**minicluster_settings):
    return DEV.model_copy(update={"minicluster": DEV.minicluster.model_copy(update=minicluster_settings)})


def _mc(tmp_path: Path, stack, nodes: str = "shared", **fields) -> list[str]:
    spec = {"enabled": True, **fields}
    return problems(with_tenant(isolation=json.dumps({"nodes": nodes}), minicluster=json.dumps(spec)), tmp_path,
                    stack)


def test_dedicated_minicluster_needs_admission_to_add_its_toleration(tmp_path):
    """Neither Flux Operator release has pod tolerations: the pods would select tainted nodes they cannot run on."""
    [found] = _mc(tmp_path, _stack(), nodes="dedicated", command="flux run hostname")
    assert found.startswith(f"{WHERE}.isolation.nodes: a dedicated tenant's MiniCluster pods")
    assert "tenancy:minicluster.podTolerationRestriction" in found
    assert _mc(tmp_path, _stack(pod_toleration_restriction=True), nodes="dedicated", command="flux run hostname") == []
    assert _mc(tmp_path, _stack(), nodes="shared") == []


def test_v1alpha1_never_renders_users_or_a_printed_token(tmp_path):
    """Flux Operator 0.1.1 prints user passwords, and without a command the flux-restful token, to the pod log."""
    old = _stack(api_version="v1alpha1")
    [found] = _mc(tmp_path, old, users=["alice"], command="flux run hostname")
    assert found.startswith(f"{WHERE}.minicluster.users: Flux Operator 0.1.x") and "pod log" in found
    [found] = _mc(tmp_path, old)
    assert found.startswith(f"{WHERE}.minicluster.command:") and "prints to the pod log" in found
    assert _mc(tmp_path, old, command="flux run hostname") == []


def test_v1alpha2_logs_in_one_vault_held_account(tmp_path):
    [found] = _mc(tmp_path, _stack(), users=["alice", "bob"])
    assert found.startswith(f"{WHERE}.minicluster.users: flux-restful-api logs in one account")
    assert _mc(tmp_path, _stack(), users=["alice"]) == []


@pytest.mark.parametrize("image, pinned", [
    ("ghcr.io/flux-framework/flux-restful-api:latest", False),
    ("ghcr.io/flux-framework/flux-restful-api", False),
    ("ghcr.io/converged-computing/flux-view-rocky:tag-9", False),
    ("localhost:5000/flux:main", False),
    ("ghcr.io/flux-framework/flux-restful-api:0.1.14", True),
    ("registry.example:5000/team/flux:v2.3.1-rocky", True),
    ("ghcr.io/flux-framework/flux-restful-api@sha256:" + "a" * 64, True),
    ("ghcr.io/flux-framework/flux-restful-api:latest@sha256:" + "b" * 64, True),
])
def test_a_stack_with_pinned_images_refuses_a_mutable_minicluster_image(image, pinned, tmp_path):
    """`latest` (or no tag) runs whatever was pushed last; where tenancy:pinnedImages is on (prod), a MiniCluster
    image must name a version or a digest. The default image is a version tag."""
    strict = DEV.model_copy(update={"pinned_images": True})
    found = _mc(tmp_path, strict, image=image, command="flux run hostname")
    assert found == ([] if pinned else [f"{WHERE}.minicluster.image: " + found[0].split(": ", 2)[2]])
    assert pinned or "give a version tag or a @sha256: digest" in found[0]
    assert _mc(tmp_path, DEV, image=image, command="flux run hostname") == []  # off: accepted as before
    assert _mc(tmp_path, strict, command="flux run hostname") == []  # the default is pinned
    assert settings.load_stack(PROJECT, "prod").pinned_images


def test_rendered_minicluster_fields_exist_at_the_operator_tag():
    """Every rendered key is a json field of the Go types at the tag (checked by hand against
    api/v1alpha1/minicluster_types.go @0.1.1 and api/v1alpha2/minicluster_types.go @0.2.1)."""
    from tests.test_k8s_builders import _spec
    from components import catalogue
    spec, names = _spec("compliance", minicluster=catalogue.MiniClusterSpec(enabled=True, users=["carol"],
                                                                              command="flux run hostname"))
    allowed = {
        # pod.serviceAccountName: in both SDK schemas, and not among the SDK/tag differences of test_minicluster_crd.
        "v1alpha1": {"spec": {"size", "pod", "containers", "fluxRestful"},
                     "pod": {"labels", "nodeSelector", "serviceAccountName"},
                     "container": {"image", "runFlux", "command"}},
        "v1alpha2": {"spec": {"size", "pod", "containers"}, "pod": {"labels", "nodeSelector", "serviceAccountName"},
                     "container": {"image", "secrets", "environment", "command"}},
    }
    for version, keys in allowed.items():
        body = minicluster.minicluster(spec, names, version)["spec"]
        assert set(body) <= keys["spec"] and set(body["pod"]) <= keys["pod"]
        assert set(body["containers"][0]) <= keys["container"]
        assert "tolerations" not in body["pod"] and "securityContext" not in body["pod"]


def test_both_minicluster_shapes_pass_their_crd():
    """The CRDs derived from the Flux Operator's PyPI SDK (fluxoperator 0.1.1 for v1alpha1, 0.2.0 for v1alpha2;
    tests/test_minicluster_crd.py compares them with the operator's CRDs at tags 0.1.1 and 0.2.1):
    pod.nodeSelector and containers[].secrets exist, no pod.tolerations or pod.securityContext."""
    from tests import schema_check
    from tests.test_k8s_builders import _spec
    from components import catalogue
    spec, names = _spec("compliance", minicluster=catalogue.MiniClusterSpec(enabled=True, users=["carol"],
                                                                              command="flux run hostname"))
    for version in ("v1alpha1", "v1alpha2"):
        assert schema_check.problems(minicluster.minicluster(spec, names, version)) == [], version
    tolerating = minicluster.minicluster(spec, names, "v1alpha2")
    tolerating["spec"]["pod"]["tolerations"] = [{"key": "tenancy.io/tenant", "operator": "Exists"}]
    assert schema_check.problems(tolerating)
