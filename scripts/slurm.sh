#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for `evals run --executor slurm` and its tests.
#
# Installs slurm-wlm (Debian, brings munge), writes a loopback-only /etc/slurm/slurm.conf
# (proctrack/linuxproc, task/none, select/cons_tres, no accounting, Epilog=orchestrator/host/backends/slurm/epilog.sh)
# and starts munged (as the munge user), slurmctld and slurmd as plain background processes
# (no systemd). Idempotent: daemons that already run with the same slurm.conf are left alone;
# a changed slurm.conf restarts them. Needs root. ~2 s to an idle node once installed.
#
#   scripts/slurm.sh      # env: SLURM_PARTITION (default debug), SLURM_LOG_DIR (default /var/log/slurm),
#                         #      SLURM_TIMEOUT seconds to wait for an idle node (default 30)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
EPILOG=$(cd "$HERE/../orchestrator/host/backends/slurm" && pwd)/epilog.sh
PARTITION=${SLURM_PARTITION:-debug}
LOG_DIR=${SLURM_LOG_DIR:-/var/log/slurm}
TIMEOUT=${SLURM_TIMEOUT:-30}
CONF=/etc/slurm/slurm.conf
STATE=/var/lib/evals-slurm
START=$SECONDS

say() { echo "slurm: [$((SECONDS - START))s] $*"; }
die() { echo "slurm: error: $*" >&2; exit 1; }
# PIDs of live processes named exactly $1 (a killed daemon may linger as a zombie: not alive).
alive() {
    local pid
    for pid in $(pgrep -x "$1" || true); do
        [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" = Z ] || echo "$pid"
    done
}
pids() { alive "$1" | tr '\n' ' '; }
controller_up() { timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; }

[ "$(id -u)" -eq 0 ] || die "installing and starting Slurm needs root: run 'sudo $0'"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    say "installing slurm-wlm (apt-get, --no-install-recommends)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm >/dev/null
fi
chmod 0755 "$EPILOG"

# --- munge: a key, a socket directory others can traverse, the daemon as the munge user ---------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge
install -d -o munge -g munge -m 0711 /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if [ -z "$(alive munged)" ]; then
    rm -f /run/munge/munge.socket.2 /run/munge/munged.pid
    setpriv --reuid=munge --regid=munge --init-groups \
        nohup munged --foreground >>/var/log/munge/munged.log 2>&1 </dev/null &
    for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
    [ -S /run/munge/munge.socket.2 ] || die "munged did not start; see /var/log/munge/munged.log"
    say "munged started (pid $(pids munged))"
fi

# --- slurm.conf: this machine only, reached on loopback --------------------------------------------
node=$(hostname -s)
addr=$(getent ahostsv4 "$node" | awk 'NR == 1 {print $1}')
case "$addr" in
    127.*) ;;
    *) node=localhost; addr=127.0.0.1 ;;  # the hostname is not loopback: use localhost instead
esac
cpus=$(nproc)
install -d -m 0755 /etc/slurm "$LOG_DIR" "$STATE" "$STATE/ctld" "$STATE/d"
new=$(mktemp)
cat >"$new" <<EOF
# Written by $HERE/slurm.sh: a single-node, loopback-only cluster without accounting.
ClusterName=evals
SlurmctldHost=$node($addr)
SlurmctldAddr=$addr
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Cancelled and timed-out jobs: SIGTERM, then SIGKILL after KillWait seconds; then the Epilog
# removes the job's containers.
KillWait=5
MinJobAge=600
Epilog=$EPILOG
NodeName=$node NodeAddr=$addr NodeHostname=$node CPUs=$cpus State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

restart=no
if ! cmp -s "$new" "$CONF"; then
    [ -f "$CONF" ] && say "slurm.conf changed: restarting the daemons" && restart=yes
    install -m 0644 "$new" "$CONF"
fi
rm -f "$new"

stop() {
    local name=$1 pid
    for pid in $(alive "$name"); do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do [ -n "$(alive "$name")" ] || return 0; sleep 0.1; done
    die "$name did not stop"
}
if [ "$restart" = yes ]; then stop slurmd; stop slurmctld; fi

if [ -z "$(alive slurmctld)" ]; then
    nohup slurmctld -D >>"$LOG_DIR/slurmctld.stdout" 2>&1 </dev/null &
    say "slurmctld started (pid $!)"
fi
deadline=$((SECONDS + TIMEOUT))
until controller_up; do
    [ "$SECONDS" -lt "$deadline" ] || die "slurmctld does not answer after ${TIMEOUT}s; see $LOG_DIR/slurmctld.log"
    sleep 0.1
done
if [ -z "$(alive slurmd)" ]; then
    nohup slurmd -D -N "$node" >>"$LOG_DIR/slurmd.stdout" 2>&1 </dev/null &
    say "slurmd started (pid $!)"
fi

# --- wait for an idle node (resume it if an earlier run left it down or drained) -----------------
deadline=$((SECONDS + TIMEOUT))
while :; do
    state=$(sinfo -h -n "$node" -o '%T' 2>/dev/null | head -n 1)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*|fail*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 20 "$LOG_DIR/slurmd.log" >&2 2>/dev/null || true
        die "node $node is '${state:-unknown}' after ${TIMEOUT}s; see $LOG_DIR/slurmd.log and slurmctld.log"
    fi
    sleep 0.2
done
say "node $node is $state (partition $PARTITION, $cpus CPUs); pids: munged $(pids munged)slurmctld $(pids slurmctld)slurmd $(pids slurmd)"
