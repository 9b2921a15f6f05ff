#!/usr/bin/env bash
# Stop the cluster that start_slurm.sh DIR started (munged stays: other users of munge may need it).
dir=${1:?usage: stop_slurm.sh DIR}
for name in slurmd slurmctld; do
    [ -f "$dir/$name.pid" ] && kill "$(cat "$dir/$name.pid")" 2>/dev/null
done
exit 0
