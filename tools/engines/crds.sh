#!/usr/bin/env bash
# Fetches the upstream CRDs of every custom kind tenancy emits from the projects' published Go modules (the
# Go module proxy is the registry; nothing is copied into the repository) into
# .engines/crds/<project>-<version>/*.yaml. Cached per project and version.
#
# The versions are the tested prerequisites of docs/compatibility.md; tests/crds.py reads the
# folders this writes. A project whose module the proxy does not serve is recorded in
# .engines/crds/unavailable.txt instead of failing the whole run, and the tests that need it say so.
# The one exception is the Flux Operator (refused by the proxy): its CRD is derived from its PyPI SDK (below).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.engines/crds"
mkdir -p "$out"
export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}

# project   version   module   folder-in-module   files (globs)
SOURCES=(
    "external-secrets v0.17.0 github.com/external-secrets/external-secrets config/crds/bases
        external-secrets.io_secretstores.yaml external-secrets.io_externalsecrets.yaml"
    # Workflow too: the tenant quota counts `count/workflows.argoproj.io`, which only a served kind fills.
    "argo-workflows v3.7.9 github.com/argoproj/argo-workflows/v3 manifests/base/crds/full
        argoproj.io_workflowtemplates.yaml argoproj.io_workflows.yaml"
    "argo-cd v3.5.7 github.com/argoproj/argo-cd/v3 manifests/crds
        application-crd.yaml applicationset-crd.yaml appproject-crd.yaml"
    "ratify v1.4.0 github.com/ratify-project/ratify config/crd/bases
        config.ratify.deislabs.io_namespaced*.yaml"
)

# The Flux Operator's Go module is refused by the proxy (403 for every version), so its MiniCluster CRD is
# derived from the operator's Python SDK on PyPI instead (tools/engines/minicluster_crd.py reads the wheel's
# openapi-generator models). fluxoperator 0.2.0 is API v1alpha2 (operator 0.2.x), 0.1.1 is v1alpha1 (0.1.x);
# the sha256 pins the wheels whose fields were compared with the operator's CRDs at tags 0.2.0, 0.2.1, 0.1.0
# and 0.1.1 (docs/compatibility.md).
# sdk-version   wheel sha256
FLUX_SDK=(
    "0.2.0 79a0ca8a43481583bcadd0b691a8683593266f9087262e8da4dda0f518e6cee8"
    "0.1.1 65bd91099dbea3ef84eca88b824bb3828fc18e59954f60b934d2ce2f90c17f25"
)

unavailable=()
for entry in "${SOURCES[@]}"; do
    read -r project version module folder files <<<"$(tr -s ' \n' ' ' <<<"$entry")"
    dir="$out/$project-$version"
    # The marker records the file list, so changing an entry refetches it.
    if [[ -f $dir/.complete && $(cat "$dir/.complete") == "$files" ]]; then
        echo "crds: $(basename "$dir") cached"
        continue
    fi
    if ! info=$(go mod download -json "$module@$version" 2>&1) || grep -q '"Error"' <<<"$info"; then
        echo "crds: $module@$version is not served by the Go module proxy; $project skipped" >&2
        unavailable+=("$(basename "$dir") $module@$version")
        continue
    fi
    moddir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' <<<"$info")
    rm -rf "$dir"
    mkdir -p "$dir"
    for pattern in $files; do
        found=0
        for f in "$moddir/$folder"/$pattern; do
            [[ -f $f ]] || continue
            install -m 0644 "$f" "$dir/"
            found=1
        done
        ((found)) || { echo "crds: $module@$version has no $folder/$pattern" >&2; exit 1; }
    done
    echo "$module@$version $folder" >"$dir/.source"
    echo "$files" >"$dir/.complete"
    echo "crds: $(basename "$dir") from $module@$version"
done

generator="$root/tools/engines/minicluster_crd.py"
for entry in "${FLUX_SDK[@]}"; do
    read -r version sha <<<"$entry"
    dir="$out/flux-operator-sdk-$version"
    # The marker records the wheel and the generator, so changing either derives the CRD again.
    marker="$sha $(sha256sum <"$generator" | cut -c1-16)"
    if [[ -f $dir/.complete && $(cat "$dir/.complete") == "$marker" ]]; then
        echo "crds: $(basename "$dir") cached"
        continue
    fi
    wheel="$root/.engines/pypi/fluxoperator-$version/fluxoperator-$version-py3-none-any.whl"
    [[ -f $wheel ]] || python3 -m pip download -q --no-deps --only-binary=:all: -d "$(dirname "$wheel")" \
        "fluxoperator==$version"
    echo "$sha  $wheel" | sha256sum -c --quiet || { echo "crds: $wheel is not the pinned wheel" >&2; exit 1; }
    rm -rf "$dir"
    mkdir -p "$dir"
    python3 "$generator" "$wheel" "$dir/flux-framework.org_miniclusters.yaml"
    echo "pypi:fluxoperator==$version $(basename "$wheel")" >"$dir/.source"
    echo "$marker" >"$dir/.complete"
    echo "crds: $(basename "$dir") derived from pypi:fluxoperator==$version"
done

# A new file, never rewritten in place: .engines may be hard-linked from another checkout (cp -al).
rm -f "$out/unavailable.txt"
printf '%s\n' "${unavailable[@]}" | sed '/^$/d' >"$out/unavailable.txt"
