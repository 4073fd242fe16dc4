#!/usr/bin/env bash
# The whole training chain of the shipped default model (models/README.md, issue #14): effnet_lite0 from its ImageNet
# weights, D = 64, in stages that each fit a session on the 2-core CPU machine. Re-run it to go on: a finished
# stage (its model.safetensors exists) is skipped, an interrupted one resumes from its last checkpoint, so the chain
# spans sessions. STOP_AFTER=C stops after stage C. Then package:
#   KEYPOINT_DATA=data/sim_real EXTRA_MODELS="lite=models/lite/model.safetensors" \
#       scripts/package_default_model.sh runs/train_effnet_d64_stage_h_part
#
#   A  400 steps on photo pairs only, encoder fine-tuned at 0.1x, lighting changes   (runs/abl_photo/light, ~8 min)
#   B  1500 steps, a quarter of the pairs realistic multi-view scenes                 (config/train_effnet_d64.yaml, 25 min)
#   C  2000 steps more, the same recipe                                              (..._stage_c.yaml, 26 min)
#   D  2000 steps more                                          (stage C's config from C's model, 27 min)
#   E  2000 steps more                                          (stage C's config from D's model, 28 min)
#   F  2000 steps more, a third of the synthetic pairs cross-instance mugs            (..._stage_f.yaml, 30 min)
#      (the default of 2026-12-07 morning, id 73cacee123895053, was stage F on data/sim_real; the chain now
#      continues from E on the more-instances data instead:)
#   Fi stage F's config on data/sim_real_i250 (188 training mugs)                     (30 min)
#   G  2000 steps more, the same                                                      (26 min)
#   H  1000 steps: half the pairs synthetic, 60% of those cross-instance, and the part term
#      (config/train_effnet_d64_stage_h_part.yaml, 16 min): the default since 2026-12-07 afternoon
set -euo pipefail
cd "$(dirname "$0")/.."
DD=.venv/bin/dense-descriptor
STOP_AFTER=${STOP_AFTER:-H}
[[ -f data/sim_real/dataset.json ]] || \
  "$DD" sim generate --out data/sim_real --scenes 300 --views 6 --seed 0 --appearance realistic --workers 1
[[ -f data/sim_real_i250/dataset.json ]] || \
  "$DD" sim generate --out data/sim_real_i250 --scenes 900 --views 6 --seed 1 --object-seed 1 --instances 250 \
    --appearance realistic --workers 2          # 5 min, 2.7 GB

stage() {  # letter, run dir, train arguments...
  local letter=$1 dir=$2; shift 2
  if [[ -f "$dir/model.safetensors" ]]; then
    echo "stage $letter: done ($dir)"
  elif [[ -f "$dir/checkpoints/last.pt" ]]; then
    "$DD" train --resume "$dir" --no-progress
  else
    "$DD" train "$@" out_dir="$dir" --no-progress
  fi
  if [[ "$letter" == "$STOP_AFTER" ]]; then echo "stopped after stage $letter"; exit 0; fi
}

stage A runs/abl_photo/light --config config/train_effnet_stage1.yaml model.descriptor_dim=64 data.kind=images \
  data.val_pairs=24 finetune.pca_head_images=48 steps=400 val_every=200 ckpt_every=100 image_every=1000 workers=1 \
  finetune.encoder_lr_mult=0.1 finetune.freeze_stages=2 data.augment.illumination_p=0.5
stage B runs/train_effnet_d64 --config config/train_effnet_d64.yaml
stage C runs/train_effnet_d64_stage_c --config config/train_effnet_d64_stage_c.yaml
stage D runs/train_effnet_d64_stage_d --config config/train_effnet_d64_stage_c.yaml \
  init_from=runs/train_effnet_d64_stage_c/model.safetensors
stage E runs/train_effnet_d64_stage_e --config config/train_effnet_d64_stage_c.yaml \
  init_from=runs/train_effnet_d64_stage_d/model.safetensors
stage F runs/train_effnet_d64_stage_f --config config/train_effnet_d64_stage_f.yaml
stage Fi runs/train_effnet_d64_stage_f_i250 --config config/train_effnet_d64_stage_f.yaml \
  data.synthetic_dir=data/sim_real_i250 init_from=runs/train_effnet_d64_stage_e/model.safetensors
stage G runs/train_effnet_d64_stage_g_i250 --config config/train_effnet_d64_stage_f.yaml \
  data.synthetic_dir=data/sim_real_i250 init_from=runs/train_effnet_d64_stage_f_i250/model.safetensors
stage H runs/train_effnet_d64_stage_h_part --config config/train_effnet_d64_stage_h_part.yaml
