#!/usr/bin/env bash
# Do object masks from depth help training from a recording? (issue #18, docs/pretraining.md)
# The same dense training (config/train_pretrain_ablation.yaml from the ImageNet weights, STEPS steps) on the
# multi-view pairs of one recorded bag (a simulated camera sweep over one scene, the sample bag's look: `bag sample`,
# FRAMES frames), once without masks and once with data.bag_masks=depth_clusters (geometry/depth_clusters.py), then
# both scored in one run with scripts/score_candidate.sh. Interrupted runs resume; finished ones are kept.
#   scripts/bag_masks_ablation.sh          # about 30 min on the 2-core CPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-400}
FRAMES=${FRAMES:-120}
OUT=${OUT:-runs/abl_bag_masks}
DD=.venv/bin/dense-descriptor
BAG="$OUT/rec"
[[ -f "$BAG/metadata.yaml" ]] || $DD bag sample "$BAG" --frames "$FRAMES" --seed 21 --overwrite
COMMON=(data.kind=bag data.bag_path="$BAG" "data.bag_depth_tolerance=[0.003,0.0]" model.pretrained=true
        steps="$STEPS")

train() {  # name, overrides...
  local name=$1; shift
  local dir="$OUT/$name"
  if [[ -f "$dir/model.safetensors" ]]; then echo "train $name: done"; return; fi
  if [[ -f "$dir/checkpoints/last.pt" ]]; then
    "$DD" train --resume "$dir" --no-progress
  else
    "$DD" train --config config/train_pretrain_ablation.yaml "${COMMON[@]}" out_dir="$dir" "$@" --no-progress
  fi
}

train plain data.bag_masks=none
train masks data.bag_masks=depth_clusters
TAG=abl_bag_masks scripts/score_candidate.sh plain="$OUT/plain/model.safetensors" masks="$OUT/masks/model.safetensors"
