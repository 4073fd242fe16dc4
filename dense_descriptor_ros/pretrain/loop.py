"""The pretext training loop: pool -> items -> UnmixNet -> loss -> AdamW, with TensorBoard, a metric history and
its plot, checkpoints, bit-exact resume, --stop-at, Ctrl-C handling and held-out validation. What it leaves:
`encoder.safetensors` (the encoder alone, for `train init_from=`), `best_encoder.safetensors` (best held-out
accuracy), `checkpoints/last.pt`, `config.yaml`, `history.json/png`, `tb/`."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import config_hash, save_yaml, to_dict
from ..models import save_encoder
from ..train.checkpoint import resume_checkpoint, run_device, save_checkpoint
from ..train.loop import StopFlag, warmup_cosine
from ..train.monitor import MetricHistory
from ..train.sampler import KeyedBatchSampler
from .config import PretrainConfig
from .sources import load_pool
from .unmix import (
    UnmixBatch,
    UnmixDataset,
    UnmixNet,
    chance_accuracy,
    chance_loss,
    collate_unmix,
    draw_item,
    unmix_accuracy,
    unmix_loss,
)

log = logging.getLogger(__name__)

VAL_SEED = 2_000_003  # validation items never share a seed with training items


@dataclass
class PretrainResult:
    run_dir: Path
    step: int
    interrupted: bool
    best_accuracy: float
    history: list[dict[str, float]]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """The training loop's schedule (linear warm-up, cosine decay) with the pretext's settings."""
    return warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)


def param_groups(net: UnmixNet, cfg: PretrainConfig) -> list[dict]:
    """Encoder and head at the scheduled rate; the logit scale at scale_lr_mult x it, without weight decay."""
    rest = [p for n, p in net.named_parameters() if n != "logit_scale"]
    return [{"params": rest, "lr_mult": 1.0},
            {"params": [net.logit_scale], "lr_mult": cfg.unmix.scale_lr_mult, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(net: UnmixNet, batches: list[UnmixBatch], device: torch.device) -> dict[str, float]:
    """Mean loss and accuracy over fixed batches, the network in eval mode (restores its mode)."""
    was = net.training
    net.eval()
    loss = acc = 0.0
    for b in batches:
        b = b.to(device)
        logits = net(b.mixture, b.candidates)
        loss += unmix_loss(logits, b.target).item()
        acc += unmix_accuracy(logits, b.target)
    net.train(was)
    n = max(1, len(batches))
    return {"loss": loss / n, "accuracy": acc / n}


def val_batches(cfg: PretrainConfig, progress: bool = False) -> list[UnmixBatch]:
    """The fixed, seeded held-out items, in batches of batch_size (empty without val_sources)."""
    srcs = [s for s in cfg.data.val_sources if s]
    if not srcs or cfg.data.val_items <= 0:
        return []
    pool = load_pool(srcs, cfg.data.pool_side, cfg.data.max_images_per_source, cfg.data.bag_frame_step,
                     split="test", progress=progress)
    items = [draw_item(pool, cfg.unmix, cfg.data.crop, VAL_SEED + i) for i in range(cfg.data.val_items)]
    return [collate_unmix(items[i:i + cfg.batch_size]) for i in range(0, len(items), cfg.batch_size)]


def pretrain(cfg: PretrainConfig, resume: str | Path | None = None, stop_at: int | None = None,
             progress: bool = True) -> PretrainResult:
    """Run (or continue) the un-mixing pretext as configured (see the module docstring for what it writes).

    Args:
        resume: a run directory or checkpoint to continue from bit-exactly (same config but `steps`).
        stop_at: checkpoint and return after this many steps (continue with `resume`).
    """
    device = run_device(cfg.device)
    ckpt = resume_checkpoint(resume, "pretrain", cfg, ("model", "data", "unmix", "seed", "batch_size"))
    torch.manual_seed(cfg.seed)
    net = UnmixNet(cfg.model, cfg.unmix, load_pretrained=ckpt is None).to(device)
    groups = param_groups(net, cfg)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, best = 0, MetricHistory(), -math.inf
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, history = int(ckpt["step"]), MetricHistory(ckpt.get("history", []))
        best = float(ckpt.get("best_metric", -math.inf))

    pool = load_pool(cfg.data.sources, cfg.data.pool_side, cfg.data.max_images_per_source, cfg.data.bag_frame_step,
                     split="train", progress=progress)
    dataset = UnmixDataset(pool, cfg.unmix, cfg.data.crop)
    val = val_batches(cfg, progress)
    sampler = KeyedBatchSampler(len(dataset), cfg.batch_size, cfg.seed, start, cfg.steps)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_unmix, num_workers=cfg.workers,
                        prefetch_factor=4 if cfg.workers > 0 else None)
    run_dir = Path(cfg.out_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, run_dir / "config.yaml")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tb"), purge_step=start or None)
    log.info("run directory %s: %d training images (%s), %d validation items, chance loss %.3f, accuracy %.3f",
             run_dir, len(pool), ", ".join(f"{k}: {v}" for k, v in pool.counts().items()), sum(len(b.target)
                                                                                              for b in val),
             chance_loss(cfg.unmix), chance_accuracy(cfg.unmix))
    meta = {"pretext": "unmix", "train_config_hash": config_hash(cfg),
            "sources": ", ".join(cfg.data.sources)}

    def state(step: int) -> dict:
        return {"kind": "pretrain", "model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "train_config": to_dict(cfg), "model_config": to_dict(cfg.model), "history": history.rows,
                "best_metric": best}

    def save(name: str, step: int, extra: dict[str, str] | None = None) -> None:
        save_encoder(net.encoder.state_dict(), cfg.model, run_dir / name,
                     {**meta, "pretext_steps": str(step), **(extra or {})})

    net.train()
    step, interrupted = start, False
    bar = tqdm(total=cfg.steps, initial=start, desc="pretrain", unit="step", disable=not progress,
               dynamic_ncols=True)
    t_last, seen = time.perf_counter(), 0
    it = iter(loader)
    with StopFlag() as flag:
        while step < cfg.steps:
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr * g["lr_mult"]
            batch = next(it).to(device)
            logits = net(batch.mixture, batch.candidates)
            loss = unmix_loss(logits, batch.target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr")
            gnorm = (nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip).item() if cfg.grad_clip > 0 else
                     float(torch.norm(torch.stack([p.grad.norm() for p in net.parameters() if p.grad is not None]))))
            optimizer.step()
            step += 1
            seen += batch.target.shape[0]
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                row = {"loss/unmix": loss.item(), "train/accuracy": unmix_accuracy(logits.detach(), batch.target),
                       "train/logit_scale": float(net.scale().detach()), "lr/lr": lr, "lr/grad_norm": gnorm,
                       "speed/items_per_s": seen / max(now - t_last, 1e-9)}
                t_last, seen = now, 0
                history.log(step, row, writer)
            if val and (step % cfg.val_every == 0 or step == cfg.steps):
                m = evaluate(net, val, device)
                history.log(step, {"val/loss": m["loss"], "val/accuracy": m["accuracy"]}, writer)
                bar.write(f"step {step}: held-out loss {m['loss']:.3f}, accuracy {m['accuracy']:.3f} "
                          f"(chance {chance_loss(cfg.unmix):.3f}, {chance_accuracy(cfg.unmix):.3f})")
                if m["accuracy"] > best:
                    best = m["accuracy"]
                    save("best_encoder.safetensors", step, {"val_accuracy": f"{best:.4f}"})
            interrupted = flag.stop or (stop_at is not None and stop_at <= step < cfg.steps)
            if step % cfg.ckpt_every == 0 or step == cfg.steps or interrupted:
                save_checkpoint(run_dir / "checkpoints" / "last.pt", state(step))
            if interrupted:
                break
    bar.close()
    if interrupted:
        print(f"stopped at step {step}; checkpoint saved. Continue with --resume {run_dir}")
    else:
        save("encoder.safetensors", step)
    history.finish(run_dir)
    writer.close()
    return PretrainResult(run_dir, step, interrupted, best, history.rows)


__all__ = ["PretrainResult", "pretrain", "evaluate", "val_batches", "lr_at", "param_groups", "VAL_SEED"]
