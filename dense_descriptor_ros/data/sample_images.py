"""The sample photographs (re-exported from the ground floor, `dense_descriptor_ros.sample_images`, where the simulator
reads the training photo list without importing data/)."""

from ..sample_images import (
    BUILTIN_FOLDERS,
    HELDOUT_IMAGES,
    REAL_HELDOUT,
    TRAIN_IMAGES,
    resolve_image_dir,
    sample_images_dir,
    write_sample_images,
)

__all__ = ["BUILTIN_FOLDERS", "HELDOUT_IMAGES", "REAL_HELDOUT", "TRAIN_IMAGES", "resolve_image_dir",
           "sample_images_dir", "write_sample_images"]
