#!/usr/bin/env bash
# Make sure a Docker engine answers, starting one the way these machines need (ENVIRONMENT.md):
# no default bridge, no iptables, no IP forwarding. Idempotent: an engine that already answers
# is left alone, and a second dockerd is never started next to a running one (a --bridge=none
# daemon deletes the other daemon's docker0 bridge at startup).
#
#   scripts/engine.sh            # env: DOCKERD_LOG (default /var/log/evals-dockerd.log),
#                                #      DOCKERD_TIMEOUT seconds (default 30)
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/evals-dockerd.log}
TIMEOUT=${DOCKERD_TIMEOUT:-30}
PIDFILE=/var/run/docker.pid

say() { echo "engine: $*"; }
die() { echo "engine: error: $*" >&2; exit 1; }

answers() { docker version >/dev/null 2>&1; }

if answers; then
    say "docker engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null)); nothing to do"
    exit 0
fi

command -v docker >/dev/null 2>&1 || say "no docker CLI on PATH; docker.io will provide one"

if ! command -v dockerd >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "dockerd is missing and installing it needs root: run 'sudo $0'"
    say "dockerd missing: apt-get update && apt-get install -y docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    command -v dockerd >/dev/null 2>&1 || die "apt-get installed docker.io but dockerd is still not on PATH"
fi

running=$(pgrep -x dockerd || true)
if [ -n "$running" ]; then
    # A daemon runs but does not answer (yet): wait for it rather than start another.
    say "dockerd already running (pid $(echo $running | tr '\n' ' ')); waiting for it to answer"
else
    if [ -f "$PIDFILE" ]; then
        stale=$(cat "$PIDFILE" 2>/dev/null || true)
        if [ -n "$stale" ] && [ "$(cat "/proc/$stale/comm" 2>/dev/null || true)" = dockerd ]; then
            die "$PIDFILE names a running dockerd ($stale) that does not answer; check $LOG"
        fi
        say "removing stale $PIDFILE (pid '${stale}' is not a dockerd)"
        rm -f "$PIDFILE"
    fi
    [ "$(id -u)" -eq 0 ] || die "starting dockerd needs root: run 'sudo $0'"
    say "starting dockerd (log: $LOG)"
    nohup dockerd --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
        --ip-masq=false --storage-driver=overlay2 >>"$LOG" 2>&1 </dev/null &
    say "dockerd pid $!"
fi

deadline=$((SECONDS + TIMEOUT))
until answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 20 "$LOG" >&2 2>/dev/null || true
        die "docker engine did not answer within ${TIMEOUT}s; see $LOG"
    fi
    sleep 0.5
done
say "docker engine answers: server $(docker version --format '{{.Server.Version}}') (API $(docker version --format '{{.Server.APIVersion}}')), dockerd pid $(pgrep -x dockerd | tr '\n' ' ')"
