#!/usr/bin/env bash
# Builds the Pulumi CLI (github.com/pulumi/pulumi/pkg/v3, cmd/pulumi) from the Go module proxy only, into
# .engines/pulumi-<version>/bin/pulumi (cached). The e2e suite drives it through the Automation API
# (tests/e2e/pulumi_engine.py); nothing else uses it.
#
# Why a wrapper module: pkg/v3's go.mod replaces sdk/v3 with ../sdk and github.com/atotto/clipboard with a fork;
# replace directives apply only to the main module, so `go install ...@version` refuses. The wrapper requires
# pkg/v3 and restates both: sdk/v3 at the same release, the clipboard fork at pkg/v3's own pin.
# v3.270.0-v3.273.0 are refused by the proxy; v3.274.0 is the oldest served release above the Python SDK (3.272).
set -euo pipefail

PULUMI_VERSION=${PULUMI_VERSION:-v3.274.0}   # keep in step with docs/compatibility.md and tests/e2e/pulumi_engine.py
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.engines/pulumi-$PULUMI_VERSION"

if [[ -x $dest/bin/pulumi ]]; then
    echo "pulumi: $PULUMI_VERSION cached in $dest/bin"
    exit 0
fi

source "$(dirname "$0")/wrapper.sh"
prepare_work "$dest"
fetch_upstream "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION"
write_wrapper pulumi github.com/pulumi/pulumi/pkg/v3 "$PULUMI_VERSION" "$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
clipboard=$(sed -n 's#^replace github.com/atotto/clipboard => \(.*\)$#\1#p' "$upstream_mod")
[[ -n $clipboard ]] || { echo "pulumi: pkg/v3 $PULUMI_VERSION no longer replaces atotto/clipboard; revisit this recipe" >&2; exit 1; }
(cd "$work" && go mod edit -replace "github.com/atotto/clipboard=${clipboard// /@}")

cd "$work"
time go mod tidy
time go build -p 2 -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$dest/bin.tmp/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
"$dest/bin.tmp/pulumi" version
cd "$root"
rm -rf "$work"
mv "$dest/bin.tmp" "$dest/bin"
echo "pulumi: built $PULUMI_VERSION into $dest/bin"
