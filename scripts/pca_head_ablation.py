"""Descriptor dimension of the pretrained encoder, without training (docs/pretrained_encoder.md): effnet_lite0 with
its ImageNet weights and the 1x1 head set to the PCA (D = 16 / 32 / 64) of the hypercolumn on 48 training views
of the stage-1 data, saved as model files, then scored with the default model's fixed pairs.

    .venv/bin/python scripts/pca_head_ablation.py        # needs data/sim_real and data/sim_default
"""

from __future__ import annotations

import subprocess
import sys

import torch

from dense_descriptor_ros.config import load_config
from dense_descriptor_ros.models import ModelConfig, build_model, save_model
from dense_descriptor_ros.train.config import TrainConfig
from dense_descriptor_ros.train.datasets import build_train_dataset
from dense_descriptor_ros.train.finetune import pca_init_head

DIMS = (16, 32, 64)
IMAGES = 48


def main() -> int:
    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, "config/train_effnet_stage1.yaml")
    ds = build_train_dataset(cfg.data)
    images = torch.stack([ds[(i % len(ds), i)].image_a for i in range(IMAGES)])
    models = []
    for d in DIMS:
        net = build_model(ModelConfig(name="effnet_lite0", pretrained=True, descriptor_dim=d, normalize=True))
        kept = pca_init_head(net, images)
        path = f"runs/pca_d{d}.safetensors"
        save_model(net, path)
        print(f"D={d}: {100 * kept:.1f}% of the hypercolumn's variance -> {path}")
        models += ["--model", f"pca{d}={path}"]
    cmd = [sys.executable, "-m", "dense_descriptor_ros.cli", "eval", *models,
           "--pairs", "models/default/eval_pairs.json", "--data", "data/sim_default", "samples_heldout",
           "--out", "runs/eval_pca", "--threads", "1", "--no-progress", "--no-figures", "--no-matching"]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
