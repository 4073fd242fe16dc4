"""Inference and training speed of every architecture, in one run (PyTorch, this machine's CPU or GPU).

Prints ms/frame at 640x480 and 320x240 (torch inference mode, channels_last, batch 1, full-resolution
output) and training pairs/s at 240x320 (fwd + bwd + AdamW, batch 4, contrastive loss), each with its
ratio to the Dense Object Nets reference (ResNet-34, stride 8) measured in the same run.

    .venv/bin/python benchmarks/speed.py [--repeats 10] [--threads 2] [--arch lite don_resnet34 ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dense_descriptor_ros.correspondence import AugmentConfig, TwoViewAugmenter, sample_pairs
from dense_descriptor_ros.data import PairItem, collate_pairs
from dense_descriptor_ros.models import ARCHITECTURES, ModelConfig, build_model
from dense_descriptor_ros.train import TrainConfig, build_loss_from_config

REFERENCE = "don_resnet34"


def infer_ms(net: torch.nn.Module, hw: tuple[int, int], repeats: int, device: torch.device) -> float:
    x = torch.rand(1, 3, *hw, device=device).contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            net(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:  # two warm-up calls
                times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def train_pairs_per_s(name: str, steps: int, device: torch.device) -> float:
    cfg = TrainConfig(model=ModelConfig(name=name))
    net = build_model(cfg.model).to(device).train()
    loss_fn = build_loss_from_config(cfg, net)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    aug = TwoViewAugmenter((240, 320), AugmentConfig())
    items = []
    for s in range(4):
        v = aug(torch.rand(1, 3, 300, 400), s)
        p = sample_pairs(v.map_ab, v.valid_a, (240, 320), 256, 4, torch.Generator().manual_seed(s))
        items.append(PairItem(v.image_a, v.image_b, p))
    batch = collate_pairs(items).to(device)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        d = net.forward_native(torch.cat([batch.image_a, batch.image_b]))
        loss = loss_fn(d[:4], d[4:], batch.pairs, net.stride).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t)
    return 4 / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    archs = list(dict.fromkeys([*args.arch, REFERENCE]))
    rows = {}
    for name in archs:
        torch.manual_seed(0)
        net = build_model(ModelConfig(name=name)).to(device).eval().to(memory_format=torch.channels_last)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        big = infer_ms(net, (480, 640), args.repeats, device)
        small = infer_ms(net, (240, 320), args.repeats, device)
        pps = train_pairs_per_s(name, args.train_steps, device)
        rows[name] = (params, big, small, pps)
        print(f"  measured {name}", flush=True)
    ref = rows[REFERENCE]
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"\nPyTorch {torch.__version__}, {dev}; inference mode, channels_last, batch 1, D=16, "
          f"full-resolution output; ratios vs {REFERENCE} in this run")
    print("| model | params (M) | 640x480 ms | speed-up | 320x240 ms | speed-up | train pairs/s (240x320) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (params, big, small, pps) in rows.items():
        print(f"| {name} | {params:.2f} | {big:.1f} | {ref[1] / big:.1f}x | {small:.1f} | {ref[2] / small:.1f}x "
              f"| {pps:.2f} | {pps / ref[3]:.1f}x |")


if __name__ == "__main__":
    main()
