#!/usr/bin/env bash
# A single-node Slurm on localhost for the tests: munged, slurmctld and slurmd, all state in one
# directory, on free ports, with a minimal slurm.conf (no accounting database).
#
#   tests/slurm/local_slurm.sh start [DIR]   start the daemons (DIR: default /tmp/pdeldm-slurm)
#   tests/slurm/local_slurm.sh stop  [DIR]   stop them (by the pids they wrote)
#   tests/slurm/local_slurm.sh check [DIR]   exit 0 if the cluster answers and its node is idle
#
# Clients find the cluster through DIR/slurm.conf (the daemons change directory, so it is passed
# by absolute path): put DIR/bin first on PATH. Its wrappers of the client commands set SLURM_CONF
# themselves, because the Snakemake SLURM jobstep drops every SLURM_* variable (SLURM_CONF too)
# before it calls `srun` inside a job; a real cluster has its slurm.conf where the clients look by
# default. Needs root and Debian's slurm-wlm and munge packages (`apt-get install slurm-wlm munge`).
#
# The node offers two stand-in GPUs (gres/gpu on /dev/null and /dev/zero: Slurm drops GPUs without a
# device file, and with TaskPlugin=task/none nothing binds to them) so that jobs that ask for GPUs
# the way the Snakemake SLURM plugin does (`--gpus=N`) are scheduled as on a GPU cluster. Without
# slurmdbd, `sacct` answers "accounting storage is disabled": MinJobAge keeps finished jobs in
# `squeue --states=all` for an hour, which the plugin's squeue status command relies on.
set -euo pipefail

action="${1:-}"
dir="$(realpath -m "${2:-/tmp/pdeldm-slurm}")"
node=localhost
partition=debug

die() { echo "local_slurm: $*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() {  # wait_for SECONDS COMMAND...: poll until the command succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

node_idle() { SLURM_CONF="$dir/slurm.conf" sinfo --noheader --nodes="$node" --format=%t | grep -qx idle; }

stop_pidfile() {  # stop the process whose pid is in $1, if it is still running
    local pidfile="$1" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

start() {
    [ "$(id -u)" -eq 0 ] || die "needs root (slurmd runs jobs as their user and must be root)"
    for tool in munged mungekey slurmctld slurmd sbatch squeue sinfo; do
        command -v "$tool" >/dev/null || die "'$tool' not found: apt-get install slurm-wlm munge"
    done
    if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
        die "a cluster already runs from $dir (stop it first: $0 stop $dir)"
    fi
    rm -rf "$dir"
    mkdir -p "$dir/munge" "$dir/ctld" "$dir/spool"
    chmod 700 "$dir/munge"

    mungekey --create --keyfile="$dir/munge/munge.key" --force
    chmod 400 "$dir/munge/munge.key"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed"
    wait_for 10 test -S "$dir/munge/munge.socket" || die "munged did not start (see $dir/munge/munged.log)"

    local cpus memory ctld_port d_port
    cpus="$(nproc)"
    memory=262144  # MB: room for the profile's largest request (see SlurmdParameters below)
    ctld_port="$(free_port)"
    d_port="$(free_port)"
    [ "$ctld_port" != "$d_port" ] || d_port=$((ctld_port + 1))

    cat >"$dir/slurm.conf" <<EOF
# Written by tests/slurm/local_slurm.sh: a single-node test cluster on localhost.
ClusterName=pdeldm-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# config_overrides: the node offers what is written here, not what slurmd measures, so that the
# workflow's memory requests (sized for a cluster node) are accepted; nothing enforces them
# (TaskPlugin=task/none, memory is not a consumable with CR_Core).
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:2 State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    # Two stand-in GPUs: the scheduler counts and hands them out, no job touches the files.
    cat >"$dir/gres.conf" <<EOF
NodeName=$node Name=gpu File=/dev/null
NodeName=$node Name=gpu File=/dev/zero
EOF

    mkdir -p "$dir/bin"
    local tool
    local real_path
    real_path="$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx "$dir/bin" | paste -sd:)"
    for tool in sbatch srun squeue sinfo scontrol scancel sacct sacctmgr sshare; do
        printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$dir/slurm.conf" "$(PATH="$real_path" command -v "$tool")" \
            >"$dir/bin/$tool"
        chmod +x "$dir/bin/$tool"
    done

    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$dir/slurm.conf"
    slurmd -f "$dir/slurm.conf" -N "$node"
    if ! wait_for 60 node_idle; then
        tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
        stop >&2
        die "the node did not become idle within 60 s (logs above, in $dir)"
    fi
    echo "local_slurm: cluster up; export PATH=$dir/bin:\$PATH (partition '$partition')"
}

stop() {
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    stop_pidfile "$dir/munge/munged.pid"
    echo "local_slurm: stopped the cluster in $dir"
}

case "$action" in
    start) start ;;
    stop) stop ;;
    check) [ -f "$dir/slurm.conf" ] && node_idle ;;
    *) die "usage: $0 start|stop|check [DIR]" ;;
esac
