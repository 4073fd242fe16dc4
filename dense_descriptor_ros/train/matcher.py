"""Training the matcher on a frozen descriptor network: pairs -> descriptor maps (no gradient) -> MatcherNet -> coarse
+ fine losses -> AdamW, with TensorBoard, a metric history and its plot, atomic checkpoints, bit-exact resume,
--stop-at, Ctrl-C handling and held-out validation (the run mechanics of `dense-descriptor pretrain`).

What it leaves in the run directory: `matcher.safetensors` (the last weights), `best_matcher.safetensors` (best
held-out correct matches at the default threshold), `checkpoints/last.pt`, `config.yaml`, `history.json/png`, `tb/`.
"""

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
from ..data.match_pairs import MatchBatch, PhotoMatchPairs, SyntheticMatchPairs, collate_matches
from ..matcher.io import MatcherInfo, save_matcher
from ..matcher.losses import coarse_accuracy, coarse_loss, fine_loss, fine_window_loss, target_cells, to_fine
from ..matcher.model import MatcherNet, even_crop
from ..matcher.runtime import DEFAULT_THRESHOLD
from ..models import DescriptorNet, load_model
from ..runtime.export import model_fingerprint, with_upsample
from ..sample_images import resolve_image_dir
from .checkpoint import resume_checkpoint, run_device, save_checkpoint
from .datasets import MixedPairs
from .loop import StopFlag, warmup_cosine
from .matcher_config import MatcherTrainConfig
from .monitor import MetricHistory
from .sampler import KeyedBatchSampler

log = logging.getLogger(__name__)

VAL_SEED = 3_000_017  # validation pairs never share a seed with training pairs
#: Views of the held-out multi-view pairs differ by this many degrees (the issue's evaluation range).
VAL_VIEW_ANGLE = (20.0, 45.0)


@dataclass
class MatcherTrainResult:
    run_dir: Path
    step: int
    interrupted: bool
    best_correct: float
    history: list[dict[str, float]]


