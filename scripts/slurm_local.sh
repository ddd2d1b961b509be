#!/usr/bin/env bash
# slurm_local.sh - a one-node SLURM cluster on this machine, to try `hydra/launcher=slurm_cpu` (and submitit,
# sbatch, requeue) without a real cluster: in CI, in a container, or on a Debian/Ubuntu laptop.
#
# Usage (as root, e.g. with sudo):
#   scripts/slurm_local.sh            # install if needed, configure, start; prints one line once the node is idle
#   scripts/slurm_local.sh --status   # prints whether it is up; exit 0 when up, 3 when not
#   scripts/slurm_local.sh --stop     # cancels this cluster's jobs, stops the daemons this script started
# then, as any user:
#   sinfo; srun hostname
#   adala-train --multirun hydra/launcher=slurm_cpu ...
# Environment: SLURM_CONF (default /etc/slurm/slurm.conf; any other path must be exported to Slurm's commands
# too), ADALA_SLURM_STATE (default /run/adala-slurm), ADALA_SLURM_TIMEOUT (seconds to wait for the node, 60).
#
# What it does:
#   1. install: `apt-get install slurm-wlm munge` when slurmctld/slurmd/munged/sinfo are missing.
#   2. config:  writes $SLURM_CONF (default /etc/slurm/slurm.conf, where Slurm's commands look without SLURM_CONF):
#               node `hostname -s` at 127.0.0.1 with `nproc` CPUs and MemTotal less 10% (at least 1 GiB) of memory,
#               partition `cpu` (the default), munge auth, proctrack/linuxproc, task/none, no accounting daemon
#               (so plain `sacct` fails; `sacct -c` lists finished jobs), JobRequeue=1, quick scheduling.
#               Creates /etc/munge/munge.key when missing. Refuses to overwrite a slurm.conf it did not write.
#   3. daemon start: munged (unless one already answers), slurmctld, slurmd, run directly (no systemd), each
#               recorded in $STATE_DIR/pids/<name>.pid.
#   4. node state: waits (ADALA_SLURM_TIMEOUT, default 60 s) until `sinfo` shows the node idle.
# Running it again while the cluster is up changes nothing. Any failure prints one line naming the step and
# the log to read, and exits 1. To apply a changed config: --stop, then start again.
#
# Requeue: `scontrol requeue` (and submitit's requeue on time-out) holds the job for the credential lifetime
# (AuthInfo cred_expire, default 120 s) + 1 s before it may start again; this config sets it to the minimum Slurm
# takes (5 s) and runs the scheduler every second, so a requeued job restarts about 6 s after the requeue.
#
# Leaves behind: the packages, $SLURM_CONF (marked as written here), /etc/munge/munge.key, and $STATE_DIR
# (ADALA_SLURM_STATE, default /run/adala-slurm: pids/, log/ with each daemon's log, slurmctld/ and slurmd/
# state, jobcomp.txt). --stop keeps those files for inspection; nothing outside them is touched.
#
# On a laptop with systemd: installing the packages enables Debian's munge, slurmctld and slurmd services. This
# script reuses a running munged, but refuses to start while a slurmctld or slurmd it did not start is running:
# `systemctl disable --now slurmctld slurmd` first (or use those services with the config written here).
set -euo pipefail -o errtrace

SLURM_CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
STATE_DIR=${ADALA_SLURM_STATE:-/run/adala-slurm}
TIMEOUT=${ADALA_SLURM_TIMEOUT:-60}
PARTITION=cpu
NODE=$(hostname -s)
MARKER="# Written by adala-bench scripts/slurm_local.sh"
LOG_DIR=$STATE_DIR/log
PID_DIR=$STATE_DIR/pids
MUNGE_KEY=/etc/munge/munge.key
DAEMONS=(munged slurmctld slurmd)     # start order; --stop goes the other way

STEP=startup
STEP_LOG=$LOG_DIR

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: FAILED at ${STEP}: $*" >&2; exit 1; }
trap 'die "\`${BASH_COMMAND}\` exited $? (line ${LINENO}); see ${STEP_LOG}"' ERR
step() { STEP=$1; STEP_LOG=$2; }

# --- pids: only processes recorded here, still running the same program, are ours --------------------------

