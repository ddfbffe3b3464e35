#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for CI and tests/test_slurm.py. Needs root.
#
#   scripts/ci/slurm.sh install   apt-get the Debian packages slurmctld slurmd slurm-client munge
#                                 (nothing to do when they are there)
#   scripts/ci/slurm.sh up        install, write /etc/slurm/slurm.conf for this host, start
#                                 munged (unless running), slurmctld and slurmd in the background,
#                                 wait until sinfo shows the node idle
#   scripts/ci/slurm.sh down      cancel the cluster's jobs, stop the daemons `up` started,
#                                 remove the slurm.conf it wrote
#
# The config must be the system's /etc/slurm/slurm.conf: the executor plugin's job step
# drops SLURM_* variables, SLURM_CONF included, before its inner srun. A slurm.conf that
# this script did not write is never overwritten (`up` fails, naming it). State, pids and
# logs live in $PGRPO_SLURM_DIR (default /run/pgrpo-slurm).
#
# No accounting database (AccountingStorageType=accounting_storage/none): sacct answers
# nothing, so profiles/slurm polls job states with squeue, which sees a finished job for
# MinJobAge = 3600 s (>= 3 x the profile's 5 s before its first status check, and long
# enough that the test can still list every job of a slow run).
set -euo pipefail

ROOT=${PGRPO_SLURM_DIR:-/run/pgrpo-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# Written by scripts/ci/slurm.sh"
PARTITION=main
WAIT_S=${PGRPO_SLURM_WAIT_S:-60}

install_packages() {
    local tool missing=0
    for tool in slurmctld slurmd sinfo sbatch squeue munged; do
        command -v "$tool" >/dev/null || missing=1
    done
    ((missing)) || return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
}

write_conf() {
    local host node_line
    host=$(hostname -s)
    # `slurmd -C` prints this machine's own NodeName / CPUs / sockets / RealMemory line.
    node_line=$(slurmd -C | grep '^NodeName=')
    if [ -e "$CONF" ] && [ "$(head -n 1 "$CONF")" != "$MARK" ]; then
        echo "slurm.sh: $CONF exists and was not written by this script; leaving it (and SLURM) alone" >&2
        return 1
    fi
    mkdir -p "$ROOT/state" "$ROOT/spool" "$(dirname "$CONF")"
    cat >"$CONF" <<EOF
$MARK
# One node (this machine), no accounting database.
ClusterName=pgrpo
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$ROOT/slurmctld.pid
SlurmdPidFile=$ROOT/slurmd.pid
SlurmctldLogFile=$ROOT/slurmctld.log
SlurmdLogFile=$ROOT/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
ReturnToService=2
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_daemons() {
    if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
        chmod 400 /etc/munge/munge.key
        runuser -u munge -- munged
        cp /run/munge/munged.pid "$ROOT/munged.pid"  # ours to stop in `down`
    fi
    # -c: a clean start, no jobs or node states left from an earlier `up`
    running "$ROOT/slurmctld.pid" || slurmctld -c
    running "$ROOT/slurmd.pid" || slurmd
}

wait_idle() {
    local deadline=$((SECONDS + WAIT_S))
    until sinfo --noheader --partition "$PARTITION" --format '%t' 2>/dev/null | grep -qx 'idle'; do
        if ((SECONDS >= deadline)); then
            echo "slurm.sh: the node is not idle after ${WAIT_S} s" >&2
            sinfo -N -l >&2 || true
            tail -n 20 "$ROOT/slurmctld.log" "$ROOT/slurmd.log" >&2 || true
            return 1
        fi
        sleep 1
    done
    sinfo -N -l
}

stop_daemons() {
    local name pid
    if running "$ROOT/slurmctld.pid"; then
        scancel --user "$(id -un)" 2>/dev/null || true
    fi
    for name in slurmd slurmctld munged; do
        running "$ROOT/$name.pid" || continue
        pid=$(cat "$ROOT/$name.pid")
        kill "$pid"
        for _ in $(seq 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        rm -f "$ROOT/$name.pid"
    done
    if [ -e "$CONF" ] && [ "$(head -n 1 "$CONF")" = "$MARK" ]; then
        rm -f "$CONF"
    fi
}

case "${1:-}" in
    install) install_packages ;;
    up) install_packages && write_conf && start_daemons && wait_idle ;;
    down) stop_daemons ;;
    *)
        echo "usage: $0 install|up|down" >&2
        exit 2
        ;;
esac
