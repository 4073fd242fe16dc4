"""The training loop: data -> correspondences -> model -> loss -> optimiser, with checkpoints,
TensorBoard, validation, early stopping, resume, Ctrl-C handling and DDP (torchrun)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import config_hash, from_dict, save_yaml, to_dict
from ..correspondence.sampling import mine_hard_negatives
from ..data.base import PairDataset, PairItem, collate_pairs
from ..eval.augment_pck import evaluate_pairs
from ..losses.base import LossOutput
from ..models import (
    DescriptorNet,
    ModelConfig,
    build_model,
    is_encoder_file,
    load_encoder_state,
    load_model,
    save_model,
    trained_steps,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .datasets import build_train_dataset, build_val_items
from .finetune import freeze_encoder_stages, param_groups, pca_init_head, set_train_mode
from .monitor import MetricHistory, collapse_indicators, pca_panel
from .sampler import KeyedBatchSampler

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished (or interrupted) run leaves behind."""

    run_dir: Path
    step: int
    interrupted: bool
    early_stopped: bool
    best_metric: float
    history: list[dict[str, float]]


class _TrainForward(nn.Module):
    """What DDP wraps: the native-stride descriptor map, or every pyramid level."""

    def __init__(self, net: DescriptorNet, pyramid: bool) -> None:
        super().__init__()
        self.net, self.pyramid = net, pyramid

    def forward(self, x: torch.Tensor):
        return self.net.forward_pyramid(x) if self.pyramid else self.net.forward_native(x)


#: loss constructor argument -> the LossConfig field it is read from, where the names differ
_LOSS_CONFIG_FIELDS = {"sigma": "target_sigma", "triplet_margin": "margin"}


def build_loss_from_config(cfg: TrainConfig, net: DescriptorNet) -> nn.Module:
    """The loss the config names, built through the loss registry (losses.build_loss): every constructor
    argument that `cfg.loss` has a field for is read from it by name (`predictor` is the network's SimSiam
    predictor); the others keep their defaults, and a required one the config lacks is an error."""
    from ..losses import PyramidLoss, build_loss, loss_parameters

    lc = cfg.loss
    kwargs: dict[str, object] = {}
    for arg, required in loss_parameters(lc.name).items():
        field_name = _LOSS_CONFIG_FIELDS.get(arg, arg)
        if arg == "predictor":
            kwargs[arg] = net.predictor
        elif hasattr(lc, field_name):
            kwargs[arg] = getattr(lc, field_name)
        elif required:
            raise ValueError(f"loss {lc.name!r} needs {arg!r}, which the config's loss section lacks: "
                             f"add a LossConfig field {field_name!r} (train/config.py)")
    loss: nn.Module = build_loss(lc.name, **kwargs)
    if lc.pyramid:
        if net.levels < 2:
            raise ValueError(f"loss.pyramid needs a pyramid model (lite or fpn_*), not {net.config.name}")
        weights = tuple(lc.pyramid_weights[: net.levels])
        if len(weights) < net.levels:
            raise ValueError(f"loss.pyramid_weights needs {net.levels} weights for {net.config.name}")
        loss = PyramidLoss(loss, weights)
    return loss


def build_part_loss(cfg: TrainConfig) -> nn.Module | None:
    """The auxiliary part classifier (losses/part.py) when `loss.part_weight` > 0, sized to the synthetic
    dataset's part table and the model's descriptor dimension; None when off."""
    if cfg.loss.part_weight <= 0:
        return None
    if cfg.data.kind not in ("synthetic", "mixed") or not cfg.data.synthetic_dir:
        raise ValueError("loss.part_weight > 0 needs synthetic data (data.kind synthetic or mixed with "
                         "data.synthetic_dir): only the simulator labels parts")
    from ..losses.part import PartClassificationLoss
    from ..sim.dataset import SyntheticDataset

    parts = SyntheticDataset(cfg.data.synthetic_dir).parts
    return PartClassificationLoss(cfg.model.descriptor_dim, max(parts) + 1, cfg.loss.part_scale, cfg.loss.part_balance)


