#!/usr/bin/env bash
# Builds etcd from go.etcd.io/etcd/server/v3 (the module whose main package is the etcd server) at a pinned
# 3.6 release, from the Go module proxy only, into .engines/etcd-<version>/bin (cached).
#
# server/v3 replaces its sibling modules (api, client, pkg) with ../ paths that a dependent cannot use, so it
# is built as a tool of a generated wrapper module (wrapper.sh) that restates each sibling at the same release.
set -euo pipefail

ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.engines/etcd-$ETCD_VERSION"

if [[ -x $dest/bin/etcd ]]; then
    echo "etcd: $ETCD_VERSION cached in $dest/bin"
    exit 0
fi

source "$(dirname "$0")/wrapper.sh"
prepare_work "$dest"
fetch_upstream "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
write_wrapper etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" go.etcd.io/etcd/server/v3

cd "$work"
time go mod tidy
time go build -p 2 -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${commit:-${ETCD_VERSION}}" \
    -o "$dest/bin.tmp/etcd" go.etcd.io/etcd/server/v3
"$dest/bin.tmp/etcd" --version
mv "$dest/bin.tmp" "$dest/bin"
echo "etcd: built $ETCD_VERSION into $dest/bin"
