#!/bin/sh
# Run every benchmark, one after the other, printing all their figures.
#   sh bench/run_all.sh > bench-output.txt      (about 20 minutes)
cd "$(dirname "$0")/.." || exit 1
PY=.venv/bin/python
for script in throughput loss nack_scenario scale memory startup streaming gui_latency \
        seeder_cpu leecher_cpu pcap_cost player_latency; do
    $PY bench/$script.py || echo "bench/$script.py exited with $?"
    echo
done
