#!/usr/bin/env bash
# A single-node Slurm cluster on localhost for tests/test_sweep.py: Debian's slurmctld, slurmd and munge, installed
# on first use (needs root and apt), configured in a folder of its own. Prints the SLURM_CONF to use; exit 3 when
# Slurm cannot be had here (the test then skips, saying why). Stop it with tests/slurm/stop_slurm.sh DIR.
set -euo pipefail
dir=${1:?usage: start_slurm.sh DIR}
mkdir -p "$dir"/state "$dir"/spool
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "slurm is not installed and cannot be (needs root and apt-get)" >&2; exit 3
    fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge; } >"$dir/apt.log" 2>&1 \
        || { echo "apt-get could not install slurm (see $dir/apt.log)" >&2; exit 3; }
fi
[ "$(id -u)" = 0 ] || { echo "slurmd must run as root here" >&2; exit 3; }
host=$(hostname)
if ! pgrep -x munged >/dev/null; then
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged || /usr/sbin/munged --force
fi
cat >"$dir/slurm.conf" <<CONF
ClusterName=trexci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^idle'; then echo "$SLURM_CONF"; exit 0; fi
    sleep 0.5
done
echo "slurm did not come up (see $dir/slurmctld.log, $dir/slurmd.log)" >&2
exit 3
