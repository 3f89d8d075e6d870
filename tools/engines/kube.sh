#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from k8s.io/kubernetes at a pinned release, from the Go
# module proxy only, into .engines/kubernetes-<version>/bin (cached: a second run returns at once).
#
# k8s.io/kubernetes replaces every k8s.io staging module with a ./staging path, and a dependency's replace
# directives do not apply to the module that requires it. So the binaries are built as tools of a small
# wrapper module, generated here, that requires k8s.io/kubernetes and restates each staging module at the
# matching published v0.<minor>.<patch>.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.34.4}   # EKS-supported minor; keep in step with README "Testing"
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.engines/kubernetes-$KUBE_VERSION"
cmds=(kube-apiserver kube-controller-manager)

if [[ -x $dest/bin/kube-apiserver && -x $dest/bin/kube-controller-manager ]]; then
    echo "kube: $KUBE_VERSION cached in $dest/bin"
    exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
work="$dest/src"
rm -rf "$work" "$dest/bin.tmp"
mkdir -p "$work"

info=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION")
upstream_mod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p' <<<"$info")
commit=$(sed -n 's/^[[:space:]]*"Hash": "\(.*\)",*$/\1/p' <<<"$info" | head -n1)
staging="v0.${KUBE_VERSION#v1.}"
minor=$(cut -d. -f2 <<<"$KUBE_VERSION")

{
    echo "module tenancy.local/engines/kubernetes"
    echo
    grep -E '^(go|godebug) ' "$upstream_mod"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    for cmd in "${cmds[@]}"; do echo "tool k8s.io/kubernetes/cmd/$cmd"; done
    echo
    echo "replace ("
    # Every "k8s.io/x => ./staging/src/k8s.io/x" of the upstream go.mod, restated at its published version.
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$upstream_mod" |
        while read -r mod; do echo "	$mod => $mod $staging"; done
    echo ")"
} >"$work/go.mod"

cd "$work"
time go mod tidy

pkg=k8s.io/component-base/version
cpkg=k8s.io/client-go/pkg/version
ldflags="-s -w"
for p in "$pkg" "$cpkg"; do
    ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitCommit=${commit:-unknown} -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

time go build -p 2 -trimpath -ldflags "$ldflags" -o "$dest/bin.tmp/" \
    "${cmds[@]/#/k8s.io/kubernetes/cmd/}"
"$dest/bin.tmp/kube-apiserver" --version
mv "$dest/bin.tmp" "$dest/bin"
echo "kube: built $KUBE_VERSION into $dest/bin"
