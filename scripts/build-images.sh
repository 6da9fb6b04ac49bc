#!/usr/bin/env bash
# Build every harness image and the reference endpoint: each folder of images/ holding a framework.yml (the
# harnesses, as orchestrator/runtime/harnesses.py finds them), then images/reference-endpoint. A folder's
# prepare.sh, if it has one, runs before its build (e.g. images/vlmevalkit/prepare.sh stages a CPU torch wheel).
# `make images` runs this; a new harness folder needs no edit here.
#
#   scripts/build-images.sh              # every harness folder + the reference endpoint
#   scripts/build-images.sh lm-eval ...  # only these folders
#   env: as scripts/build-image.sh (EVALS_REGISTRY, BASE_IMAGE)
set -euo pipefail

cd "$(dirname "$0")/.."
if [ "$#" -gt 0 ]; then
    FOLDERS=("$@")
else
    FOLDERS=()
    for framework in images/*/framework.yml; do
        FOLDERS+=("$(basename "$(dirname "$framework")")")
    done
    FOLDERS+=(reference-endpoint)
fi

START=$SECONDS
for folder in "${FOLDERS[@]}"; do
    [ -f "images/$folder/Dockerfile" ] || { echo "build-images: error: no images/$folder/Dockerfile" >&2; exit 2; }
    if [ -f "images/$folder/prepare.sh" ]; then
        echo "build-images: images/$folder/prepare.sh"
        bash "images/$folder/prepare.sh"
    fi
    bash scripts/build-image.sh "$folder"
done
echo "build-images: built ${FOLDERS[*]} in $((SECONDS - START)) s"
