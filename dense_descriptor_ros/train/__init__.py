"""Training: config, loop, checkpoints, monitoring."""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import DataConfig, LossConfig, OptimConfig, TrainConfig
from .loop import TrainResult, build_loss_from_config, lr_at, train

__all__ = ["DataConfig", "LossConfig", "OptimConfig", "TrainConfig", "TrainResult", "build_loss_from_config",
           "load_checkpoint", "lr_at", "save_checkpoint", "train"]
