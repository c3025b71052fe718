#!/usr/bin/env bash
# MLflow's own server and labdeck, on the same machine in one sitting, driven by the shared
# tracking benchmark (../shared/bench/tracking). Writes bench/results/{mlflow,labdeck}.json
# and prints the side-by-side table.
#
#   bench/run_tracking.sh            full sizes (about 10 minutes)
#   bench/run_tracking.sh --quick    a smoke run
#
# Both servers use SQLite and a local artifact folder in a fresh temporary directory.
# MLflow runs with --workers 1 (its fastest setting on a reused connection) and its job
# runner off (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false) unless MLFLOW_JOBS=on.
set -euo pipefail
cd "$(dirname "$0")/.."
harness=${BENCH_HARNESS:-../shared/bench/tracking}
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

run_bench() {  # label url pid
  python3 "$harness/tracking_bench.py" --url "$2" --label "$1" --out "$results/$1.json" --server-pid "$3" "${@:4}"
}

jobs_env=false
[ "${MLFLOW_JOBS:-off}" = on ] && jobs_env=true
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$jobs_env .venv/bin/mlflow server --host 127.0.0.1 --port 5500 --workers 1 \
  --backend-store-uri "sqlite:///$work/mlflow.db" --artifacts-destination "$work/mlflow-artifacts" \
  >"$work/mlflow.log" 2>&1 &
mlflow_pid=$!
wait_healthy http://127.0.0.1:5500
run_bench mlflow http://127.0.0.1:5500 "$mlflow_pid" "$@"
kill "$mlflow_pid"; wait "$mlflow_pid" 2>/dev/null || true

.venv/bin/labdeck server --port 5501 --data-dir "$work/labdeck" >"$work/labdeck.log" 2>&1 &
labdeck_pid=$!
wait_healthy http://127.0.0.1:5501
run_bench labdeck http://127.0.0.1:5501 "$labdeck_pid" "$@"
kill "$labdeck_pid"; wait "$labdeck_pid" 2>/dev/null || true

python3 "$harness/compare.py" "$results/labdeck.json" "$results/mlflow.json" --names="labdeck;mlflow"
