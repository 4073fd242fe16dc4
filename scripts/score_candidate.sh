#!/usr/bin/env bash
# Score candidate models the way the model card does, in one run, for ablations between training stages:
#   scripts/score_candidate.sh NAME=runs/X/model.safetensors [NAME2=FILE2 ...]
# 1. the fixed pairs of the shipped card (models/default/eval_pairs.json: real photos, real stereo, photo
#    augmentation, cartoon cross-view / cross-instance / keypoints) -> runs/score_<tag>/fixed
# 2. the realistic look's held-out instances, 100 pairs per set (cross-view, cross-instance with the per-category
#    table, keypoint transfer), seed 0 -> runs/score_<tag>/realistic
# 3. the linear part probe on data/sim_real (issue #15) -> runs/score_<tag>/probe
# then one line per model with the numbers the issues track. TAG (default: the first NAME) names the folder.
# About 3 min per model on this 2-core machine.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 NAME=FILE [NAME=FILE ...]" >&2; exit 2; }
DD=.venv/bin/dense-descriptor
PY=.venv/bin/python
TAG=${TAG:-${1%%=*}}
OUT=runs/score_$TAG
MODELS=()
for m in "$@"; do MODELS+=(--model "$m"); done
mkdir -p "$OUT"
trap 'echo "failed: see the logs in $OUT/" >&2' ERR
$DD eval "${MODELS[@]}" --pairs models/default/eval_pairs.json --data data/sim_default samples_heldout \
    --out "$OUT/fixed" --threads 2 --no-matching --no-figures --no-progress > "$OUT/fixed.log" 2>&1
$DD eval "${MODELS[@]}" --data data/sim_real --sets cross_view cross_instance keypoints --pairs-per-set 100 \
    --out "$OUT/realistic" --threads 2 --no-matching --no-figures --no-progress > "$OUT/realistic.log" 2>&1
$DD probe "${MODELS[@]}" --data data/sim_real --out "$OUT/probe" --threads 2 --no-progress --no-figures \
    > "$OUT/probe.log" 2>&1
$PY - "$OUT" <<'PYEOF'
import json, sys
out = sys.argv[1]
fixed = json.load(open(f"{out}/fixed/report.json"))["methods"]
real = json.load(open(f"{out}/realistic/report.json"))["methods"]
probe = json.load(open(f"{out}/probe/report.json"))["methods"]
print("| model | real photo PCK@3 / median px | stereo PCK@5 | augment PCK@3 | cross-view PCK@5 cartoon / realistic "
      "| cross-instance PCK@10 all / mugs | mug part acc. | mug keypoints px | probe part / category mIoU |")
print("|---|---|---|---|---|---|---|---|---|")
for name in fixed:
    f, r, p = fixed[name]["sets"], real[name]["sets"], probe[name]
    ci = r["cross_instance"]
    mug = ci["per_category"].get("mug", {})
    kp_mug = r["keypoints"]["per_category"].get("mug", {})
    print(f"| {name} | {f['real_photo']['all']['pck@3']:.3f} / {f['real_photo']['all']['median_px']:.1f} "
          f"| {f['real_stereo']['all']['pck@5']:.3f} | {f['augment']['all']['pck@3']:.3f} "
          f"| {f['cross_view']['object']['pck@5']:.3f} / {r['cross_view']['object']['pck@5']:.3f} "
          f"| {ci['object']['pck@10']:.3f} / {mug.get('pck@10', float('nan')):.3f} "
          f"| {mug.get('part_accuracy', float('nan')):.3f} | {kp_mug.get('median_px', float('nan')):.1f} "
          f"| {p['part_miou']:.3f} / {p['category_miou']:.3f} |")
PYEOF
