#!/usr/bin/env bash
# Does fine-tuning the pretrained encoder help on real images, and do lighting changes in the augmentation help?
# (docs/pretrained_encoder.md, issue #14). Three short runs of effnet_lite0 (ImageNet weights, D = 64, head started
# at the hypercolumn's PCA) on augmentation pairs of the training photos only, same steps, same seed, same pairs:
#   frozen     the encoder frozen, only the 1x1 head learns
#   finetune   the encoder learns too (0.1x learning rate, stem + block 0 frozen, batch-norm statistics frozen)
#   light      finetune + lighting changes in the augmentation (data.augment.illumination_p)
# then scores them with the untrained hypercolumn and RootSIFT on the default model's fixed pairs: every set of the
# file when data/sim_default exists (`sim generate --out data/sim_default --scenes 300 --views 6 --seed 0
# --appearance cartoon`, 3 min), else the real-image and photo-augmentation sets, which need no synthetic data.
#
#   STEPS=400 scripts/effnet_photo_ablation.sh          # about 25 min on the 2-core CPU machine
# Interrupted runs resume from their last checkpoint; finished runs are not trained again.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-400}
OUT=${OUT:-runs/abl_photo}
DD=.venv/bin/dense-descriptor
COMMON=(model.descriptor_dim=64 data.kind=images data.val_pairs=24 finetune.pca_head_images=48
        steps="$STEPS" val_every=200 ckpt_every=100 image_every=1000 workers=1)

train() {  # name, overrides...
  local name=$1; shift
  local dir="$OUT/$name"
  if [[ -f "$dir/model.safetensors" ]]; then echo "$name: done"; return; fi
  if [[ -f "$dir/checkpoints/last.pt" ]]; then
    "$DD" train --resume "$dir" --no-progress
  else
    "$DD" train --config config/train_effnet_stage1.yaml "${COMMON[@]}" out_dir="$dir" "$@" --no-progress
  fi
}

train frozen finetune.encoder_lr_mult=0
train finetune finetune.encoder_lr_mult=0.1 finetune.freeze_stages=2
train light finetune.encoder_lr_mult=0.1 finetune.freeze_stages=2 data.augment.illumination_p=0.5

SETS=()
[[ -d data/sim_default ]] || SETS=(--sets augment real_photo real_stereo)
"$DD" eval --model frozen="$OUT/frozen/model.safetensors" --model finetune="$OUT/finetune/model.safetensors" \
  --model light="$OUT/light/model.safetensors" --baselines pretrained:effnet_lite0 rootsift \
  --pairs models/default/eval_pairs.json "${SETS[@]}" \
  --out "$OUT/eval" --threads 1 --no-progress --no-matching --no-figures
cat "$OUT/eval/report.md"
