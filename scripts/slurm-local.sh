#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for `cargo xtask slurm` and its tests.
#
#   scripts/slurm-local.sh start    install slurm-wlm + munge (apt-get) if missing, then start
#                                   munged, slurmctld and slurmd (as root) with one node holding
#                                   this machine's CPUs and memory
#   scripts/slurm-local.sh stop     stop the three daemons (safe to call when they are not running)
#   scripts/slurm-local.sh env      print `export SLURM_CONF=...` for the client commands
#
# Everything lives in $SLURM_LOCAL_DIR (default /tmp/adni-slurm-local): slurm.conf, state, spool,
# logs. The client commands (sbatch, squeue, scancel) find this cluster through $SLURM_CONF, so
# nothing under /etc/slurm is changed. Needs root (apt-get, the daemons). Never point this at a
# machine that is part of a real cluster.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/adni-slurm-local}"
CONF="$DIR/slurm.conf"

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "slurm-local: must run as root (it installs packages and starts slurmctld/slurmd)" >&2
    exit 1
  fi
}

install_packages() {
  if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
    && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then
    return
  fi
  echo "slurm-local: installing slurm-wlm and munge (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

start_munge() {
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then
    # A random key for this machine only (the package normally creates one).
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  if ! munge -n >/dev/null 2>&1; then
    munged --force
    # Started here: `stop` stops it again.
    mkdir -p "$DIR"
    pgrep -xn munged >"$DIR/munged.pid" || true
  fi
  for _ in $(seq 50); do
    munge -n >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "slurm-local: munged did not start" >&2
  exit 1
}

write_conf() {
  local host cpus mem
  host="$(hostname -s)"
  cpus="$(nproc)"
  # The node's memory in MiB, less 512 MiB for the system; slurmd refuses a node that claims more
  # than it has.
  mem="$(awk '/MemTotal/ {printf "%d", $2 / 1024 - 512}' /proc/meminfo)"
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh: a single-node cluster on $host.
ClusterName=adni-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue/scontrol for an hour (no accounting database here).
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  need_root
  install_packages
  start_munge
  stop_daemons quiet
  rm -rf "$DIR/state" "$DIR/spool"
  write_conf
  export SLURM_CONF="$CONF"
  slurmctld -f "$CONF"
  slurmd -f "$CONF"
  # Wait until the node is up and takes jobs.
  for _ in $(seq 150); do
    if sinfo --noheader --format=%T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm-local: up ($(sinfo --noheader --format='%P %D node(s) %c CPUs %T')); export SLURM_CONF=$CONF"
      return
    fi
    sleep 0.2
  done
  echo "slurm-local: the node did not come up; logs in $DIR/log:" >&2
  tail -n 20 "$DIR"/log/*.log >&2 || true
  exit 1
}

# Cancels every job of this cluster, then stops slurmd and slurmctld: from their pid files, else
# the processes started with this cluster's slurm.conf (never another slurmd on the machine).
stop_daemons() {
  if [ -s "$CONF" ] && SLURM_CONF="$CONF" squeue >/dev/null 2>&1; then
    SLURM_CONF="$CONF" scancel --user="$(id -un)" >/dev/null 2>&1 || true
    for _ in $(seq 50); do
      [ -z "$(SLURM_CONF="$CONF" squeue --noheader --states=running,completing 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  for d in slurmd slurmctld; do
    local pidfile="$DIR/$d.pid"
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
    fi
    pkill -f -- "$d -f $CONF" 2>/dev/null || true
    for _ in $(seq 50); do
      pgrep -f -- "$d -f $CONF" >/dev/null || break
      sleep 0.1
    done
    pkill -9 -f -- "$d -f $CONF" 2>/dev/null || true
    rm -f "$pidfile"
  done
  if [ "${1:-}" != quiet ] && [ -s "$DIR/munged.pid" ]; then
    kill "$(cat "$DIR/munged.pid")" 2>/dev/null || true
    rm -f "$DIR/munged.pid"
  fi
  [ "${1:-}" = quiet ] || echo "slurm-local: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop_daemons ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
