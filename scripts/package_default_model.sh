#!/usr/bin/env bash
# Package a trained run as the shipped default model (models/default/): weights, ONNX export with a parity
# check, the mug reference keypoints built from the simulator's ground truth, and the evaluation the model
# card quotes. Run from the repository root after training (models/README.md lists every stage's command):
#   .venv/bin/dense-descriptor sim generate --out data/sim_default --scenes 300 --views 6 --seed 0 --appearance cartoon
#   .venv/bin/dense-descriptor sim generate --out data/sim_real --scenes 300 --views 6 --seed 0 --appearance realistic
#   scripts/train_effnet_default.sh                       # the default's six training stages
#   EXTRA_MODELS="lite=models/lite/model.safetensors" scripts/package_default_model.sh runs/train_effnet_d64_stage_f
# DATA: the synthetic dataset of the fixed pairs (models/default/eval_pairs.json refers to its scenes).
# KEYPOINT_DATA: the dataset whose training mugs give the reference keypoints (default data/sim_real, the look
# the default model trained on; `lite` was packaged with its cartoon data/sim_default).
# REALISTIC_DATA: a realistic-look dataset scored too (its test split, seed 0; default data/sim_real when present).
# EXTRA_MODELS adds more NAME=FILE models to the evaluations (e.g. the previous default, for the card).
set -euo pipefail
RUN=${1:-runs/train_effnet_d64_stage_f}
DATA=${DATA:-data/sim_default}
KEYPOINT_DATA=${KEYPOINT_DATA:-data/sim_real}
REALISTIC_DATA=${REALISTIC_DATA:-data/sim_real}
OUT=models/default
DD=.venv/bin/dense-descriptor
[[ -f "$RUN/model.safetensors" ]] || { echo "no $RUN/model.safetensors: train first" >&2; exit 1; }
for d in "$DATA" "$KEYPOINT_DATA"; do
    [[ -f "$d/dataset.json" ]] || { echo "no dataset in $d: run sim generate first" >&2; exit 1; }
done
mkdir -p "$OUT"
cp "$RUN/model.safetensors" "$OUT/model.safetensors"
rm -f "$OUT/matcher.safetensors" "$OUT/matcher.onnx"  # a matcher reads one model's maps: retrained at the end
cp "$RUN/config.yaml" "$OUT/train_config.yaml"
$DD export --model "$OUT/model.safetensors" --out "$OUT/model.onnx"
MODELS=(--model "default=$OUT/model.safetensors")
for m in ${EXTRA_MODELS:-}; do MODELS+=(--model "$m"); done
# The node processes at 320x240 by default: the reference descriptors are taken at that resolution.
$DD keypoints from-sim --model "$OUT/model.onnx" --data "$KEYPOINT_DATA" --category mug --instances 40 \
    --resolution 320x240 --out "$OUT/mug_keypoints.json" --eval-split test --threads 2 | tee "$OUT/keypoints_eval.txt"
# The part probe of the node's labels output: a linear classifier on the frozen descriptors (issue #15), fitted on
# the training split of KEYPOINT_DATA and scored on its held-out instances beside raw RGB and random weights.
$DD probe "${MODELS[@]}" --baselines rgb random:effnet_lite0:64 random:lite --data "$KEYPOINT_DATA" \
    --out runs/probe_default --threads 2 --no-progress
cp runs/probe_default/probe_default.safetensors "$OUT/part_probe.safetensors"
cp runs/probe_default/report.md "$OUT/probe_report.md"
# The fixed pairs every comparison is scored on: drawn (seeded) the first time, then kept.
PAIRS=()
[[ -f "$OUT/eval_pairs.json" ]] && PAIRS=(--pairs "$OUT/eval_pairs.json")
BASELINES=(--baselines rootsift rootsift_oriented rgb lab pretrained:effnet_lite0 random:lite)
$DD eval "${MODELS[@]}" "${BASELINES[@]}" "${PAIRS[@]}" \
    --data "$DATA" samples_heldout --out runs/eval_default --threads 1 --no-progress
cp runs/eval_default/report.md "$OUT/eval_report.md"
cp runs/eval_default/pairs.json "$OUT/eval_pairs.json"
if [[ -f "$REALISTIC_DATA/dataset.json" ]]; then
    $DD eval "${MODELS[@]}" "${BASELINES[@]}" --data "$REALISTIC_DATA" --sets cross_view cross_instance keypoints \
        --out runs/eval_default_realistic --threads 1 --no-progress --no-matching
    cp runs/eval_default_realistic/report.md "$OUT/eval_report_realistic.md"
fi
# The learned matcher (issue #17, docs/matcher.md) reads this model's maps: a matcher trained on the previous default
# would be refused by the node, so it is retrained on the new one (MATCHER_DATA: its multi-view dataset; about 40
# min on 2 CPU cores) or, with MATCHER=skip, removed.
if [[ "${MATCHER:-train}" != skip ]]; then
    $DD matcher train --config config/matcher_default.yaml descriptor_model="$OUT/model.safetensors" \
        data.synthetic_dir="${MATCHER_DATA:-data/sim_real_i250}" out_dir=runs/matcher_default --no-progress
    cp runs/matcher_default/matcher.safetensors "$OUT/matcher.safetensors"
    $DD matcher export "$OUT/matcher.safetensors" --out "$OUT/matcher.onnx"
    $DD matcher eval --model "$OUT/model.onnx" --matcher "$OUT/matcher.onnx" --data "${MATCHER_DATA:-data/sim_real_i250}" \
        --pairs 100 --out runs/match_eval_default --no-progress
    cp runs/match_eval_default/report.md "$OUT/matcher_report.md"
fi
chmod 644 "$OUT"/*
ls -la "$OUT"
