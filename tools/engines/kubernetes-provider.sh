#!/usr/bin/env bash
# Builds the Pulumi Kubernetes provider plugin (github.com/pulumi/pulumi-kubernetes/provider/v4,
# cmd/pulumi-resource-kubernetes) from the Go module proxy only, into
# .engines/pulumi-kubernetes-<version>/bin/pulumi-resource-kubernetes (cached). The e2e suite installs it into a
# Pulumi home of its own; the engine loads it by exact version, which is why requirements pin the Python SDK
# pulumi-kubernetes to the same version.
#
# The proxy serves provider/v4 at one version only: the pseudo-version of tag v4.25.0. Its go.mod replaces
# sdk/v4 with ../sdk (absent from the module zip), so the module is copied out of the module cache and built as the
# main module with the replace dropped and sdk/v4 required at v4.22.2 (later sdk/v4 releases pull an sdk/v3 with
# which this provider's pkg/v3 no longer compiles; the provider uses sdk/v4 only for shared constants). The embedded
# schema files are generated first (`go run generate.go`), as upstream's Makefile does before building.
set -euo pipefail
source "$(dirname "$0")/wrapper.sh"

K8S_PROVIDER_VERSION=${K8S_PROVIDER_VERSION:-4.25.0}   # keep in step with requirements.txt (pulumi-kubernetes==)
K8S_PROVIDER_MODULE_VERSION=${K8S_PROVIDER_MODULE_VERSION:-v4.0.0-20260115033456-f47bc2d6f199}
K8S_SDK_VERSION=${K8S_SDK_VERSION:-v4.22.2}
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.engines/pulumi-kubernetes-$K8S_PROVIDER_VERSION"

if [[ -f $dest/.complete ]]; then
    echo "pulumi-kubernetes: $K8S_PROVIDER_VERSION cached in $dest"
    exit 0
fi

copy_main_module "$dest" "github.com/pulumi/pulumi-kubernetes/provider/v4@$K8S_PROVIDER_MODULE_VERSION"

cd "$work"
go mod edit -dropreplace github.com/pulumi/pulumi-kubernetes/sdk/v4 \
    -require "github.com/pulumi/pulumi-kubernetes/sdk/v4@$K8S_SDK_VERSION"
time go mod tidy
(cd cmd/pulumi-resource-kubernetes && time VERSION=$K8S_PROVIDER_VERSION go run generate.go)  # stamps the schema with the version
time go build -p 2 -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$K8S_PROVIDER_VERSION" \
    -o "$dest/bin/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes
cd "$root"
rm -rf "$work"
touch "$dest/.complete"
echo "pulumi-kubernetes: built $K8S_PROVIDER_VERSION into $dest/bin"
