#!/usr/bin/env bash
# A one-node SLURM cluster on loopback (slurmctld + slurmd + slurmdbd on MariaDB), for `make test-slurm`.
# Needs root and Debian's packages; idempotent: a second run restarts the daemons with the same config.
# The node advertises two GPUs backed by stand-in device files (copies of /dev/null's device number) and the
# memory of a GPU node (SlurmdParameters=config_overrides), so the profile's `--gpus` and full-size `--mem`
# requests are scheduled as on a real cluster, and the training rules' torchrun launch runs, on CPU.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "start-cluster.sh: needs root (it installs Debian's slurm packages and writes /etc/slurm)" >&2
  exit 2
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurmdbd slurm-client munge mariadb-server >/dev/null
fi

HOST=$(hostname -s)
CPUS=$(nproc)
STATE=/var/lib/vila-slurm
mkdir -p "$STATE"/{ctld,d,log} /run/munge /run/mysqld
chown slurm:slurm "$STATE"/ctld "$STATE"/log
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld

pkill -x slurmctld || true; pkill -x slurmd || true; pkill -x slurmdbd || true
sleep 1

# munge: the shared-secret authentication every slurm daemon and client uses
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged

# MariaDB: the accounting database behind sacct
if ! pgrep -x mariadbd >/dev/null; then
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
  (mariadbd --user=mysql --socket=/run/mysqld/mysqld.sock >"$STATE"/log/mariadb.log 2>&1 &)
  for _ in $(seq 60); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 1; done
fi
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
chown slurm:slurm /etc/slurm/slurmdbd.conf
chmod 600 /etc/slurm/slurmdbd.conf

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=vila
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
NodeName=$HOST CPUs=$CPUS RealMemory=262144 Gres=gpu:2 State=UNKNOWN
PartitionName=gpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
for i in 0 1; do [ -e "$STATE/gpu$i" ] || mknod "$STATE/gpu$i" c 1 3; done
echo "NodeName=$HOST Name=gpu File=$STATE/gpu[0-1]" > /etc/slurm/gres.conf

slurmdbd
for _ in $(seq 30); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
sacctmgr -i add cluster vila >/dev/null 2>&1 || true
sacctmgr -i add account vila Cluster=vila Description=vila-test Organization=vila >/dev/null 2>&1 || true
sacctmgr -i add user "$(id -un)" Account=vila >/dev/null 2>&1 || true

slurmctld
slurmd
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo
sacctmgr -n list association format=cluster,account,user
