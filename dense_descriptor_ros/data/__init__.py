"""Datasets that produce training pairs."""

from .base import PairBatch, PairDataset, PairItem, collate_pairs
from .image_folder import ImageFolderPairs, list_images, load_rgb
from .sample_images import HELDOUT_IMAGES, REAL_HELDOUT, TRAIN_IMAGES, resolve_image_dir, write_sample_images

__all__ = ["PairBatch", "PairDataset", "PairItem", "collate_pairs", "ImageFolderPairs", "list_images",
           "load_rgb", "HELDOUT_IMAGES", "REAL_HELDOUT", "TRAIN_IMAGES", "resolve_image_dir",
           "write_sample_images"]
