#!/bin/sh
# Slurm Epilog (slurm.conf: Epilog=<this file>): remove every container a job started with docker.
#
# `docker run` inside a batch job is a child of the Docker daemon, not of slurmd: scancel and time
# limits stop the job's processes but not its containers. evals labels each container it starts
# in a job with evals.slurm.job=$SLURM_JOB_ID (runs it with --init and --rm as well); slurmd runs
# this script as root on the node when the job ends, however it ended. It always exits 0: a
# failing Epilog would drain the node.
[ -n "${SLURM_JOB_ID:-}" ] || exit 0
PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin
export PATH
command -v docker >/dev/null 2>&1 || exit 0
ids=$(docker ps -aq --filter "label=evals.slurm.job=${SLURM_JOB_ID}" 2>/dev/null) || exit 0
if [ -n "$ids" ]; then
    # shellcheck disable=SC2086  # one id per word
    docker rm -f $ids >/dev/null 2>&1 || true
    logger -t evals-epilog "job ${SLURM_JOB_ID}: removed containers ${ids}" 2>/dev/null || true
fi
exit 0
