"""The training configuration: one typed dataclass tree, loaded from YAML + command-line overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..correspondence.augment import AugmentConfig
from ..losses import LOSS_NAMES
from ..models.config import ModelConfig


@dataclass
class DataConfig:
    # Where training pairs come from: "images" (augmentation pairs of a folder of images),
    # "synthetic" (multi-view RGB-D scenes from `dense-descriptor sim generate`), "mixed" (both), or
    # "bag" (RGB-D frames of a rosbag2: multi-view pairs when it has camera poses, else augmentation pairs).
    kind: Literal["images", "synthetic", "mixed", "bag"] = "images"
    # Folder of ordinary images for augmentation pairs ("samples" = scikit-image's sample photos,
    # written to runs/sample_images).
    image_dir: str = "samples"
    # Root of a synthetic dataset (kind synthetic or mixed).
    synthetic_dir: str = ""
    # Probability that a training pair is a synthetic multi-view pair (kind mixed).
    synthetic_fraction: float = 0.5
    # Share of the synthetic pairs that show two different instances of one category, matched through canonical
    # object coordinates (data/cross_instance.py; issue #15). 0 = every synthetic pair shows one instance twice.
    cross_instance_fraction: float = 0.0
    # Categories of the cross-instance pairs: only those whose canonical frame is visible (data.cross_instance
    # FRAME_CUES: a mug's handle); symmetric ones (bowl, can, bottle, box) are left out.
    cross_instance_categories: tuple[str, ...] = ("mug",)
    # Canonical-coordinate radius of a cross-instance match (fraction of the instance's radius / height).
    cross_instance_max_distance: float = 0.1
    # Training view size (H, W); images are resized to cover it first.
    image_size: tuple[int, int] = (240, 320)
    # Matches per pair.
    n_matches: int = 256
    # Non-matches per match (masked + background when masks exist).
    nonmatches_per_match: int = 4
    # Share of non-matches drawn on background when object masks exist (Dense Object Nets).
    background_fraction: float = 0.5
    # Non-matches closer than this many pixels to the true match are dropped.
    min_nonmatch_distance: float = 8.0
    # rosbag2 folder or .mcap / .db3 file (kind bag), e.g. data_sample/sim_mug (docs/rosbag_tools.md).
    bag_path: str = ""
    # Bag topics of colour, aligned depth and camera info: "" = the one topic ending in the node's default name
    # (color/image_raw, aligned_depth_to_color/image_raw, color/camera_info); "none" (depth, info) = not used.
    bag_color_topic: str = ""
    bag_depth_topic: str = ""
    bag_info_topic: str = ""
    # Camera poses: "" = auto (the PoseStamped topic, else TF), "tf", "none", or a PoseStamped topic name.
    bag_pose_topic: str = ""
    # TF only: the fixed frame of the poses ("" = the root of the camera frame's chain).
    bag_fixed_frame: str = ""
    # "auto" (multi-view pairs if the bag has poses, else augmentation pairs), "multiview" or "augment".
    bag_pairs: Literal["auto", "multiview", "augment"] = "auto"
    # Object masks of bag frames: "none", or "depth_clusters" (from each frame's depth: the table plane removed,
    # the clusters above it kept; geometry/depth_clusters.py), which guide the pair sampling as the simulator's
    # masks do (matches on objects, data.background_fraction of the non-matches on background).
    bag_masks: Literal["none", "depth_clusters"] = "none"
    # Use every n-th synchronised frame (frames are kept in memory: thin out long bags).
    bag_frame_step: int = 1
    # Range (degrees) of the angle between the optical axes of a multi-view pair's two frames.
    bag_view_angle_deg: tuple[float, float] = (5.0, 60.0)
    # Occlusion test of the depth reprojection, |z - z_seen| <= abs + rel * z (metres, fraction): real sensors
    # (0.015, 0.01); rendered depth stored in millimetres, as in the sample bag, (0.003, 0.0).
    bag_depth_tolerance: tuple[float, float] = (0.015, 0.01)
    # Held-out images for validation PCK ("samples_heldout" = the held-out scikit-image photos; "" = none).
    val_image_dir: str = "samples_heldout"
    # Number of fixed, seeded validation pairs.
    val_pairs: int = 24
    # Augmentation ranges.
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.synthetic_fraction <= 1.0:
            raise ValueError(f"synthetic_fraction must be in [0, 1], got {self.synthetic_fraction}")
        if not 0.0 <= self.cross_instance_fraction <= 1.0:
            raise ValueError(f"cross_instance_fraction must be in [0, 1], got {self.cross_instance_fraction}")
        if self.cross_instance_max_distance <= 0:
            raise ValueError(f"cross_instance_max_distance must be > 0, got {self.cross_instance_max_distance}")
        if self.cross_instance_fraction > 0 and not self.cross_instance_categories:
            raise ValueError("cross_instance_fraction > 0 needs at least one of cross_instance_categories")
        if self.bag_frame_step < 1:
            raise ValueError(f"bag_frame_step must be >= 1, got {self.bag_frame_step}")
        if min(self.image_size) < 32:
            raise ValueError(f"image_size must be at least 32x32, got {self.image_size}")


@dataclass
class LossConfig:
    # "contrastive" (Dense Object Nets hinge), "triplet", "infonce" (negatives: the other matches),
    # "dense_infonce" (negatives: every location of the other view) or "simsiam" (needs
    # model.predictor_hidden > 0).
    # One of the loss registry's names (losses/__init__.py LOSS_NAMES).
    name: str = "dense_infonce"
    # Hinge margin M of the non-match term (contrastive) or of the triplet.
    margin: float = 0.5
    # Weights of the match, masked non-match and background non-match terms (contrastive).
    match_weight: float = 1.0
    masked_nonmatch_weight: float = 1.0
    background_nonmatch_weight: float = 1.0
    # Divide the non-match hinge by the number of hard negatives (Dense Object Nets).
    scale_by_hard_negatives: bool = True
    # InfoNCE / dense InfoNCE temperature.
    temperature: float = 0.05
    # dense_infonce: std (input pixels) of the Gaussian target around the true match.
    target_sigma: float = 2.0
    # Hard negatives mined per match from the current descriptors (0 = off).
    hard_negatives: int = 0
    # Apply the loss at every pyramid level (fpn_* and lite models) with these weights, finest first.
    pyramid: bool = False
    pyramid_weights: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    # Weight of the auxiliary part term (losses/part.py): a linear classifier trained with the network must
    # read the simulator's part label out of every synthetic descriptor (photographs carry no labels and are
    # ignored). Needs synthetic data. 0 = off.
    part_weight: float = 0.0
    # Logit scale of that classifier (descriptors are unit vectors).
    part_scale: float = 10.0
    # Weigh the part term's classes by the square root of their inverse frequency in each batch, so that the
    # background and the bodies do not drown the small parts (handles, rims).
    part_balance: bool = False
    # Weight of the auxiliary canonical-coordinate term (losses/canonical.py): a linear map trained with the
    # network must read each synthetic pixel's canonical (x, y, z, r) out of its descriptor, as far as the
    # category's symmetry shows it (data/canonical.py). Needs synthetic data. 0 = off.
    coords_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {self.name!r}; choose one of {', '.join(LOSS_NAMES)}")
        if self.coords_weight < 0:
            raise ValueError(f"coords_weight must be >= 0, got {self.coords_weight}")
        if self.part_weight < 0 or self.part_scale <= 0:
            raise ValueError(f"part_weight must be >= 0 and part_scale > 0, got {self.part_weight}, "
                             f"{self.part_scale}")


@dataclass
class OptimConfig:
    # Adam(W) learning rate, weight decay and warm-up steps; cosine decay to `min_lr_ratio` x lr.
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 25
    min_lr_ratio: float = 0.05
    # Gradient-norm clipping (0 = off).
    grad_clip: float = 5.0


@dataclass
class FinetuneConfig:
    # Learning-rate multiplier of the encoder's parameters (e.g. 0.1 to move pretrained weights slowly).
    encoder_lr_mult: float = 1.0
    # Keep the encoder's batch-norm statistics (running mean / variance) fixed: its BatchNorm layers stay in
    # eval mode while training (small batches would otherwise overwrite pretrained statistics).
    freeze_bn: bool = False
    # Freeze the first N units of the encoder (stem, then blocks / stages in input order): no gradients.
    freeze_stages: int = 0
    # Start the 1x1 descriptor head at the principal components of the decoder's features on the first view of
    # this many training pairs (0 = random head). For pretrained encoders with a hypercolumn decoder
    # (effnet_lite0): training starts from the PCA of the ImageNet features instead of a random projection.
    pca_head_images: int = 0

    def __post_init__(self) -> None:
        if self.encoder_lr_mult < 0:
            raise ValueError(f"encoder_lr_mult must be >= 0, got {self.encoder_lr_mult}")
        if self.freeze_stages < 0 or self.pca_head_images < 0:
            raise ValueError(f"freeze_stages and pca_head_images must be >= 0, got {self.freeze_stages}, "
                             f"{self.pca_head_images}")


@dataclass
class TrainConfig:
    # Unit-length descriptors by default: the InfoNCE losses compare directions, and best-match search
    # (L2) on unit vectors then ranks exactly as the loss does.
    model: ModelConfig = field(default_factory=lambda: ModelConfig(normalize=True))
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Fine-tuning a (pretrained) encoder: learning-rate multiplier, frozen batch norm, frozen early units.
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    # Start from the weights of this model file (.safetensors from `dense-descriptor train`, or a checkpoint
    # .pt) instead of random initialisation: fine-tuning, or a second training stage with a fresh learning-rate
    # schedule. Its architecture must equal `model`. An encoder file (encoder.safetensors of `dense-descriptor
    # pretrain`) starts only the encoder; the decoder and head start fresh (finetune.pca_head_images applies).
    # Ignored by --resume (the checkpoint's weights win).
    init_from: str = ""
    # Optimiser steps.
    steps: int = 500
    # Pairs per micro-batch per process.
    batch_size: int = 4
    # Micro-batches accumulated per optimiser step.
    grad_accum: int = 1
    # Seed of everything random (initialisation, pair order, augmentations).
    seed: int = 0
    # DataLoader worker processes (0 = load in the main process).
    workers: int = 1
    # "auto" (cuda if available), "cpu" or "cuda".
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Mixed precision on CUDA: "auto" (bf16 on CUDA), "bf16", "fp16" or "none". Ignored on CPU.
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"
    # Run directory (TensorBoard logs, checkpoints, resolved config, final model).
    out_dir: str = "runs/train"
    # Logging, PCA-image, checkpoint and validation periods in steps.
    log_every: int = 10
    image_every: int = 100
    ckpt_every: int = 100
    val_every: int = 100
    # Stop when the validation metric has not improved for this many validations (0 = never).
    early_stop_patience: int = 0
    # Validation metric used for early stopping and for picking best.safetensors.
    early_stop_metric: Literal["pck@1", "pck@3", "pck@5", "pck@10"] = "pck@5"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "log_every", "image_every", "ckpt_every", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.loss.name == "simsiam" and self.model.predictor_hidden <= 0:
            raise ValueError("loss.name=simsiam needs a predictor: set model.predictor_hidden > 0 (e.g. 64)")
