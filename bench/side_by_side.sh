#!/usr/bin/env bash
# MLflow's own server and labdeck on the same machine in one sitting, each on a fresh
# SQLite database and artifact folder, driven by the same REST-only harness.
#
#   bench/side_by_side.sh tracking [--quick]   ../shared/bench/tracking/tracking_bench.py (about 10 min)
#   bench/side_by_side.sh registry [flags]     bench/registry_bench.py (about 5 min)
#
# Results go to bench/results/<kind>-{mlflow,labdeck}.json, and a table with the ratios is
# printed. MLflow runs with --workers 1 (its fastest setting on a reused connection) and its
# job runner off (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false) unless MLFLOW_JOBS=on, which
# is its default and what its memory figure should be read with.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: bench/side_by_side.sh tracking|registry [harness flags]}
shift
results=bench/results
mkdir -p "$results"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

wait_healthy() {
  for _ in $(seq 1 600); do
    curl -sf "$1/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "server at $1 never became healthy" >&2
  return 1
}

run_harness() {  # label url pid
  case "$kind" in
    tracking) python3 "${BENCH_HARNESS:-../shared/bench/tracking}/tracking_bench.py" --url "$2" --label "$1" \
                --out "$results/tracking-$1.json" --server-pid "$3" "${@:4}" ;;
    registry) python3 bench/registry_bench.py --url "$2" --label "$1" --out "$results/registry-$1.json" "${@:4}" ;;
    *) echo "unknown benchmark $kind" >&2; exit 2 ;;
  esac
}

jobs_env=false
[ "${MLFLOW_JOBS:-off}" = on ] && jobs_env=true
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$jobs_env .venv/bin/mlflow server --host 127.0.0.1 --port 5500 --workers 1 \
  --backend-store-uri "sqlite:///$work/mlflow.db" --artifacts-destination "$work/mlflow-artifacts" \
  >"$work/mlflow.log" 2>&1 &
mlflow_pid=$!
wait_healthy http://127.0.0.1:5500
run_harness mlflow http://127.0.0.1:5500 "$mlflow_pid" "$@"
kill "$mlflow_pid"; wait "$mlflow_pid" 2>/dev/null || true

.venv/bin/labdeck server --port 5501 --data-dir "$work/labdeck" >"$work/labdeck.log" 2>&1 &
labdeck_pid=$!
wait_healthy http://127.0.0.1:5501
run_harness labdeck http://127.0.0.1:5501 "$labdeck_pid" "$@"
kill "$labdeck_pid"; wait "$labdeck_pid" 2>/dev/null || true

python3 bench/ratios.py "$results/$kind-labdeck.json" "$results/$kind-mlflow.json"
