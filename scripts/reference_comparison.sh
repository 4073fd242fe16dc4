#!/usr/bin/env bash
# Our architectures (lite, fpn_resnet18) against the Dense Object Nets reference (ResNet-34 dilated to
# stride 8; D=3 as in their default, and D=16), all trained on the same data with the same config and the
# same step budget, then scored with every baseline on the shipped model's fixed evaluation pairs.
# Run from the repository root:
#   scripts/reference_comparison.sh            # STEPS=300 (about 55 min of training on 2 CPU cores, 9 min eval)
#   STEPS=3000 scripts/reference_comparison.sh # the shipped model's budget (about 7 h per reference on CPU)
# The four trainings run side by side, one thread each (faster than sharing two threads on a 2-core
# machine); a run whose model exists is not trained again, an interrupted one is resumed from its last
# checkpoint (bit-exact), so the long budget can be spread over several sessions.
# Results: runs/eval_reference_s$STEPS/report.md.
set -euo pipefail
STEPS=${STEPS:-300}
DATA=${DATA:-data/sim_default}
PAIRS=${PAIRS:-models/default/eval_pairs.json}
DD=.venv/bin/dense-descriptor
[[ -f "$DATA/dataset.json" ]] || { echo "no dataset in $DATA: run sim generate first (see models/README.md)" >&2; exit 1; }
[[ -f "$PAIRS" ]] || { echo "no pair list $PAIRS" >&2; exit 1; }

declare -A OVERRIDES=(
  [lite]="model.name=lite model.descriptor_dim=16"
  [fpn18]="model.name=fpn_resnet18 model.descriptor_dim=16"
  [don34_d3]="model.name=don_resnet34 model.descriptor_dim=3"
  [don34_d16]="model.name=don_resnet34 model.descriptor_dim=16"
)
mkdir -p runs
pids=()
models=(--model "default=models/default/model.safetensors")
for name in lite fpn18 don34_d3 don34_d16; do
  run=runs/ref_${name}_s$STEPS
  models+=(--model "${name}_s$STEPS=$run/model.safetensors")
  if [[ -f "$run/model.safetensors" ]]; then echo "$run: trained already"; continue; fi
  if [[ -f "$run/checkpoints/last.pt" ]]; then  # an interrupted run (killed, or --stop-at): continue it
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $DD train --resume "$run" --no-progress >> "$run.log" 2>&1 &
  else
    # shellcheck disable=SC2086  # the overrides are separate words
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $DD train --config config/train_default.yaml ${OVERRIDES[$name]} \
        steps="$STEPS" out_dir="$run" --no-progress > "$run.log" 2>&1 &
  fi
  pids+=($!)
  echo "training $run (log $run.log)"
done
for pid in "${pids[@]}"; do wait "$pid"; done

$DD eval --pairs "$PAIRS" --data "$DATA" samples_heldout --out "runs/eval_reference_s$STEPS" --threads 1 \
    --no-progress "${models[@]}" \
    --baselines rootsift rgb lab random:lite random:fpn_resnet18 random:fpn_resnet34 random:don_resnet18 \
    random:don_resnet34:3 random:don_resnet34:16
sed -n '1,/^## cross-view (all/p' "runs/eval_reference_s$STEPS/report.md"
