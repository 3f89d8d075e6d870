#!/usr/bin/env bash
# Builds the External Secrets Operator controller (github.com/external-secrets/external-secrets, the version the
# README names) from the Go module proxy only, into .engines/external-secrets-<version>/bin, with the module's
# own CRDs (config/crds/bases) beside it in crds/ (cached: a second run returns at once). The e2e suite runs
# it against the test kube-apiserver and a real OpenBao (tests/e2e/test_external_secrets.py).
#
# Its go.mod replaces github.com/Masterminds/sprig/v3 with a fork, and a dependency's replace directives do not
# apply to a module that requires it, so `go install ...@version` refuses: the module itself is copied out of
# the module cache (read-only there) and built as the main module. main.go links every provider
# (pkg/provider/register), so the first build downloads many cloud SDKs (docs/testing.md: time and size).
set -euo pipefail
source "$(dirname "$0")/wrapper.sh"

ESO_VERSION=${ESO_VERSION:-v0.17.0}   # keep in step with docs/compatibility.md and docs/testing.md
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.engines/external-secrets-$ESO_VERSION"

if [[ -f $dest/.complete ]]; then
    echo "external-secrets: $ESO_VERSION cached in $dest"
    exit 0
fi

copy_main_module "$dest" "github.com/external-secrets/external-secrets@$ESO_VERSION"

cd "$work"
time go build -p 2 -trimpath -ldflags "-s -w" -o "$dest/bin/external-secrets" .
"$dest/bin/external-secrets" --help >/dev/null
mkdir "$dest/crds"
cp config/crds/bases/*.yaml "$dest/crds/"
rm "$dest/crds/kustomization.yaml"
cd "$root"
rm -rf "$work"
touch "$dest/.complete"
echo "external-secrets: built $ESO_VERSION into $dest"
