#!/usr/bin/env bash
# Build a harness image from images/<harness>/Dockerfile, tagged evals/<harness>:<project version>
# and evals/<harness>:latest (prefixed by $EVALS_REGISTRY/ when set). The Dockerfile sets the labels
# the host's catalog reads, evals.harness and evals.framework (framework.yml, base64), and
# evals.tasks (JSON list of the framework's task types, for `docker inspect`). Stages the host's
# CAs (scripts/stage-certs.sh) and makes sure the base image exists (scripts/base-image.sh) first.
# Every build uses the host network.
#
#   scripts/build-image.sh lm-eval [extra docker build args...]
#   env: BASE_IMAGE (default python:3.11-slim), EVALS_REGISTRY
set -euo pipefail

START=$SECONDS
say() { echo "build-image: [$((SECONDS - START))s] $*"; }
die() { echo "build-image: error: $*" >&2; exit 2; }

[ "$#" -ge 1 ] || die "usage: $0 <harness> [docker build args...]  (harnesses: $(cd "$(dirname "$0")/../images" && ls -d */ | tr -d / | tr '\n' ' '))"
HARNESS=$1
shift
cd "$(dirname "$0")/.."

DOCKERFILE=images/$HARNESS/Dockerfile
FRAMEWORK=images/$HARNESS/framework.yml
[ -f "$DOCKERFILE" ] || die "no $DOCKERFILE"

# A Python with PyYAML: the project's venv, else the system's.
PY=
for candidate in .venv/bin/python python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml, tomllib' 2>/dev/null; then
        PY=$candidate
        break
    fi
done
[ -n "$PY" ] || die "need Python 3.11+ with PyYAML to read $FRAMEWORK: run 'make venv' (or pip install pyyaml)"

VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
# Images without a framework.yml (the reference endpoint) carry no task labels.
TASKS_JSON='[]'
FRAMEWORK_B64=
if [ -f "$FRAMEWORK" ]; then
    TASKS_JSON=$("$PY" - "$FRAMEWORK" <<'EOF'
import json
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as fh:
    doc = yaml.safe_load(fh)
types = [entry["defaults"]["config"]["type"] for entry in doc.get("evaluations") or []]
print(json.dumps(types, separators=(",", ":")))
EOF
    )
    FRAMEWORK_B64=$(base64 -w0 "$FRAMEWORK")
fi
REPO=${EVALS_REGISTRY:+${EVALS_REGISTRY%/}/}evals/$HARNESS
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}

docker version >/dev/null 2>&1 || die "no docker engine answers: run scripts/engine.sh"
scripts/stage-certs.sh
BASE_IMAGE=$BASE_IMAGE scripts/base-image.sh

say "docker build $REPO:$VERSION (+ :latest) from $DOCKERFILE on $BASE_IMAGE; tasks $TASKS_JSON"
docker build --network host --force-rm \
    -f "$DOCKERFILE" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "EVALS_VERSION=$VERSION" \
    --build-arg "EVALS_TASKS_JSON=$TASKS_JSON" \
    --build-arg "EVALS_FRAMEWORK_B64=$FRAMEWORK_B64" \
    -t "$REPO:$VERSION" -t "$REPO:latest" \
    "$@" .

say "built $REPO:$VERSION and $REPO:latest ($(docker image ls --format '{{.Size}}' "$REPO:$VERSION"))"
