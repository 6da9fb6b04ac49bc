#!/usr/bin/env bash
# The vlmevalkit folder's preparation step (scripts/build-images.sh runs a harness folder's prepare.sh before
# building it): stage the CPU build of torch for the vlmevalkit image into images/vlmevalkit/wheels/
# (gitignored), where its Dockerfile installs it from. Looks in $EVALS_WHEELHOUSE, else in $PIP_FIND_LINKS (pip's own setting for
# a local wheelhouse; several directories may be listed, separated by spaces), for the torch version that
# requirements.txt pins, as a +cpu cp311 linux x86_64 wheel.
#
#   bash images/vlmevalkit/prepare.sh && bash scripts/build-image.sh vlmevalkit
#
# Without such a wheel the build still works: it installs torch from --build-arg TORCH_INDEX_URL if given
# (e.g. https://download.pytorch.org/whl/cpu), else PyPI's CUDA build (several GB larger). Idempotent.
set -euo pipefail

cd "$(dirname "$0")"
DEST=wheels
VERSION=$(sed -n 's/^torch==//p' requirements.txt)
PATTERN="torch-$VERSION+cpu-cp311-cp311-*linux*x86_64.whl"
SOURCES=${EVALS_WHEELHOUSE:-${PIP_FIND_LINKS:-}}

mkdir -p "$DEST"
find "$DEST" -maxdepth 1 -name 'torch-*.whl' ! -name "torch-$VERSION+cpu-*" -delete
for dir in $SOURCES; do
    dir=${dir#file://}
    for wheel in "$dir"/$PATTERN; do
        [ -f "$wheel" ] || continue
        if cmp -s "$wheel" "$DEST/$(basename "$wheel")"; then
            echo "prepare: $DEST/$(basename "$wheel") already staged"
        else
            cp "$wheel" "$DEST/"
            echo "prepare: $wheel -> images/vlmevalkit/$DEST/"
        fi
        exit 0
    done
done
if ls "$DEST"/$PATTERN >/dev/null 2>&1; then
    echo "prepare: no wheelhouse named; keeping the staged $(cd "$DEST" && ls $PATTERN)"
    exit 0
fi
echo "prepare: no $PATTERN in ${SOURCES:-\$EVALS_WHEELHOUSE / \$PIP_FIND_LINKS (both unset)}:" \
     "the image will get torch from TORCH_INDEX_URL if given, else PyPI's CUDA build" >&2
