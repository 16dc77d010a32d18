#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests/integration/test_slurm_cluster.py.
#   .ci/local_slurm.sh up DIR     install Debian's SLURM packages (root), start munged (unless
#                                 one runs), slurmctld and slurmd; config, state, logs and PIDs
#                                 in DIR; prints `export SLURM_CONF=DIR/slurm.conf`
#   .ci/local_slurm.sh down DIR   stop every daemon `up` started, by the PID it recorded
# Exit code 3: this machine does not allow it (not root, packages not installable, a SLURM of
# its own); the test skips then, naming the reason. Any other failure is a failure.
# No accounting (AccountingStorageType=none): jobs are polled with squeue, as the SLURM profile
# does. The config is DIR/slurm.conf, linked from /etc/slurm/slurm.conf (job steps started
# inside a job read that path, not $SLURM_CONF); `down` removes the link. A machine that has
# its own /etc/slurm/slurm.conf is refused: this is for a CI machine, not a real cluster.
set -euo pipefail

action="${1:?usage: local_slurm.sh up|down DIR}"
dir="$(mkdir -p "${2:?usage: local_slurm.sh up|down DIR}" && cd "$2" && pwd)"

waitfor() { # waitfor SECONDS COMMAND...: until COMMAND succeeds
  local n=$(($1 * 5))
  shift
  for _ in $(seq "$n"); do "$@" > /dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

gone() { # the PID has exited (a zombie counts: PID 1 may reap daemons late)
  local stat
  stat="$(ps -o stat= -p "$1" 2> /dev/null || true)"
  [ -z "$stat" ] || [[ "$stat" == Z* ]]
}

record() { # record NAME PIDFILE: keep the daemon's PID (slurmctld deletes its file on exit)
  waitfor 10 test -s "$2" || { echo "$1 wrote no PID file $2" >&2; return 1; }
  cat "$2" > "$dir/started.$1"
}

up() {
  if [ "$(id -u)" != 0 ]; then echo "local_slurm.sh: needs root (apt-get, daemons)" >&2; exit 3; fi
  command -v apt-get > /dev/null || { echo "local_slurm.sh: no apt-get (Debian) here" >&2; exit 3; }
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v slurmctld > /dev/null || ! command -v slurmd > /dev/null \
    || ! command -v sbatch > /dev/null || ! command -v munged > /dev/null; then
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge > "$dir/apt.log" 2>&1; }; then
      echo "local_slurm.sh: could not install Debian's SLURM packages ($dir/apt.log)" >&2
      exit 3
    fi
  fi
  # munge: the package creates the key; without systemd nothing starts the daemon
  mkdir -p /run/munge && chown munge:munge /run/munge
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  if ! munge -n < /dev/null 2> /dev/null | unmunge > /dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    record munged /run/munge/munged.pid
    waitfor 10 bash -c 'munge -n </dev/null | unmunge' || { echo "munged did not start" >&2; exit 1; }
  fi
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  local host node
  host="$(hostname -s)"
  node="$(slurmd -C | head -1)" # "NodeName=vm CPUs=2 ... RealMemory=24105"
  cat > "$dir/slurm.conf" << EOF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
${node/ CPUs/ NodeAddr=127.0.0.1 CPUs} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$dir/slurm.conf" ]; then
    echo "local_slurm.sh: /etc/slurm/slurm.conf exists (a configured SLURM): not touching it" >&2
    exit 3
  fi
  mkdir -p /etc/slurm
  ln -sfn "$dir/slurm.conf" /etc/slurm/slurm.conf
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld
  record slurmctld "$dir/slurmctld.pid"
  slurmd
  record slurmd "$dir/slurmd.pid"
  if ! waitfor 60 bash -c 'sinfo -h -o %T | grep -qx idle'; then
    echo "the node did not become idle; $dir/log/:" >&2
    tail -n 20 "$dir"/log/*.log >&2
    exit 1
  fi
  echo "export SLURM_CONF=$SLURM_CONF"
}

down() {
  local name pid
  for name in slurmd slurmctld munged; do
    [ -f "$dir/started.$name" ] || continue
    pid="$(cat "$dir/started.$name")"
    kill "$pid" 2> /dev/null || true
    waitfor 20 gone "$pid" || { kill -9 "$pid" 2> /dev/null || true; waitfor 10 gone "$pid"; }
    rm -f "$dir/started.$name"
  done
  if [ "$(readlink /etc/slurm/slurm.conf 2> /dev/null)" = "$dir/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
  fi
}

case "$action" in
  up) up ;;
  down) down ;;
  *) echo "usage: local_slurm.sh up|down DIR" >&2; exit 2 ;;
esac
