#!/usr/bin/env bash
# Make the base image the harness Dockerfiles start FROM available locally.
#
#   BASE_IMAGE=python:3.11-slim scripts/base-image.sh
#
# 1. present locally -> done;  2. `docker pull` -> done;  3. otherwise (no registry reachable)
# build an equivalent Debian base with mmdebstrap from the host's own apt mirrors and
# `docker import` it under $BASE_IMAGE, so an unchanged `FROM python:3.11-slim` resolves locally.
# The local base is Debian's Python (/usr/bin/python3, with venv and pip), trusts the host's
# locally added CAs (/usr/local/share/ca-certificates, e.g. a TLS-intercepting proxy's) and,
# like python:*-slim, has no EXTERNALLY-MANAGED marker. It carries the label evals.base=mmdebstrap.
#
# Env: BASE_IMAGE, DEBIAN_SUITE (default: the host's codename, else bookworm),
#      DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (default: taken from the host's apt sources).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
START=$SECONDS

say() { echo "base-image: [$((SECONDS - START))s] $*"; }
die() { echo "base-image: error: $*" >&2; exit 1; }

docker version >/dev/null 2>&1 || die "no docker engine answers; run scripts/engine.sh first"

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "$BASE_IMAGE is present locally ($(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" | cut -c1-19)); nothing to do"
    exit 0
fi

say "trying: docker pull $BASE_IMAGE"
if timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    say "pulled $BASE_IMAGE"
    exit 0
fi
say "pull failed (no registry reachable?); building a local equivalent with mmdebstrap"

# --- the host's apt sources -> "URI SUITE" lines (enabled deb entries only) ----------------------
apt_sources() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no")
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
                types = ""; enabled = ""; nu = 0; ns = 0
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                key = tolower($1); sub(/:$/, "", key)
                if (key == "types") { $1 = ""; types = $0 }
                else if (key == "enabled") enabled = tolower($2)
                else if (key == "uris") for (i = 2; i <= NF; i++) u[++nu] = $i
                else if (key == "suites") for (i = 2; i <= NF; i++) s[++ns] = $i
            }
            END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [opts] URI SUITE COMPONENTS...
        sed -E -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2, $3 }'
    done
}

if [ -z "${DEBIAN_SUITE:-}" ]; then
    DEBIAN_SUITE=$(. /etc/os-release 2>/dev/null && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}" || true)
    DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
fi
SOURCES=$(apt_sources | sort -u)
pick() { awk -v suite="$1" '$2 == suite { sub(/\/+$/, "", $1); print $1; exit }' <<<"$SOURCES"; }
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(pick "$DEBIAN_SUITE")}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(pick "$DEBIAN_SUITE-security")}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
say "suite $DEBIAN_SUITE; mirror $DEBIAN_MIRROR; security mirror $DEBIAN_SECURITY_MIRROR"

if ! command -v mmdebstrap >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "mmdebstrap is missing; install it (apt-get install mmdebstrap) or run as root"
    say "installing mmdebstrap (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi
[ "$(id -u)" -eq 0 ] || die "mmdebstrap --mode=root needs root"

HOOKS=/usr/share/mmdebstrap/hooks/merged-usr
[ -d "$HOOKS" ] || die "$HOOKS is missing (mmdebstrap too old?)"

# Runs with the rootfs as $1: the host's local CAs in, EXTERNALLY-MANAGED and apt lists out.
CUSTOMIZE='set -e
mkdir -p "$1/usr/local/share/ca-certificates"
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$crt" ] && cp "$crt" "$1/usr/local/share/ca-certificates/" && echo "base-image: trusting $(basename "$crt")"
done
chroot "$1" update-ca-certificates >/dev/null
rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED
rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb
chroot "$1" python3 --version'

LOCAL_TAG="evals/base:$DEBIAN_SUITE-python3"
say "mmdebstrap $DEBIAN_SUITE | docker import $LOCAL_TAG"
mmdebstrap --quiet --variant=minbase --mode=root --hook-dir="$HOOKS" \
    --dpkgopt=force-unsafe-io \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --include=python3,python3-venv,python3-pip,ca-certificates,python-is-python3 \
    --customize-hook="$CUSTOMIZE" \
    "$DEBIAN_SUITE" - \
    "deb $DEBIAN_MIRROR $DEBIAN_SUITE main" \
    "deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main" \
    "deb $DEBIAN_SECURITY_MIRROR $DEBIAN_SUITE-security main" |
    docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'LABEL evals.base=mmdebstrap' \
        --change "LABEL evals.base.suite=$DEBIAN_SUITE" \
        --change 'CMD ["python3"]' \
        --message "mmdebstrap $DEBIAN_SUITE (local stand-in for $BASE_IMAGE)" \
        - "$LOCAL_TAG" >/dev/null

docker tag "$LOCAL_TAG" "$BASE_IMAGE"
say "built $LOCAL_TAG, tagged $BASE_IMAGE: $(docker run --rm --network host "$BASE_IMAGE" python3 --version 2>&1)," \
    "$(docker image ls --format '{{.Size}}' "$BASE_IMAGE" | head -n1)"
