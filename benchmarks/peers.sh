#!/usr/bin/env bash
# mlship side by side with its peers (../shared/bench-peers: MLServer, FastAPI by hand, a bare-HTTP floor,
# the model in-process), on THIS checkout: installs it into the peers' mlship venv, converts
# apps/mlship/fraud_lr.ipynb, then runs bench-peers and writes its report (results.md, results.json).
#
#   benchmarks/peers.sh [--image REF] [--peers DIR] [TARGET ...] [bench.py options]
#
#   benchmarks/peers.sh raw http-floor fastapi-naive mlserver mlship mlship-w1 --model lr --rounds 3
#   benchmarks/peers.sh --image 127.0.0.1:5000/fraudlr:v1 raw mlserver mlship mlship-image --model lr
#
# --image REF   also defines the target `mlship-image`: the built image, started with `docker run`
#               (port published on 127.0.0.1; DOCKER_HOST as for the rest of mlship).
# --peers DIR   the bench-peers checkout (default: ../shared/bench-peers next to this checkout's parent,
#               or $BENCH_PEERS).
# The report goes to benchmarks/results/peers-<UTC stamp>/ unless --out is given. Figures are noisy on a
# shared machine: compare the ratios within one run, not runs with each other.
set -euo pipefail
checkout="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="${BENCH_PEERS:-$checkout/../../shared/bench-peers}"
[ -d "$peers" ] || peers="/work/shared/bench-peers"
image=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image="${2:?--image needs an image reference}"; shift 2 ;;
    --peers) peers="${2:?--peers needs a directory}"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
peers="$(cd "$peers" && pwd)"
export PEERS_HOME="${PEERS_HOME:-/tmp/peers}"

has_out=false
for a in "${args[@]}"; do [ "$a" = "--out" ] && has_out=true; done
$has_out || args+=(--out "$checkout/benchmarks/results/peers-$(date -u +%Y%m%dT%H%M)")

"$peers/apps/mlship/prepare.sh" "$checkout"

if [ -n "$image" ]; then
  spec_dir="$(mktemp -d)"
  name="mlship-image-$$"
  trap 'rm -rf "$spec_dir"; docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
  cat > "$spec_dir/mlship-image.json" <<JSON
{
  "name": "mlship-image",
  "description": "the image mlship built ($image), started with docker run (auto workers)",
  "port": 18112,
  "start": ["docker", "run", "--rm", "--name", "$name", "-p", "127.0.0.1:\${PORT}:8080", "$image"],
  "health_url": "http://127.0.0.1:\${PORT}/health/ready",
  "predict_url": "http://127.0.0.1:\${PORT}/predict",
  "batch_url": "http://127.0.0.1:\${PORT}/predict",
  "body": {"format": "records", "single_key": "", "batch_key": ""},
  "check": true,
  "versions": []
}
JSON
  for i in "${!args[@]}"; do
    [ "${args[$i]}" = "mlship-image" ] && args[$i]="$spec_dir/mlship-image.json"
  done
fi

"$peers/run.sh" "${args[@]}"
