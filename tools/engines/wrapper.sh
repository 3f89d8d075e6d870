# Sourced by the Go engine recipes (etcd.sh, kube.sh, eso.sh, argocd.sh). An upstream main module whose go.mod
# replaces modules cannot be required as it is (a dependency's replace directives do not apply to the module that
# requires it). etcd and kube are built as tools of a wrapper module generated here, which restates every sibling
# at a published version; External Secrets and Argo CD, whose replaces name published versions (or one module we
# re-point), are copied out of the module cache and built as the main module themselves (copy_main_module).

# prepare_work <dest>: a clean $work (<dest>/src) and the build settings every engine shares.
prepare_work() {
    export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
    work="$1/src"
    rm -rf "$work" "$1/bin.tmp"
    mkdir -p "$work"
}

# copy_main_module <dest> <module>@<version>: an empty <dest> and the module's source, writable, as $work, so
# that its own replace directives apply when it is built.
copy_main_module() {
    local dir
    rm -rf "$1"
    prepare_work "$1"
    dir=$(go mod download -json "$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
    rm -rf "$work"
    cp -r "$dir" "$work"
    chmod -R u+w "$work"
}

# fetch_upstream <module>@<version>: downloads it; sets $upstream_mod (its go.mod) and $commit (its VCS hash,
# empty when the proxy gives none).
fetch_upstream() {
    local info
    info=$(go mod download -json "$1")
    upstream_mod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p' <<<"$info")
    commit=$(sed -n 's/^[[:space:]]*"Hash": "\(.*\)",*$/\1/p' <<<"$info" | head -n1)
}

# write_wrapper <wrapper name> <module> <version> <siblings' version> <tool package>...: $work/go.mod requiring
# <module>@<version> with the tools, its go/godebug lines, and every "x => ./..." or "x => ../..." of
# $upstream_mod restated as "x => x <siblings' version>".
write_wrapper() {
    local name=$1 module=$2 version=$3 siblings=$4
    shift 4
    {
        echo "module tenancy.local/engines/$name"
        echo
        grep -E '^(go|godebug) ' "$upstream_mod"
        echo
        echo "require $module $version"
        echo
        for tool in "$@"; do echo "tool $tool"; done
        echo
        echo "replace ("
        sed -n 's#^[[:space:]]*\([^[:space:]]*\) => \.\{1,2\}/.*#\1#p' "$upstream_mod" |
            while read -r mod; do echo "	$mod => $mod $siblings"; done
        echo ")"
    } >"$work/go.mod"
}