def descriptor_maps(desc_net: DescriptorNet, image_a: torch.Tensor, image_b: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images' maps from the frozen descriptor network at its native stride, cropped to even sizes."""
    with torch.no_grad():
        d = desc_net(torch.cat([image_a, image_b]))
    d = even_crop(d)
    return d[: len(image_a)], d[len(image_a):]


def step_losses(net: MatcherNet, desc_a: torch.Tensor, desc_b: torch.Tensor, target_b: torch.Tensor, stride: int,
                fine_weight: float, image_a: torch.Tensor | None = None, image_b: torch.Tensor | None = None,
                fine_ce_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The training objective of one batch and its metrics.

    Shape:
        desc_a, desc_b: (B, D, h, w) even; target_b: (B, Na, 2) B pixels of A's coarse cell centres (NaN = none),
        Na = (h / 2) * (w / 2); image_a, image_b: (B, 3, H, W) the maps' images (for a matcher that reads them).
    """
    hc, wc = desc_a.shape[-2] // 2, desc_a.shape[-1] // 2
    if target_b.shape[1] != hc * wc:
        raise ValueError(f"target_b has {target_b.shape[1]} cells, the maps {hc} x {wc}: image height and width "
                         f"must be multiples of {2 * stride}")
    ca, cb, fa, fb = net(desc_a, desc_b, image_a, image_b)
    logp = net.dual_softmax(ca, cb)
    cells = target_cells(target_b, 2 * stride, hc, wc)
    ok = cells >= 0
    lc = coarse_loss(logp, cells)
    cell_a = torch.arange(hc * wc, device=desc_a.device)[None].expand_as(cells)
    logits, gx, gy = net.window_logits(fa, fb, cell_a, cells.clamp(min=0))
    p = logits.softmax(-1)
    pos = torch.stack([(p * gx).sum(-1), (p * gy).sum(-1)], -1)  # as MatcherNet.refine
    target_f = to_fine(target_b, stride)
    lf = fine_loss(pos, target_f, ok)
    lw = fine_window_loss(logits, gx, gy, target_f, ok) if fine_ce_weight > 0 else lf.new_zeros(())
    loss = lc + fine_weight * lf + fine_ce_weight * lw
    with torch.no_grad():
        err_px = ((pos - to_fine(target_b, stride).nan_to_num(0)).norm(dim=-1) * stride)[ok]
    return loss, {"loss/coarse": lc.item(), "loss/fine": lf.item(), "loss/fine_window": lw.item(),
                  "loss/total": loss.item(),
                  "train/coarse_accuracy": coarse_accuracy(logp.detach(), cells),
                  "train/fine_error_px": float(err_px.median()) if err_px.numel() else math.nan,
                  "train/truth_share": float(ok.float().mean())}


def selected_matches(net: MatcherNet, desc_a: torch.Tensor, desc_b: torch.Tensor, stride: int,
                     threshold: float = DEFAULT_THRESHOLD, image_a: torch.Tensor | None = None,
                     image_b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inference: the mutual matches above `threshold` of every coarse cell of A.

    Shape:
        -> keep (B, Na) bool, position_b (B, Na, 2) image pixels in B, confidence (B, Na).
    """
    conf, mutual, pos, _ = net.match(desc_a, desc_b, image_a, image_b)
    return mutual & (conf > threshold), (pos + 0.5) * stride - 0.5, conf


@torch.no_grad()
def evaluate(net: MatcherNet, desc_net: DescriptorNet, batches: list[MatchBatch], stride: int, fine_weight: float,
             device: torch.device, fine_ce_weight: float = 0.0) -> dict[str, float]:
    """Held-out losses, coarse accuracy, and the inference output's precision@3 px and correct matches per pair at
    the default threshold (restores the network's mode)."""
    was = net.training
    net.eval()
    rows: list[dict[str, float]] = []
    correct = selected = with_truth = pairs = 0
    for b in batches:
        b = b.to(device)
        da, db = descriptor_maps(desc_net, b.image_a, b.image_b)
        _, m = step_losses(net, da, db, b.target_b, stride, fine_weight, b.image_a, b.image_b, fine_ce_weight)
        rows.append(m)
        keep, pos, _ = selected_matches(net, da, db, stride, image_a=b.image_a, image_b=b.image_b)
        truth = torch.isfinite(b.target_b).all(-1)
        err = (pos - b.target_b.nan_to_num(0)).norm(dim=-1)
        correct += int((keep & truth & (err <= 3.0)).sum())
        with_truth += int((keep & truth).sum())
        selected += int(keep.sum())
        pairs += len(b.target_b)
    net.train(was)
    out = {k.replace("train/", "val/").replace("loss/", "val/loss_"): sum(r[k] for r in rows) / max(len(rows), 1)
           for k in rows[0]} if rows else {}
    out["val/precision@3px"] = correct / with_truth if with_truth else math.nan
    out["val/correct_per_pair"] = correct / max(pairs, 1)
    out["val/matches_per_pair"] = selected / max(pairs, 1)
    return out


def build_datasets(cfg: MatcherTrainConfig, coarse_stride: int, progress: bool = False):
    """(training dataset, held-out batches): the synthetic train split and/or the training photos, mixed by
    `data.image_fraction`; held out: the synthetic test split at VAL_VIEW_ANGLE and the held-out photos."""
    d = cfg.data
    size = tuple(d.image_size)
    if size[0] % coarse_stride or size[1] % coarse_stride:
        raise ValueError(f"data.image_size {size} must be a multiple of the coarse stride {coarse_stride} "
                         "(2 x the descriptor model's stride)")
    train_sets, val_sets = [], []
    if d.synthetic_dir:
        train_sets.append(SyntheticMatchPairs(d.synthetic_dir, "train", size, coarse_stride, tuple(d.view_angle_deg)))
        val_sets.append(SyntheticMatchPairs(d.synthetic_dir, "test", size, coarse_stride, VAL_VIEW_ANGLE))
    if d.image_dir:
        train_sets.append(PhotoMatchPairs(resolve_image_dir(d.image_dir), size, coarse_stride, d.augment, progress))
        if d.image_dir == "samples":
            val_sets.append(PhotoMatchPairs(resolve_image_dir("samples_heldout"), size, coarse_stride, d.augment))
    train = train_sets[0] if len(train_sets) == 1 else MixedPairs(train_sets[0], train_sets[1], d.image_fraction)
    items = []
    for k, ds in enumerate(val_sets):
        n = cfg.val_pairs // len(val_sets) + (k < cfg.val_pairs % len(val_sets))
        items += [ds[(i % len(ds), VAL_SEED + i)] for i in range(n)]
    val = [collate_matches(items[i:i + cfg.batch_size]) for i in range(0, len(items), cfg.batch_size)]
    return train, val


def lr_at(step: int, cfg: MatcherTrainConfig) -> float:
    return warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)


def param_groups(net: MatcherNet, cfg: MatcherTrainConfig) -> list[dict]:
    """Everything at the scheduled rate; the two logit scales at scale_lr_mult x it, without weight decay."""
    scales = ("log_scale", "log_fine_scale")
    rest = [p for n, p in net.named_parameters() if n not in scales]
    return [{"params": rest, "lr_mult": 1.0},
            {"params": [net.log_scale, net.log_fine_scale], "lr_mult": cfg.scale_lr_mult, "weight_decay": 0.0}]


def train_matcher(cfg: MatcherTrainConfig, resume: str | Path | None = None, stop_at: int | None = None,
                  progress: bool = True) -> MatcherTrainResult:
    """Run (or continue) matcher training as configured (see the module docstring for what it writes).

    Args:
        resume: a run directory or checkpoint to continue from bit-exactly (same config but `steps`).
        stop_at: checkpoint and return after this many steps (continue with `resume`).
    """
    device = run_device(cfg.device)
    ckpt = resume_checkpoint(resume, "matcher", cfg, ("descriptor_model", "matcher", "data", "seed", "batch_size",
                                                      "fine_weight", "fine_ce_weight"))
    # the native-stride map (what the runtime publishes and matches), whatever the file's upsample setting
    desc_net = with_upsample(load_model(cfg.descriptor_model), False).to(device).eval()
    for p in desc_net.parameters():
        p.requires_grad_(False)
    stride = int(desc_net.stride)
    if cfg.matcher.descriptor_dim != desc_net.config.descriptor_dim:
        raise ValueError(f"matcher.descriptor_dim={cfg.matcher.descriptor_dim} but {cfg.descriptor_model} has "
                         f"D={desc_net.config.descriptor_dim}")
    if cfg.matcher.image_channels and cfg.matcher.image_stride != stride:
        raise ValueError(f"matcher.image_stride={cfg.matcher.image_stride} but {cfg.descriptor_model} has stride "
                         f"{stride}")
    info = MatcherInfo(model_fingerprint(desc_net), stride)
    torch.manual_seed(cfg.seed)
    net = MatcherNet(cfg.matcher).to(device)
    optimizer = torch.optim.AdamW(param_groups(net, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, best = 0, MetricHistory(), -math.inf
    if ckpt is not None:
        if ckpt.get("descriptor_model_id") != info.descriptor_model_id:
            raise ValueError(f"--resume: the checkpoint was trained on descriptor model "
                             f"{ckpt.get('descriptor_model_id')}, {cfg.descriptor_model} is {info.descriptor_model_id}")
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, history = int(ckpt["step"]), MetricHistory(ckpt.get("history", []))
        best = float(ckpt.get("best_metric", -math.inf))

    dataset, val = build_datasets(cfg, 2 * stride, progress)
    sampler = KeyedBatchSampler(len(dataset), cfg.batch_size, cfg.seed, start, cfg.steps)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_matches, num_workers=cfg.workers,
                        prefetch_factor=4 if cfg.workers > 0 else None)
    run_dir = Path(cfg.out_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, run_dir / "config.yaml")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tb"), purge_step=start or None)
    log.info("run directory %s: matcher on %s (id %s, stride %d), %d training pairs, %d held-out pairs", run_dir,
             cfg.descriptor_model, info.descriptor_model_id, stride, len(dataset), sum(len(b.target_b) for b in val))
    meta = {"train_config_hash": config_hash(cfg), "descriptor_model": str(cfg.descriptor_model)}

    def state(step: int) -> dict:
        return {"kind": "matcher", "model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "train_config": to_dict(cfg), "history": history.rows, "best_metric": best,
                "descriptor_model_id": info.descriptor_model_id}

    def save(name: str, step: int, extra: dict[str, str] | None = None) -> None:
        save_matcher(net, MatcherInfo(info.descriptor_model_id, stride, f"step-{step}"), run_dir / name,
                     {**meta, **(extra or {})})

    net.train()
    step, interrupted = start, False
    bar = tqdm(total=cfg.steps, initial=start, desc="matcher", unit="step", disable=not progress, dynamic_ncols=True)
    t_last, seen = time.perf_counter(), 0
    it = iter(loader)
    with StopFlag() as flag:
        while step < cfg.steps:
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr * g["lr_mult"]
            batch = next(it).to(device)
            da, db = descriptor_maps(desc_net, batch.image_a, batch.image_b)
            loss, row = step_losses(net, da, db, batch.target_b, stride, cfg.fine_weight, batch.image_a,
                                    batch.image_b, cfg.fine_ce_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr")
            gnorm = (nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip).item() if cfg.grad_clip > 0 else
                     float(torch.norm(torch.stack([p.grad.norm() for p in net.parameters() if p.grad is not None]))))
            optimizer.step()
            step += 1
            seen += len(batch.target_b)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{row['train/coarse_accuracy']:.2f}")
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                row.update({"train/scale": net.scale().item(), "train/fine_scale": net.fine_scale().item(),
                            "lr/lr": lr, "lr/grad_norm": gnorm, "speed/pairs_per_s": seen / max(now - t_last, 1e-9)})
                t_last, seen = now, 0
                history.log(step, row, writer)
            if val and (step % cfg.val_every == 0 or step == cfg.steps):
                m = evaluate(net, desc_net, val, stride, cfg.fine_weight, device, cfg.fine_ce_weight)
                history.log(step, m, writer)
                bar.write(f"step {step}: held-out coarse accuracy {m['val/coarse_accuracy']:.3f}, fine error "
                          f"{m['val/fine_error_px']:.2f} px, precision@3px {m['val/precision@3px']:.3f}, "
                          f"{m['val/correct_per_pair']:.1f} correct / {m['val/matches_per_pair']:.1f} matches a pair")
                if m["val/correct_per_pair"] > best:
                    best = m["val/correct_per_pair"]
                    save("best_matcher.safetensors", step, {"val_correct_per_pair": f"{best:.2f}"})
            interrupted = flag.stop or (stop_at is not None and stop_at <= step < cfg.steps)
            if step % cfg.ckpt_every == 0 or step == cfg.steps or interrupted:
                save_checkpoint(run_dir / "checkpoints" / "last.pt", state(step))
            if interrupted:
                break
    bar.close()
    if interrupted:
        print(f"stopped at step {step}; checkpoint saved. Continue with --resume {run_dir}")
    else:
        save("matcher.safetensors", step)
    history.finish(run_dir)
    writer.close()
    return MatcherTrainResult(run_dir, step, interrupted, best, history.rows)


__all__ = ["MatcherTrainResult", "train_matcher", "step_losses", "evaluate", "selected_matches", "descriptor_maps",
           "build_datasets", "param_groups", "lr_at", "VAL_SEED", "VAL_VIEW_ANGLE", "DEFAULT_THRESHOLD"]
