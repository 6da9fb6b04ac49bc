#!/usr/bin/env bash
# Stage CA certificates into images/certs/, which every image build copies in and trusts
# (update-ca-certificates; pip and requests use the system bundle). This is how a build behind
# a TLS-intercepting proxy gets through: the proxy's CA is among the host's locally added CAs.
#
#   scripts/stage-certs.sh                 # the host's /usr/local/share/ca-certificates/**/*.crt
#   scripts/stage-certs.sh FILE|DIR ...    # these PEM files (*.crt in each DIR) instead
#
# Idempotent: certificates staged earlier are replaced. images/certs/*.crt is gitignored.
set -euo pipefail

cd "$(dirname "$0")/.."
DEST=images/certs
mkdir -p "$DEST"
find "$DEST" -maxdepth 1 -type f -name '*.crt' -delete

[ "$#" -gt 0 ] || set -- /usr/local/share/ca-certificates
n=0
stage() {
    local crt=$1 name
    if ! grep -q -- '-----BEGIN CERTIFICATE-----' "$crt"; then
        echo "stage-certs: skipping $crt (not a PEM certificate)" >&2
        return
    fi
    name=$(basename "$crt" .crt)
    [ ! -e "$DEST/$name.crt" ] || name="$name-$n"
    cp "$crt" "$DEST/$name.crt"
    echo "stage-certs: $crt -> $DEST/$name.crt"
    n=$((n + 1))
}

for src in "$@"; do
    if [ -d "$src" ]; then
        while IFS= read -r crt; do stage "$crt"; done < <(find -L "$src" -type f -name '*.crt' | sort)
    elif [ -f "$src" ]; then
        stage "$src"
    else
        echo "stage-certs: skipping $src (no such file or directory)" >&2
    fi
done
echo "stage-certs: $n certificate(s) staged in $DEST"
