#!/usr/bin/env bash
# slurm_cluster.sh: a private single-node Slurm (munged + slurmctld + slurmd) in a temporary
# directory, for the tests labelled `slurm` (docs/slurm.md; the recipe and its traps are in the
# steering notes, slurm-local.md).
#
#   slurm_cluster.sh up ENV_FILE     start; write "export SLURM_CONF=... SLURM_TEST_DIR=..." to
#                                    ENV_FILE (tests source it); exit 1 with log tails on failure
#   slurm_cluster.sh down ENV_FILE   cancel every job, stop the daemons BY PID (checked against
#                                    their executables, never by name), remove the directory
#
# Needs root (the daemons run as root) and Debian's slurmctld, slurmd, slurm-client and munge
# (scripts/setup.sh --test installs them). Nothing is written outside the temporary directory and
# ENV_FILE: private munge key and socket, free ports probed from SLURM_TEST_PORT (default 6817),
# SLURM_TEST_CPUS CPUs declared (default 16: more than the real cores, allowed by
# config_overrides, so that the 20B script's 8 tasks and a 16-task 120B layout can be submitted as
# dry runs) and SLURM_TEST_MEM MiB of memory (default 131072; nothing enforces it: task/none).
# The credential lifetime is SLURM_TEST_CRED_EXPIRE s (default 15, Slurm's default is 120): a
# requeued job waits that long before it can start again (slurm_requeue_resume).
set -uo pipefail

die() { echo "slurm_cluster: $*" >&2; exit 1; }
alive() { [ -r /proc/"$1"/stat ] && [ "$(awk '{print $3}' /proc/"$1"/stat 2>/dev/null)" != Z ]; }
listening() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# Stop the process in pid file $1 if it is still the executable $2 (a stale pid file must not
# make us kill a recycled PID). zombies count as gone (kill -0 succeeds on them).
stop_pidfile() {
  local f=$1 exe=$2 p
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  case $p in ''|*[!0-9]*) return 0 ;; esac
  alive "$p" || return 0
  if [ "$(readlink /proc/"$p"/exe 2>/dev/null)" != "$exe" ]; then
    echo "slurm_cluster: pid $p from $f is not $exe; left alone" >&2
    return 0
  fi
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 1 100); do alive "$p" || return 0; sleep 0.1; done
  echo "slurm_cluster: pid $p ($exe) ignored SIGTERM for 10 s, sending SIGKILL" >&2
  kill -KILL "$p" 2>/dev/null || true
}

# slurmstepd processes survive a stopped slurmd; kill, by PID, those started by our slurmd
# (their environment holds our SLURM_CONF, inherited from the slurmd that up() started).
stop_stepds() {
  local d=$1 exe p
  exe=$(readlink -f /usr/sbin/slurmstepd 2>/dev/null || echo /usr/sbin/slurmstepd)
  local comm
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    # comm first (a builtin read, no fork per process), then the executable
    comm=""; read -r comm <"/proc/$p/comm" 2>/dev/null
    case $comm in slurmstepd*) ;; *) continue ;; esac
    [ "$(readlink /proc/"$p"/exe 2>/dev/null)" = "$exe" ] || continue
    alive "$p" || continue
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$d/slurm.conf"; then
      echo "slurm_cluster: leftover slurmstepd $p, SIGKILL" >&2
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
}

