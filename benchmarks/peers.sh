#!/usr/bin/env bash
# mlship side by side with its peers (../shared/bench-peers: MLServer, FastAPI by hand, a bare-HTTP floor,
# the model in-process), on THIS checkout: installs it into the peers' mlship venv, converts
# apps/mlship/fraud_lr.ipynb, then runs bench-peers and writes its report (results.md, results.json).
#
#   benchmarks/peers.sh [--image REF] [--peers DIR] [TARGET ...] [bench.py options]
#
#   benchmarks/peers.sh raw http-floor fastapi-naive mlserver mlship mlship-w1 --model lr --rounds 3
#   benchmarks/peers.sh --image 127.0.0.1:5000/fraudlr:v1 raw mlserver mlship mlship-image --model lr
#   benchmarks/peers.sh raw fastapi-naive mlserver mlship mlship-w1 --model hgb
#
# --image REF   also defines the target `mlship-image`: the built image, started with `docker run -d` (port
#               published on 127.0.0.1; DOCKER_HOST as for the rest of mlship; REF as `docker run` resolves
#               it locally, e.g. fraudlr:dev). Detached, so the service's stdout (the prediction log) goes
#               to the engine's log file as on Kubernetes, not through an attached client: under podman an
#               attached `docker run` streams every line through the API service, which then takes a core.
#               The start command then polls `docker inspect` every 2 s rather than `docker wait`: podman's
#               Docker-compatible wait endpoint spins, taking a core (113 % measured) for as long as it waits.
# --model hgb   (bench-peers' default) the mlship targets serve a project converted from a copy of the
#               notebook with the harness's HistGradientBoostingClassifier, so every target serves one model.
# --peers DIR   the bench-peers checkout (default: ../shared/bench-peers next to this checkout's parent,
#               or $BENCH_PEERS).
# The report goes to benchmarks/results/peers-<UTC stamp>/ unless --out is given, with targets.txt: issue
# 16's targets, met or not (benchmarks/peers_targets.py). Figures are noisy on a
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

spec_dir="$(mktemp -d)"
name="mlship-image-$$"
trap 'rm -rf "$spec_dir"; docker rm -f "$name" >/dev/null 2>&1 || true' EXIT

# --model hgb: the mlship targets serve the same HistGradientBoostingClassifier as the other targets (the
# harness's "hgb"), from a project converted from a copy of fraud_lr.ipynb whose model cell says so.
model=hgb
for i in "${!args[@]}"; do [ "${args[$i]}" = "--model" ] && model="${args[$((i + 1))]}"; done
if [ "$model" = "hgb" ]; then
  home="$PEERS_HOME/mlship"
  "$home/venv/bin/python" - "$peers/apps/mlship/fraud_lr.ipynb" "$home/fraud_hgb.ipynb" <<'PY'
import json, sys
notebook = json.load(open(sys.argv[1]))
swaps = {
    "from sklearn.linear_model import LogisticRegression":
        "from sklearn.ensemble import HistGradientBoostingClassifier",
    'Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])':
        "HistGradientBoostingClassifier(max_iter=200, random_state=42)",
}
done = set()
for cell in notebook["cells"]:
    source = "".join(cell["source"])
    for old, new in swaps.items():
        if old in source:
            source, _ = source.replace(old, new), done.add(old)
    cell["source"] = source
if done != set(swaps):
    sys.exit(f"fraud_lr.ipynb changed: cannot make the HGB copy ({sorted(set(swaps) - done)})")
json.dump(notebook, open(sys.argv[2], "w"))
PY
  rm -rf "$home/fraudhgb"
  (cd "$home" && venv/bin/mlship init --from-notebook fraud_hgb.ipynb fraudhgb)
  for target in mlship mlship-w1; do
    sed 's#/fraudlr#/fraudhgb#g; s#fraud_lr.ipynb#fraud_hgb.ipynb (HGB)#' "$peers/targets/$target.json" \
      > "$spec_dir/$target.json"
    for i in "${!args[@]}"; do
      [ "${args[$i]}" = "$target" ] && args[$i]="$spec_dir/$target.json"
    done
  done
fi

if [ -n "$image" ]; then
  cat > "$spec_dir/mlship-image.json" <<JSON
{
  "name": "mlship-image",
  "description": "the image mlship built ($image), started with docker run (auto workers)",
  "port": 18112,
  "start": ["sh", "-c", "trap 'docker rm -f $name >/dev/null 2>&1; exit 0' TERM INT; trap 'docker rm -f $name >/dev/null 2>&1' EXIT; docker run -d --rm --name $name -p 127.0.0.1:\${PORT}:8080 $image >/dev/null && while [ \\"\$(docker inspect -f '{{.State.Running}}' $name 2>/dev/null)\\" = true ]; do sleep 2; done & wait \$!"],
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

# Issue 16's targets, met or not, from the report just written (also saved beside it as targets.txt).
out=""
for i in "${!args[@]}"; do [ "${args[$i]}" = "--out" ] && out="${args[$((i + 1))]}"; done
"$PEERS_HOME/mlship/venv/bin/python" "$checkout/benchmarks/peers_targets.py" "$out" | tee "$out/targets.txt"
