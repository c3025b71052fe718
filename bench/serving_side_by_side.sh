#!/usr/bin/env bash
# MLServer 1.7 and `labdeck serve` on the same iris models in one sitting, driven by the
# shared harness (../shared/bench/serving: wrk at 1/16/64 connections, a V2 gRPC client at
# 16 streams, rss.sh). About 12 minutes; run it on an otherwise idle machine.
#
#   bench/serving_side_by_side.sh
#
# Needs wrk (`apt-get install -y wrk`) and MLServer in .bench/mlserver (bench/README.md says
# how). Raw outputs go to bench/results/serving/; bench/serving_table.py prints the table.
# Each server gets the same Seldon-style folder (model.joblib): MLServer with its defaults
# (one inference worker process, request logging on), labdeck with its defaults (one
# process), then labdeck with --compile onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
harness=${SERVING_HARNESS:-../shared/bench/serving}
mlserver_venv=.bench/mlserver
out=bench/results/serving
models=.bench/serving-models
rm -rf "$out"; mkdir -p "$out"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

[ -x "$mlserver_venv/bin/mlserver" ] || { echo "MLServer is not installed in $mlserver_venv (see bench/README.md)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }
"$mlserver_venv/bin/python" "$harness/train.py" "$models" >"$out/train.txt"

wait_ready() {  # url
  for _ in $(seq 1 600); do
    curl -sf "$1/v2/health/ready" >/dev/null && return 0
    sleep 0.2
  done
  echo "server at $1 never became ready" >&2
  return 1
}

sweep() {  # label model lua pid
  LABEL="$1/$2/$3" SERVER_PID="$4" RAW_DIR="$out/raw" "$harness/serve_bench.sh" http://127.0.0.1:18080 "$2" "$3.lua" \
    | tee -a "$out/$1.txt"
}

grpc() {  # label model
  echo "grpc $1/$2 16 streams" >>"$out/$1.txt"
  "$mlserver_venv/bin/python" "$harness/grpc_bench.py" --target 127.0.0.1:18081 --model "$2" --concurrency 16 \
    | tee -a "$out/$1.txt"
}

memory() {  # label pid
  echo "memory $1" >>"$out/$1.txt"
  "$harness/rss.sh" "$2" | tee -a "$out/$1.txt"
}

# --- MLServer: both models in one server, as its model repository lays them out
(cd "$models/models" && MLSERVER_HTTP_PORT=18080 MLSERVER_GRPC_PORT=18081 MLSERVER_METRICS_PORT=18082 \
  exec "../../../$mlserver_venv/bin/mlserver" start .) >"$out/mlserver.log" 2>&1 &
pid=$!
wait_ready http://127.0.0.1:18080
curl -sf http://127.0.0.1:18080/v2/models/iris-rf/ready >/dev/null
memory mlserver "$pid"
sweep mlserver iris-lr v2_single "$pid"
sweep mlserver iris-lr v2_batch100 "$pid"
sweep mlserver iris-rf v2_single "$pid"
grpc mlserver iris-lr
kill "$pid"; wait "$pid" 2>/dev/null || true

# --- labdeck: one server per model (what a deployment runs), default and compiled
for variant in default onnx; do
  flags=()
  [ "$variant" = onnx ] && flags=(--compile onnx)
  for model in iris-lr iris-rf; do
    .venv/bin/labdeck serve "$models/seldon/$model" --name "$model" --port 18080 --grpc-port 18081 "${flags[@]}" \
      >"$out/labdeck-$variant-$model.log" 2>&1 &
    pid=$!
    wait_ready http://127.0.0.1:18080
    [ "$model" = iris-lr ] && memory "labdeck-$variant" "$pid"
    sweep "labdeck-$variant" "$model" v2_single "$pid"
    if [ "$model" = iris-lr ]; then
      sweep "labdeck-$variant" iris-lr v2_batch100 "$pid"
      sweep "labdeck-$variant" iris-lr v1_single "$pid"
      grpc "labdeck-$variant" iris-lr
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done

python3 bench/serving_table.py "$out"
