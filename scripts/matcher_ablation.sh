#!/usr/bin/env bash
# Short ablations of the learned matcher (issue #17, docs/matcher.md): 400 steps each on the same pairs and seeds,
# scored by the run's own held-out validation every 100 steps (32 pairs: synthetic test-split views 20-45 degrees
# apart and augmentations of the held-out photos). Arms (ARMS env, default all):
#   descriptors  residual start, fine level from the descriptors alone (no image features)
#   image        + the image CNN at the fine level
#   scratch      LoFTR's start: no residual path from the descriptors (features learned from scratch)
#   layers2      as descriptors, with 2 instead of 4 pairs of attention layers (the cost: docs/matcher.md)
# Then compare the "step N: held-out ..." lines of runs/matcher_abl_<arm>.log (or TensorBoard, runs/matcher_abl_*/tb).
set -euo pipefail
cd "$(dirname "$0")/.."
ARMS=${ARMS:-"descriptors image scratch layers2"}
common=(steps=400 warmup_steps=30 val_every=100 matcher.fine_layers=1 fine_ce_weight=0)
for arm in $ARMS; do
  case $arm in
    descriptors) extra=(matcher.image_channels=0) ;;
    image) extra=() ;;
    scratch) extra=(matcher.image_channels=0 matcher.residual_start=false) ;;
    layers2) extra=(matcher.image_channels=0 matcher.layers=2) ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
  # (options first: argparse takes the key=value overrides as one group)
  .venv/bin/dense-descriptor matcher train --config config/matcher_default.yaml --no-progress \
    "${common[@]}" "${extra[@]}" out_dir=runs/matcher_abl_$arm \
    > runs/matcher_abl_$arm.log 2>&1
  grep "held-out" runs/matcher_abl_$arm.log | sed "s/^/$arm: /"
done