def build_coords_loss(cfg: TrainConfig) -> nn.Module | None:
    """The auxiliary canonical-coordinate regression (losses/canonical.py) when `loss.coords_weight` > 0; None
    when off."""
    if cfg.loss.coords_weight <= 0:
        return None
    if cfg.data.kind not in ("synthetic", "mixed") or not cfg.data.synthetic_dir:
        raise ValueError("loss.coords_weight > 0 needs synthetic data (data.kind synthetic or mixed with "
                         "data.synthetic_dir): only the simulator knows canonical coordinates")
    from ..losses.canonical import CanonicalCoordsLoss

    return CanonicalCoordsLoss(cfg.model.descriptor_dim)


def initial_weights(path: str | Path, model: ModelConfig) -> dict[str, torch.Tensor]:
    """The state dict of a saved model or checkpoint, checked to be of the architecture `model` describes; for an
    encoder file (`dense-descriptor pretrain`, models.io.save_encoder) only the encoder's weights, checked to fit
    `model`'s encoder (load it with load_initial_weights: the decoder and head stay fresh).

    Raises:
        FileNotFoundError: no such file. ValueError: not a model, or another architecture (the differing
        ModelConfig fields are named).
    """
    if is_encoder_file(path):
        return load_encoder_state(path, model)
    src = load_model(path)
    # `pretrained` says where the weights of a fresh network come from, not what the network is
    a, b = to_dict(src.config), to_dict(model)
    a.pop("pretrained"), b.pop("pretrained")
    if a != b:
        diff = ", ".join(f"{k}: {a[k]!r} in the file, {b[k]!r} configured" for k in a if a[k] != b.get(k))
        raise ValueError(f"init_from {path}: the model's architecture differs from model ({diff})")
    return src.state_dict()


def load_initial_weights(net: DescriptorNet, state: dict[str, torch.Tensor]) -> str:
    """Load initial_weights' result into `net`: all of it for a model, only the encoder for an encoder file (any
    other missing key, or an unexpected one, is an error). Returns "model" or "encoder"."""
    res = net.load_state_dict(state, strict=False)
    missing = [k for k in res.missing_keys if k.startswith("encoder.")]
    if res.unexpected_keys or missing:
        raise ValueError(f"initial weights do not fit the network: missing {missing[:5]}, unexpected "
                         f"{res.unexpected_keys[:5]}")
    return "encoder" if res.missing_keys else "model"


