#!/usr/bin/env bash
# Fetches the upstream CRDs of every custom kind tenancy emits from the projects' published Go modules (the
# Go module proxy is the registry; nothing is copied into the repository) into
# .engines/crds/<project>-<version>/*.yaml. Cached per project and version.
#
# The versions are the README's tested prerequisites ("Kubernetes prerequisites"); tests/crds.py reads the
# folders this writes. A project whose module the proxy does not serve is recorded in
# .engines/crds/unavailable.txt instead of failing the whole run, and the tests that need it say so.
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
    # Flux Operator tags are "0.2.1" / "0.1.1" (not semver), so the proxy serves them only as pseudo-versions
    # of the tagged commits: 0.2.1 serves MiniCluster v1alpha2, 0.1.1 serves v1alpha1.
    "flux-operator-0.2.1 v0.0.0-20240816012424-a7fce054906d github.com/flux-framework/flux-operator config/crd/bases
        flux-framework.org_miniclusters.yaml"
    "flux-operator-0.1.1 v0.0.0-20230901175708-967c3c8a80fb github.com/flux-framework/flux-operator config/crd/bases
        flux-framework.org_miniclusters.yaml"
)

unavailable=()
for entry in "${SOURCES[@]}"; do
    read -r project version module folder files <<<"$(tr -s ' \n' ' ' <<<"$entry")"
    # Flux entries carry their release in the project name; the others take the module version.
    [[ $project == *-[0-9]* ]] && dir="$out/$project" || dir="$out/$project-$version"
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

printf '%s\n' "${unavailable[@]}" | sed '/^$/d' >"$out/unavailable.txt"
