#!/usr/bin/env bash
# The cost of each step against the simulator's scale (docs/scaling.md, issue 17).
#
#   benchmarks/cost_growth.sh [ROUNDS] [SCALE ...]     e.g. benchmarks/cost_growth.sh 3 1 4 16
#
# Per round and scale: a fresh yarnit workspace in /tmp/spindle-growth-SCALE, 3 simulated days,
# each day ingested and validated in its own process, search_ranker trained for day 3 and
# evaluated on day 3; every command under /usr/bin/time. Writes one TSV per round and scale,
# /tmp/spindle-growth-SCALE-ROUND.tsv: step, wall s, user s, system s, peak RSS KB.
# Run it from a clean clone with PYTHONPATH=<clone>/src to time that commit's code.
set -u
rounds=${1:-3}; shift || true
scales=${*:-1 4 16}
SP=${SPINDLE:-spindle}
for round in $(seq 1 "$rounds"); do
  for scale in $scales; do
    out=/tmp/spindle-growth-$scale-$round.tsv; ws=/tmp/spindle-growth-$scale
    rm -rf "$ws"; $SP init "$ws" --example yarnit > /dev/null
    t() { /usr/bin/time -f "$1\t%e\t%U\t%S\t%M" -a -o "$out" "${@:2}" > /dev/null 2>&1; }
    : > "$out"
    t simulate $SP simulate --days 3 --scale "$scale" -w "$ws"
    for d in 2026-01-01 2026-01-02 2026-01-03; do
      t "ingest:$d" $SP ingest --date "$d" -w "$ws"
      t "validate:$d" $SP validate --date "$d" -w "$ws"
    done
    t train $SP train search_ranker --date 2026-01-03 -w "$ws"
    t evaluate $SP evaluate search_ranker --version 1 --date 2026-01-03 -w "$ws"
    echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out"
  done
done