down() {
  local d=$1
  [ -n "$d" ] && [ -d "$d" ] || return 0
  export SLURM_CONF="$d"/slurm.conf
  if [ -s "$d"/slurmctld.pid ] && alive "$(cat "$d"/slurmctld.pid)"; then
    local jobs
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086  # one job id per word
      scancel $jobs 2>/dev/null || true
      for _ in $(seq 1 100); do
        [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.2
      done
    fi
  fi
  stop_pidfile "$d"/slurmd.pid "$(readlink -f /usr/sbin/slurmd)"
  stop_pidfile "$d"/slurmctld.pid "$(readlink -f /usr/sbin/slurmctld)"
  stop_pidfile "$d"/munge/munged.pid "$(readlink -f /usr/sbin/munged)"
  stop_stepds "$d"
}

up() {
  local envf=$1 cpus=${SLURM_TEST_CPUS:-16} mem=${SLURM_TEST_MEM:-131072} node d port
  [ "$(id -u)" -eq 0 ] || die "the test cluster's daemons must run as root (run ctest as root)"
  for x in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/bin/munge; do
    [ -x "$x" ] || die "$x is missing: run 'bash scripts/setup.sh --test' as root (installs slurmctld slurmd slurm-client munge)"
  done
  node=$(hostname -s)
  d=$(mktemp -d /tmp/gptoss-slurm.XXXXXX) || die "mktemp failed"
  chmod 0755 "$d"                 # munged: every dir on the socket path must be world-x
  mkdir -m 0755 "$d"/munge
  mkdir "$d"/state "$d"/spool "$d"/log "$d"/pmix

  fail() {
    echo "slurm_cluster: $*" >&2
    tail -n 5 "$d"/log/*.log "$d"/munge/munged.log >&2 2>/dev/null || true
    down "$d"
    echo "slurm_cluster: state kept in $d" >&2
    exit 1
  }

  port=${SLURM_TEST_PORT:-6817}
  while listening "$port" || listening $((port + 1)); do port=$((port + 2)); done

  dd if=/dev/urandom of="$d"/munge/munge.key bs=1024 count=1 status=none
  chmod 0400 "$d"/munge/munge.key
  /usr/sbin/munged --socket="$d"/munge/munge.socket --key-file="$d"/munge/munge.key \
    --pid-file="$d"/munge/munged.pid --log-file="$d"/munge/munged.log \
    --seed-file="$d"/munge/munged.seed </dev/null >/dev/null 2>&1 || fail "munged did not start"
  munge -S "$d"/munge/munge.socket -n | unmunge -S "$d"/munge/munge.socket >/dev/null ||
    fail "munge round trip failed"

  local overrides=""
  if [ "$cpus" -gt "$(nproc)" ]; then overrides="SlurmdParameters=config_overrides"; fi
  cat >"$d"/slurm.conf <<EOF
ClusterName=gptosstest
SlurmctldHost=${node}(127.0.0.1)
SlurmctldPort=${port}
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${d}/munge/munge.socket,cred_expire=${SLURM_TEST_CRED_EXPIRE:-15}
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${d}/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
EnforcePartLimits=ALL
MinJobAge=5
KillWait=5
MailProg=/bin/true
StateSaveLocation=${d}/state
SlurmdSpoolDir=${d}/spool
SlurmctldPidFile=${d}/slurmctld.pid
SlurmdPidFile=${d}/slurmd.pid
SlurmctldLogFile=${d}/log/slurmctld.log
SlurmdLogFile=${d}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
${overrides}
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  echo "PMIxCliTmpDirBase=${d}/pmix" >"$d"/mpi.conf

  export SLURM_CONF="$d"/slurm.conf
  /usr/sbin/slurmctld </dev/null >/dev/null 2>&1 || fail "slurmctld did not start"
  /usr/sbin/slurmd </dev/null >/dev/null 2>&1 || fail "slurmd did not start"

  local st="" f p
  for _ in $(seq 1 60); do
    st=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
    [ "$st" = idle ] && break
    for f in slurmctld slurmd; do
      p=$(cat "$d"/$f.pid 2>/dev/null || true)
      if [ -n "$p" ] && ! alive "$p"; then fail "$f died (port clash? see its log)"; fi
    done
    sleep 0.5
  done
  [ "$st" = idle ] || fail "node state is '$st', not idle, after 30 s"
  echo "export SLURM_CONF=$d/slurm.conf SLURM_TEST_DIR=$d" >"$envf"
  echo "slurm_cluster: up in $d (ports $port/$((port + 1)), node $node, $cpus CPUs)"
}

cmd=${1:-}; envf=${2:-}
[ -n "$envf" ] || die "usage: slurm_cluster.sh up|down ENV_FILE"
case $cmd in
  up)
    # a cluster left by an interrupted run with the same ENV_FILE goes first
    if [ -s "$envf" ]; then
      old=$(sed -n 's/.*SLURM_TEST_DIR=\([^ ]*\).*/\1/p' "$envf")
      case $old in /tmp/gptoss-slurm.*) down "$old"; rm -rf "$old" ;; esac
      rm -f "$envf"
    fi
    up "$envf" ;;
  down)
    [ -s "$envf" ] || { echo "slurm_cluster: no $envf, nothing to stop"; exit 0; }
    d=$(sed -n 's/.*SLURM_TEST_DIR=\([^ ]*\).*/\1/p' "$envf")
    case $d in /tmp/gptoss-slurm.*) ;; *) die "unexpected SLURM_TEST_DIR '$d' in $envf" ;; esac
    down "$d"
    if [ -n "${SLURM_TEST_KEEP:-}" ]; then echo "slurm_cluster: kept $d"; else rm -rf "$d"; fi
    rm -f "$envf"
    echo "slurm_cluster: down" ;;
  *) die "usage: slurm_cluster.sh up|down ENV_FILE" ;;
esac
