#!/usr/bin/env bash
# Run all four benchmarks and render docs/benchmarks.md from their JSON output.
#
#   bash benchmarks/run_all.sh                     # full runs -> benchmarks/results/*.json -> docs/benchmarks.md
#   bash benchmarks/run_all.sh --data DIR          # another location of the real development set
#   bash benchmarks/run_all.sh --quick             # tiny configuration (about a minute) to check the setup;
#                                                  # writes under /tmp/mrclass-bench-quick, never the docs
#
# Options: --data DIR, --results DIR, --out FILE, --quick. The environment variable PYTHON picks the
# interpreter (default: .venv/bin/python when present, else python3). Run on an otherwise idle machine:
# the timings are wall-clock.
set -euo pipefail
cd "$(dirname "$0")/.."

data=() results=benchmarks/results out=docs/benchmarks.md quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=(--data "$2"); shift 2 ;;
    --results) results=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=1; results=/tmp/mrclass-bench-quick/results; out=/tmp/mrclass-bench-quick/benchmarks.md; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

py=${PYTHON:-}
[ -z "$py" ] && { [ -x .venv/bin/python ] && py=.venv/bin/python || py=python3; }
export NO_ET=1
mkdir -p "$results"

load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk "BEGIN{exit !($load > 0.5)}"; then
  echo "warning: load average is $load; other work on this machine will slow the timings" >&2
fi

if [ "$quick" = 1 ]; then
  speed=(--match ProstateX-0000_7_ADC --match niivue_register/dwi --match BraTS-GLI-00001-000-t1n --reps 1)
  e2e=(--series 'ProstateX-0000_7*' 'ProstateX-0000_8*' --reps 1)
  scale=(--series ProstateX-0000_7_ADC --sizes 1 2)
else
  speed=() e2e=(--copies 2) scale=()  # end to end: the bar's participant of about 10 series (5 ProstateX series twice)
fi

set -x
"$py" benchmarks/classifier_speed.py "${data[@]}" "${speed[@]}" --json "$results/classifier_speed.json"
"$py" benchmarks/end_to_end.py "${data[@]}" "${e2e[@]}" --json "$results/end_to_end.json"
"$py" benchmarks/scaling.py "${data[@]}" "${scale[@]}" --json "$results/scaling.json"
"$py" benchmarks/accuracy.py "${data[@]}" --json "$results/accuracy.json"
"$py" benchmarks/render.py --results "$results" --out "$out"
