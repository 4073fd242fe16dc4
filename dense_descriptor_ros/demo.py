"""`dense-descriptor demo`: the main job until the ROS node lands.

Trains the lightweight model briefly on scikit-image's sample photos, scores it against the same
network at random initialisation on held-out augmentation pairs, and writes PCA pictures of the
learned descriptors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli_args import size_wh


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="train briefly on sample images and visualise the descriptors")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--steps", type=int, default=500, help="training steps (default 500)")
    p.add_argument("--size", type=size_wh, default=(320, 240), metavar="WxH",
                   help="training and evaluation view size (default 320x240)")
    p.add_argument("--val-pairs", type=int, default=40, help="held-out pairs scored before and after (default 40)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    import torch

    from .eval.augment_pck import evaluate_pairs
    from .models import build_model
    from .train import TrainConfig, train
    from .train.datasets import build_val_items
    from .viz.pca import descriptor_to_rgb, pca_basis

    w, h = args.size
    if args.steps < 1 or args.val_pairs < 1 or min(w, h) < 32:
        raise SystemExit("dense-descriptor demo: --steps and --val-pairs must be >= 1 and --size at least 32x32")
    out = Path(args.out)
    cfg = TrainConfig(steps=args.steps, out_dir=str(out / "train"), val_every=max(50, args.steps // 4),
                      image_every=max(50, args.steps // 4), ckpt_every=max(50, args.steps // 2))
    cfg.data.image_size = (h, w)
    cfg.data.val_pairs = args.val_pairs
    val = build_val_items(cfg.data)
    torch.manual_seed(cfg.seed)
    init = build_model(cfg.model).eval()
    with torch.no_grad():
        before = evaluate_pairs(init.forward_native, val)
    print(f"random init: PCK@5px {before['pck@5']:.3f}, median error {before['median_px']:.1f} px")
    result = train(cfg)
    from .models import load_model

    net = load_model(result.run_dir / "model.safetensors")
    with torch.no_grad():
        after = evaluate_pairs(net.forward_native, val)
    print(f"trained ({result.step} steps): PCK@5px {after['pck@5']:.3f}, median error {after['median_px']:.1f} px")

    rows = []
    with torch.no_grad():
        for item in val[:4]:
            da = net(item.image_a[None])[0]
            db = net(item.image_b[None])[0]
            basis = pca_basis(torch.stack([da, db]))
            imgs = [(item.image_a.permute(1, 2, 0) * 255).byte().numpy(), descriptor_to_rgb(da, basis),
                    (item.image_b.permute(1, 2, 0) * 255).byte().numpy(), descriptor_to_rgb(db, basis)]
            rows.append(np.concatenate(imgs, axis=1))
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(str(out / "descriptors_pca.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    summary = {"steps": result.step, "random_init": before, "trained": after,
               "model": str(result.run_dir / "model.safetensors")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'descriptors_pca.png'} (held-out images | their descriptors as PCA-RGB) and "
          f"{out / 'summary.json'}; TensorBoard: tensorboard --logdir {result.run_dir / 'tb'}")
    return 0
