#!/usr/bin/env bash
# Builds etcd from go.etcd.io/etcd/server/v3 (the module whose main package is the etcd server) at a pinned
# 3.6 release, from the Go module proxy only, into .engines/etcd-<version>/bin (cached).
#
# server/v3 replaces its sibling modules (api, client, pkg) with ../ paths that a dependent cannot use, so it
# is built as a tool of a generated wrapper module that restates each sibling at the same release.
set -euo pipefail

ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.engines/etcd-$ETCD_VERSION"

if [[ -x $dest/bin/etcd ]]; then
    echo "etcd: $ETCD_VERSION cached in $dest/bin"
    exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
work="$dest/src"
rm -rf "$work" "$dest/bin.tmp"
mkdir -p "$work"

info=$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
upstream_mod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p' <<<"$info")
commit=$(sed -n 's/^[[:space:]]*"Hash": "\(.*\)",*$/\1/p' <<<"$info" | head -n1)

{
    echo "module tenancy.local/engines/etcd"
    echo
    grep -E '^(go|godebug) ' "$upstream_mod"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    echo "tool go.etcd.io/etcd/server/v3"
    echo
    echo "replace ("
    # Every "go.etcd.io/etcd/x/v3 => ../x" of the upstream go.mod, restated at the same release.
    sed -n 's#^[[:space:]]*\(go\.etcd\.io/etcd/[a-z0-9/]*\) => \.\./.*#\1#p' "$upstream_mod" |
        while read -r mod; do echo "	$mod => $mod $ETCD_VERSION"; done
    echo ")"
} >"$work/go.mod"

cd "$work"
time go mod tidy
time go build -p 2 -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${commit:-${ETCD_VERSION}}" \
    -o "$dest/bin.tmp/etcd" go.etcd.io/etcd/server/v3
"$dest/bin.tmp/etcd" --version
mv "$dest/bin.tmp" "$dest/bin"
echo "etcd: built $ETCD_VERSION into $dest/bin"