our_pid() {   # prints the recorded pid of daemon $1 if it is alive and still that program
    local f=$PID_DIR/$1.pid pid
    [[ -r $f ]] || return 0
    pid=$(<"$f")
    if [[ $pid =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1" ]]; then echo "$pid"; fi
}

foreign_pids() {   # pids of daemon $1 that this script did not start
    local ours
    ours=$(our_pid "$1")
    pgrep -x "$1" | grep -vx "${ours:-none}" || true
}

# --- checks --------------------------------------------------------------------------------------------------

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

node_state() { sinfo -h -N -n "$NODE" -p "$PARTITION" -o %t 2>/dev/null | head -n1 || true; }

is_up() {
    munge_ok && [[ -n $(our_pid slurmctld) && -n $(our_pid slurmd) ]] \
        && [[ $(node_state) =~ ^(idle|mix|alloc|comp)$ ]]
}

up_line() {   # the one line saying the cluster is up
    local cpus mem
    read -r cpus mem < <(sinfo -h -N -n "$NODE" -p "$PARTITION" -o '%c %m' | head -n1)
    say "cluster up: partition ${PARTITION} (default), node ${NODE}, ${cpus} CPUs, ${mem} MB;" \
        "conf ${SLURM_CONF}, logs ${LOG_DIR}$*"
}

# --- 1. install ----------------------------------------------------------------------------------------------

install_packages() {
    step install "$LOG_DIR/install.log"
    local missing=0 cmd
    for cmd in slurmctld slurmd munged sinfo sbatch scontrol munge; do
        command -v "$cmd" >/dev/null || missing=1
    done
    ((missing)) || return 0
    say "installing slurm-wlm and munge (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >>"$STEP_LOG" 2>&1 \
        || die "apt-get install slurm-wlm munge failed; see $STEP_LOG"
}

# --- 2. config -----------------------------------------------------------------------------------------------

mem_mb() {   # MemTotal less 10% (at least 1 GiB), in MB; never under 512
    local total
    total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    local margin=$((total / 10 > 1024 ? total / 10 : 1024))
    echo $((total - margin > 512 ? total - margin : 512))
}

write_conf() {   # prints the slurm.conf for this machine (an unquoted here-document: no backquotes in it)
    cat <<EOF
$MARKER on $(date -u +%FT%TZ); rewritten on each start.
# One node, partition "$PARTITION". Daemons run as root; logs and state under $STATE_DIR.
ClusterName=adala-local
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: plain sacct answers "Slurm accounting storage is disabled" and exits 1 (submitit then logs
# "Bypassing sacct error" and sees state UNKNOWN); sacct -c reads finished (and requeued) jobs from jobcomp.txt.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE_DIR/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
JobRequeue=1
ReturnToService=2
# Requeue: slurmctld holds a requeued job (BeginTime) for the job credential lifetime + 1 s, so that no step
# credential of the previous run is still valid: AuthInfo cred_expire, default 120 s, minimum 5 (less is
# logged "AuthInfo=cred_expire=N invalid" and falls back to 120).
AuthInfo=cred_expire=5
# Quick scheduling: when that begin time passes nothing triggers the scheduler; the next periodic pass starts
# the job: the main loop every 1 s (default 60), backfill every 1 s (default 30).
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
# Finished jobs stay in squeue/scontrol for 5 min; a job told to stop (cancel, requeue, time-out) gets SIGTERM,
# then SIGKILL 10 s later (default 30).
MinJobAge=300
KillWait=10
InactiveLimit=0
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$STATE_DIR/slurmctld/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd/slurmd.pid
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) RealMemory=$(mem_mb) State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

configure() {
    step config "$SLURM_CONF"
    mkdir -p "$LOG_DIR" "$PID_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$(dirname "$SLURM_CONF")"
    if [[ -e $SLURM_CONF ]] && ! grep -qF "$MARKER" "$SLURM_CONF"; then
        die "$SLURM_CONF exists and was not written by this script; move it away or set SLURM_CONF to another path"
    fi
    write_conf >"$SLURM_CONF.new" && mv "$SLURM_CONF.new" "$SLURM_CONF"
    step config "$MUNGE_KEY"
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s $MUNGE_KEY ]]; then
        mungekey --create --keyfile="$MUNGE_KEY" 2>/dev/null \
            || dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        chown munge:munge "$MUNGE_KEY" && chmod 0400 "$MUNGE_KEY"
    fi
}

# --- 3. daemon start -----------------------------------------------------------------------------------------

launch() {   # launch NAME CMD...: runs CMD (a daemon in its foreground mode) detached, logging to log/NAME.log
    local name=$1
    shift
    setsid "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 &   # setsid execs: $! is the daemon itself
    echo "$!" >"$PID_DIR/$name.pid"
    sleep 0.5
    [[ -n $(our_pid "$name") ]] || die "$name exited at once; see $LOG_DIR/$name.log"
}

wait_for() {   # wait_for SECONDS DAEMON CMD...: until CMD succeeds, while DAEMON (if ours) keeps running
    local secs=$1 name=$2 i
    shift 2
    for ((i = 0; i < secs * 2; i++)); do
        "$@" && return 0
        [[ ! -e $PID_DIR/$name.pid || -n $(our_pid "$name") ]] || die "$name exited; see $STEP_LOG"
        sleep 0.5
    done
    die "$name not ready after ${secs}s; see $STEP_LOG"
}

start_munged() {
    step "daemon start (munged)" "$LOG_DIR/munged.log"
    munge_ok && return 0      # ours from before, or the system's
    [[ -z $(foreign_pids munged) ]] || die "a munged not started by this script runs but does not answer"
    launch munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    wait_for 10 munged munge_ok
}

start_slurm_daemon() {   # start_slurm_daemon NAME CMD...
    local name=$1 others
    shift
    step "daemon start ($name)" "$LOG_DIR/$name.log"
    [[ -z $(our_pid "$name") ]] || return 0
    others=$(foreign_pids "$name" | tr '\n' ' ')
    [[ -z $others ]] || die "a $name not started by this script runs (pid ${others% }); stop it first"
    launch "$name" "$@"
}

ctld_ok() { [[ -n $(our_pid slurmctld) ]] && scontrol ping 2>/dev/null | grep -q UP; }

start_daemons() {
    start_munged
    start_slurm_daemon slurmctld /usr/sbin/slurmctld -D -f "$SLURM_CONF"
    wait_for 30 slurmctld ctld_ok
    start_slurm_daemon slurmd /usr/sbin/slurmd -D -f "$SLURM_CONF" -N "$NODE"
}

# --- 4. node state -------------------------------------------------------------------------------------------

wait_idle() {
    step "node state" "$LOG_DIR/slurmd.log"
    local i state="" resumed=0
    for ((i = 0; i < TIMEOUT * 2; i++)); do
        [[ -n $(our_pid slurmd) ]] || die "slurmd exited; see $STEP_LOG"
        state=$(node_state)
        [[ $state =~ ^(idle|mix|alloc)$ ]] && return 0
        [[ $state != inval ]] || break   # the node does not match the config: no use waiting
        if [[ $state =~ ^(drain|drng|down)$ ]] && ((!resumed)); then   # a drain saved from an earlier config
            scontrol update NodeName="$NODE" State=RESUME >>"$LOG_DIR/slurmctld.log" 2>&1 || true
            resumed=1
        fi
        sleep 0.5
    done
    die "node $NODE is '${state:-absent}' after $((i / 2))s ($(sinfo -h -R -o %E 2>/dev/null | head -n1));" \
        "see $STEP_LOG and $LOG_DIR/slurmctld.log"
}

# --- commands ------------------------------------------------------------------------------------------------

start() {
    [[ $EUID -eq 0 ]] || { STEP=config; die "run as root (sudo $0)"; }
    if command -v sinfo >/dev/null && is_up; then up_line " (already up)"; return 0; fi
    local t0=$SECONDS
    mkdir -p "$LOG_DIR" "$PID_DIR"
    install_packages
    configure
    start_daemons
    wait_idle
    up_line " (ready in $((SECONDS - t0))s)"
}

status() {
    if command -v sinfo >/dev/null && is_up; then up_line; return 0; fi
    local d pids=""
    for d in "${DAEMONS[@]}"; do pids+=" $d=$(our_pid "$d")"; done
    local state
    state=$(node_state)
    say "cluster down (node ${NODE}: ${state:-no answer}; started by this script:${pids}; logs ${LOG_DIR})"
    return 3
}

stop_one() {   # stop_one NAME: TERM, then KILL after 10 s, the recorded pid only
    local name=$1 pid i
    pid=$(our_pid "$name")
    rm -f "$PID_DIR/$name.pid"
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]] || { STOPPED+=" $name($pid)"; return 0; }
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    STOPPED+=" $name($pid, killed)"
}

stop() {
    step stop "$LOG_DIR"
    [[ $EUID -eq 0 ]] || die "run as root (sudo $0 --stop)"
    STOPPED=""
    local jobs="" d i
    if [[ -n $(our_pid slurmctld) ]]; then   # jobs would outlive slurmd (slurmstepd): cancel them
        jobs=$(squeue -h -o %i 2>/dev/null | wc -l)
        ((jobs > 0)) || jobs=""
        if [[ -n $jobs ]]; then
            scancel --full --quiet --partition "$PARTITION" 2>/dev/null || true
            for ((i = 0; i < 30; i++)); do
                [[ -z $(squeue -h -t R,CG -o %i 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        d=${DAEMONS[$i]}
        stop_one "$d"
    done
    if [[ -n $STOPPED ]]; then
        say "stopped${STOPPED}${jobs:+; cancelled $jobs job(s)}; logs kept in ${LOG_DIR}"
    else
        say "nothing to stop: no daemon started by this script is running"
    fi
}

case ${1:-} in
"") start ;;
--stop) stop ;;
--status) status || exit $? ;;
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
*) STEP=arguments; die "unknown option '$1' (use --stop, --status or --help)" ;;
esac
