#!/usr/bin/env bash
# Makes .engines (where every recipe and test looks for built engines) a link into a per-user cache outside the
# clone, so that a fresh clone on a machine that built the engines once finds them at once. The cache folder is
# ${TENANCY_ENGINES_CACHE:-${XDG_CACHE_HOME:-~/.cache}/tenancy/engines}; engines are keyed there by name and
# version (etcd-v3.6.16, pulumi-v3.274.0, ...), so clones of different revisions share what they agree on.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${TENANCY_ENGINES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tenancy/engines}
mkdir -p "$cache"
link="$root/.engines"
if [[ -L $link ]]; then
    [[ $(readlink "$link") == "$cache" ]] && exit 0
    rm "$link"
elif [[ -d $link ]]; then
    # A clone from before the cache moved out: keep what it built.
    cp -an "$link"/. "$cache"/ && rm -rf "$link"
fi
ln -s "$cache" "$link"
echo "engines: .engines -> $cache"
