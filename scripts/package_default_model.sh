#!/usr/bin/env bash
# Package a trained run as the shipped default model (models/default/): weights, ONNX export with a parity
# check, the mug reference keypoints built from the simulator's ground truth, and the evaluation the model
# card quotes. Run from the repository root after training:
#   .venv/bin/dense-descriptor sim generate --out data/sim_default --scenes 300 --views 6 --seed 0 --appearance cartoon
#   .venv/bin/dense-descriptor train --config config/train_default.yaml          # stage 1
#   .venv/bin/dense-descriptor train --config config/train_default_stage2.yaml   # stage 2, from stage 1's weights
#   .venv/bin/dense-descriptor train --config config/train_default_stage3.yaml   # stage 3, from stage 2's weights
#   scripts/package_default_model.sh runs/train_default_stage3
# EXTRA_MODELS adds more NAME=FILE models to the evaluation (e.g. the previous default, for the card).
set -euo pipefail
RUN=${1:-runs/train_default_stage3}
DATA=${DATA:-data/sim_default}
OUT=models/default
DD=.venv/bin/dense-descriptor
[[ -f "$RUN/model.safetensors" ]] || { echo "no $RUN/model.safetensors: train first" >&2; exit 1; }
[[ -f "$DATA/dataset.json" ]] || { echo "no dataset in $DATA: run sim generate first" >&2; exit 1; }
mkdir -p "$OUT"
cp "$RUN/model.safetensors" "$OUT/model.safetensors"
cp "$RUN/config.yaml" "$OUT/train_config.yaml"
$DD export --model "$OUT/model.safetensors" --out "$OUT/model.onnx"
# The node processes at 320x240 by default: the reference descriptors are taken at that resolution.
$DD keypoints from-sim --model "$OUT/model.onnx" --data "$DATA" --category mug --instances 8 \
    --resolution 320x240 --out "$OUT/mug_keypoints.json" --eval-split test --threads 2 | tee "$OUT/keypoints_eval.txt"
# The fixed pairs every comparison is scored on: drawn (seeded) the first time, then kept.
PAIRS=()
[[ -f "$OUT/eval_pairs.json" ]] && PAIRS=(--pairs "$OUT/eval_pairs.json")
MODELS=(--model "default=$OUT/model.safetensors")
for m in ${EXTRA_MODELS:-}; do MODELS+=(--model "$m"); done
$DD eval "${MODELS[@]}" --baselines rootsift rgb lab pretrained:effnet_lite0 random:lite "${PAIRS[@]}" \
    --data "$DATA" samples_heldout --out runs/eval_default --threads 1 --no-progress
cp runs/eval_default/report.md "$OUT/eval_report.md"
cp runs/eval_default/pairs.json "$OUT/eval_pairs.json"
ls -la "$OUT"