def warmup_cosine(step: int, lr: float, warmup_steps: int, steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to min_lr_ratio * lr at `steps`."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, steps - warmup_steps)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The training schedule: warmup_cosine with the optim section's settings."""
    o = cfg.optim
    return warmup_cosine(step, o.lr, o.warmup_steps, cfg.steps, o.min_lr_ratio)


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


class StopFlag:
    """Set by SIGINT/SIGTERM: the loop finishes the step, saves a checkpoint and returns."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.stop:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(cfg: TrainConfig, resume: str | Path | None = None, stop_at: int | None = None,
          progress: bool = True) -> TrainResult:
    """Run (or continue) training as configured.

    Args:
        cfg: the resolved configuration.
        resume: a run directory or checkpoint file to continue from (bit-exactly).
        stop_at: save a checkpoint and return after this many steps, as if interrupted (for jobs
            split over time-limited slots); the run continues with `resume`.
        progress: show a tqdm bar (rank 0).
    """
    rank, local_rank, world = _dist_info()
    distributed = world > 1
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda was asked for but CUDA is not available")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main = rank == 0

    ckpt = load_checkpoint(resume) if resume is not None else None
    if ckpt is not None:
        saved = from_dict(TrainConfig, ckpt["train_config"])
        # the pair stream and the model must be those of the interrupted run; only the length may change
        for part in ("model", "data", "loss", "finetune", "seed", "batch_size", "grad_accum"):
            if to_dict(getattr(saved, part)) != to_dict(getattr(cfg, part)):
                raise ValueError(f"--resume: config section {part!r} differs from the checkpoint's; "
                                 "resume with the run's own config (saved as config.yaml in its directory)")
    run_dir = Path(cfg.out_dir)
    torch.manual_seed(cfg.seed)
    # channels_last: ~2x faster convolutions on CPU (measured on the lite model) and the layout GPUs prefer
    # pretrained weights are read only for a fresh start: init_from and --resume replace them
    fresh = ckpt is None and not cfg.init_from
    net = build_model(cfg.model, load_pretrained=fresh).to(device).to(memory_format=torch.channels_last)
    loss_fn = build_loss_from_config(cfg, net).to(device)
    part_loss = build_part_loss(cfg)
    coords_loss = build_coords_loss(cfg)
    for name, aux in (("part_weight", part_loss), ("coords_weight", coords_loss)):
        if aux is not None and distributed:  # its head sits outside DistributedDataParallel: replicas would drift
            raise ValueError(f"loss.{name} > 0 is not supported with several training processes yet")
    part_loss = part_loss.to(device) if part_loss is not None else None
    coords_loss = coords_loss.to(device) if coords_loss is not None else None
    frozen = freeze_encoder_stages(net, cfg.finetune.freeze_stages)
    groups = param_groups(net, cfg.finetune)
    for aux in (part_loss, coords_loss):  # the heads learn at the base rate, whatever the network's multipliers
        if aux is not None:
            groups.append({"params": list(aux.parameters()), "lr_mult": 1.0})
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    amp_dtype = None
    if device.type == "cuda" and cfg.amp != "none":
        amp_dtype = torch.float16 if cfg.amp == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    start_step, history, best = 0, MetricHistory(), -math.inf
    bad_vals = 0
    init_steps = 0  # steps of the stages before this one (init_from), for the saved models' steps_total
    fresh_head = fresh  # the head is new: a fresh start, or an encoder-only init_from
    if ckpt is None and cfg.init_from:
        what = load_initial_weights(net, initial_weights(cfg.init_from, cfg.model))
        # a pretrained encoder's pretext steps are not descriptor training steps
        init_steps = (trained_steps(cfg.init_from) or 0) if what == "model" else 0
        fresh_head = what == "encoder"
        if main:
            log.info("%s initialised from %s (%d steps)", "weights" if what == "model" else
                     "encoder (decoder and head fresh)", cfg.init_from, init_steps)
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        if part_loss is not None:
            part_loss.load_state_dict(ckpt["part_head"])
        if coords_loss is not None:
            coords_loss.load_state_dict(ckpt["coords_head"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt and ckpt["scaler"]:
            scaler.load_state_dict(ckpt["scaler"])
        start_step = int(ckpt["step"])
        history = MetricHistory(ckpt.get("history", []))
        best = float(ckpt.get("best_metric", -math.inf))
        bad_vals = int(ckpt.get("bad_validations", 0))
        init_steps = int(ckpt.get("init_steps", 0))

    fwd: nn.Module = _TrainForward(net, cfg.loss.pyramid)
    if distributed:
        # the SimSiam predictor runs outside fwd's forward; it is unused (and must be tolerated) by other losses
        unused = net.predictor is not None and cfg.loss.name != "simsiam"
        fwd = nn.parallel.DistributedDataParallel(fwd, device_ids=[local_rank] if device.type == "cuda" else None,
                                                  find_unused_parameters=unused)

    dataset: PairDataset = build_train_dataset(cfg.data, progress=main and progress, part_labels=part_loss is not None,
                                               canonical=coords_loss is not None)
    if fresh_head and cfg.finetune.pca_head_images > 0:
        # every rank computes the same PCA from the same seeded items, so replicas start identical
        n = cfg.finetune.pca_head_images
        images = torch.stack([dataset[(i % len(dataset), cfg.seed + i)].image_a for i in range(n)])
        kept = pca_init_head(net, images, seed=cfg.seed)
        if main:
            log.info("finetune: descriptor head initialised by PCA of %d images (%.1f%% of the feature variance)",
                     n, 100 * kept)
    val_items: list[PairItem] = build_val_items(cfg.data) if main else []
    sampler = KeyedBatchSampler(len(dataset), cfg.batch_size, cfg.seed, start_step * cfg.grad_accum,
                                cfg.steps * cfg.grad_accum, rank, world)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_pairs, num_workers=cfg.workers,
                        persistent_workers=False, prefetch_factor=4 if cfg.workers > 0 else None)

    writer = None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        save_yaml(cfg, run_dir / "config.yaml")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_step if start_step else None)
        log.info("run directory %s (%d training items, %d validation pairs, %s, world size %d)", run_dir,
                 len(dataset), len(val_items), device, world)
        if getattr(dataset, "skipped", None):
            print(f"warning: skipped {len(dataset.skipped)} unreadable image(s) in {cfg.data.image_dir}")

    def state(step: int) -> dict:
        return {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "train_config": to_dict(cfg), "model_config": to_dict(cfg.model),
                "history": history.rows, "best_metric": best, "bad_validations": bad_vals,
                "config_hash": config_hash(cfg), "init_steps": init_steps,
                **({"part_head": part_loss.state_dict()} if part_loss is not None else {}),
                **({"coords_head": coords_loss.state_dict()} if coords_loss is not None else {})}

    def describe_eval(x: torch.Tensor) -> torch.Tensor:
        return net.forward_native(x.to(device))

    def validate(step: int) -> dict[str, float]:
        net.eval()
        with torch.no_grad():
            m = evaluate_pairs(describe_eval, val_items)
        set_train_mode(net, cfg.finetune.freeze_bn)
        return {f"val/{k}": v for k, v in m.items() if k.startswith("pck") or k == "median_px"}

    step = start_step
    interrupted = early_stopped = False
    bar = tqdm(total=cfg.steps, initial=start_step, desc="train", unit="step", disable=not (main and progress),
               dynamic_ncols=True)
    set_train_mode(net, cfg.finetune.freeze_bn)
    if main and frozen:
        log.info("finetune: %d encoder parameters frozen (%d units)", frozen, cfg.finetune.freeze_stages)
    it = iter(loader)
    t_last, pairs_seen = time.perf_counter(), 0
    with StopFlag() as flag:
        while step < cfg.steps:
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)  # checkpoints from before lr_mult have one group
            optimizer.zero_grad(set_to_none=True)
            parts_acc: dict[str, float] = {}
            loss_sum = 0.0
            for micro in range(cfg.grad_accum):
                batch = next(it).to(device)
                b = batch.image_a.shape[0]
                sync = contextlib.nullcontext()
                if distributed and micro < cfg.grad_accum - 1:
                    sync = fwd.no_sync()
                with sync:
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        images = torch.cat([batch.image_a, batch.image_b])
                        out = fwd(images.contiguous(memory_format=torch.channels_last))
                    pairs = batch.pairs
                    if cfg.loss.pyramid:
                        pyr_a = [(d[:b].float(), s) for d, s in out]
                        pyr_b = [(d[b:].float(), s) for d, s in out]
                        desc_a, desc_b, stride = pyr_a[0][0], pyr_b[0][0], pyr_a[0][1]
                    else:
                        desc_a, desc_b, stride = out[:b].float(), out[b:].float(), net.stride
                    if cfg.loss.hard_negatives > 0:
                        pairs = mine_hard_negatives(desc_a, desc_b, pairs, cfg.loss.hard_negatives,
                                                    cfg.data.min_nonmatch_distance, stride)
                    res = loss_fn(pyr_a, pyr_b, pairs) if cfg.loss.pyramid else loss_fn(desc_a, desc_b, pairs,
                                                                                          stride)
                    if part_loss is not None and batch.labels_a is not None:
                        pres = part_loss(torch.cat([desc_a, desc_b]), torch.cat([batch.labels_a, batch.labels_b]),
                                         stride)
                        res = LossOutput(res.loss + cfg.loss.part_weight * pres.loss, {**res.parts, **pres.parts})
                    if coords_loss is not None and batch.coords_a is not None:
                        cres = coords_loss(torch.cat([desc_a, desc_b]), torch.cat([batch.coords_a, batch.coords_b]),
                                           stride)
                        res = LossOutput(res.loss + cfg.loss.coords_weight * cres.loss, {**res.parts, **cres.parts})
                    scaler.scale(res.loss / cfg.grad_accum).backward()
                loss_sum += res.loss.item() / cfg.grad_accum
                for k, v in res.parts.items():
                    parts_acc[k] = parts_acc.get(k, 0.0) + float(v) / cfg.grad_accum
                pairs_seen += b * world
            if not math.isfinite(loss_sum):
                raise FloatingPointError(f"loss became {loss_sum} at step {step}; lower optim.lr or check data")
            scaler.unscale_(optimizer)
            if cfg.optim.grad_clip > 0:
                gnorm = nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip).item()
            else:
                gnorm = float(torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
            scaler.step(optimizer)
            scaler.update()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum:.4f}", lr=f"{lr:.2e}")

            if main and (step % cfg.log_every == 0 or step == cfg.steps):
                now = time.perf_counter()
                row = {"loss/total": loss_sum, **{f"loss/{k}": v for k, v in parts_acc.items()},
                       "lr/lr": lr, "lr/grad_norm": gnorm,
                       **collapse_indicators(desc_a, desc_b, pairs, stride),
                       "speed/pairs_per_s": pairs_seen / max(now - t_last, 1e-9)}
                t_last, pairs_seen = now, 0
                history.log(step, row, writer)
            if main and (step % cfg.image_every == 0 or step == cfg.steps):
                panel = pca_panel(batch.image_a[0], batch.image_b[0], desc_a[0].detach(), desc_b[0].detach())
                writer.add_image("descriptors/pca", panel, step, dataformats="HWC")
            stop_now = False
            if main and val_items and (step % cfg.val_every == 0 or step == cfg.steps):
                vals = validate(step)
                history.log(step, vals, writer)
                metric = vals[f"val/{cfg.early_stop_metric}"]
                bar.write(f"step {step}: " + ", ".join(f"{k[4:]} {v:.3f}" for k, v in vals.items()))
                if metric > best:
                    best, bad_vals = metric, 0
                    save_model(net, run_dir / "best.safetensors",
                               {"train_config_hash": config_hash(cfg), "step": str(step),
                                "steps_total": str(init_steps + step),
                                f"val_{cfg.early_stop_metric}": f"{metric:.4f}"})
                else:
                    bad_vals += 1
                    if cfg.early_stop_patience and bad_vals >= cfg.early_stop_patience:
                        early_stopped = stop_now = True
                        bar.write(f"early stop at step {step}: {cfg.early_stop_metric} has not improved for "
                                  f"{bad_vals} validations (best {best:.3f})")
            interrupted = flag.stop or (stop_at is not None and stop_at <= step < cfg.steps)
            if distributed:  # every rank must take the same decision
                t = torch.tensor([float(interrupted), float(stop_now)], device=device)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                interrupted, stop_now = bool(t[0].item()), bool(t[1].item())
            if main and (step % cfg.ckpt_every == 0 or step == cfg.steps or interrupted or stop_now):
                save_checkpoint(run_dir / "checkpoints" / "last.pt", state(step))
            if interrupted or stop_now:
                break
    bar.close()
    if distributed:
        _check_replicas_in_sync(net)
    if main:
        if interrupted:
            print(f"stopped at step {step}; checkpoint saved. Continue with --resume {run_dir}")
        else:
            save_model(net, run_dir / "model.safetensors",
                       {"train_config_hash": config_hash(cfg), "step": str(step),
                        "steps_total": str(init_steps + step)})
        history.finish(run_dir)
        writer.close()
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(run_dir, step, interrupted, early_stopped, best, history.rows)


def _check_replicas_in_sync(net: nn.Module) -> None:
    """DDP sanity check: every rank must hold bit-identical weights after training."""
    flat = torch.cat([p.detach().float().flatten() for p in net.parameters()])
    checksum = torch.tensor([flat.sum().item(), flat.abs().sum().item()], dtype=torch.float64)
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"DDP replicas diverged: checksums {[g.tolist() for g in gathered]}")
    if dist.get_rank() == 0:
        print(f"ddp: {len(gathered)} replicas in sync (checksum {gathered[0][0].item():.6f})")
