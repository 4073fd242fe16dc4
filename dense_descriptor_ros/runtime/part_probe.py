"""A linear part-segmentation head on frozen descriptor maps (issue #15's detector): one weight vector per class,
applied to every descriptor, argmax = the pixel's class (background, or a category's part).

A *linear* probe is deliberately the weakest head that can read a class out of a descriptor: what it finds is
what the descriptors hold, not what a deep head learnt on top (the standard test of learnt representations).
Inference is NumPy only, so the ROS node runs it beside either backend (ONNX Runtime or torch) on the map the
extractor already made. Saved as .safetensors (weights + the class table and the descriptor model's identity in
the metadata), refused for descriptors of another model, as keypoint files are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..fileio import atomic_write

FORMAT = "dense_descriptor_ros.part_probe"
FORMAT_VERSION = "1"
BACKGROUND = "background"


class ProbeFileError(ValueError):
    """A part-probe file that cannot be read, or one made for other descriptors."""


@dataclass
class PartProbe:
    """Linear classifier of descriptors into `classes`.

    Shape:
        weight: (C, D) float32; bias: (C,) float32.
    Attributes:
        classes: C names, "background" first, then "<category>/<part>" (e.g. "mug/handle").
        model: identity of the descriptor model it was fitted on ({"id", "name", "version", ...}; empty for
            baselines), checked by `check_model`.
        notes: how it was made (data, views, pixels), for people.
    """

    weight: np.ndarray
    bias: np.ndarray
    classes: list[str]
    model: dict = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        self.weight = np.ascontiguousarray(self.weight, dtype=np.float32)
        self.bias = np.ascontiguousarray(self.bias, dtype=np.float32)
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"weight must be (C, D) and bias (C,), got {self.weight.shape} and {self.bias.shape}")
        if len(self.classes) != self.weight.shape[0]:
            raise ValueError(f"{len(self.classes)} class names for {self.weight.shape[0]} classes")
        if not self.classes or self.classes[0] != BACKGROUND:
            raise ValueError(f"class 0 must be {BACKGROUND!r}, got {self.classes[:1]}")
        if len(self.classes) > 256:
            raise ValueError(f"at most 256 classes fit a mono8 label image, got {len(self.classes)}")

    @property
    def descriptor_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    def categories(self) -> list[str]:
        """Category of every class ("" for the background): the part before the "/"."""
        return ["" if i == 0 else c.split("/", 1)[0] for i, c in enumerate(self.classes)]

    def logits(self, desc: np.ndarray) -> np.ndarray:
        """(D, H, W) descriptors -> (C, H, W) float32 class scores."""
        if desc.ndim != 3 or desc.shape[0] != self.descriptor_dim:
            raise ValueError(f"descriptors must be ({self.descriptor_dim}, H, W), got {desc.shape}")
        d, h, w = desc.shape
        flat = desc.reshape(d, h * w).astype(np.float32, copy=False)
        return (self.weight @ flat + self.bias[:, None]).reshape(self.num_classes, h, w)

    def predict(self, desc: np.ndarray) -> np.ndarray:
        """(D, H, W) descriptors -> (H, W) uint8 class ids (index into `classes`)."""
        return self.logits(desc).argmax(0).astype(np.uint8)

    def label_image(self, desc: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Class ids of a channel-last map, nearest-upsampled to an image of `size` (W, H).

        The argmax is taken at the map's own resolution (stride 4 of the processing size for the shipped
        models): upsampling C score maps first would cost more than the network at 30 Hz, and the labels
        serve masks and part gating, not boundaries. Shape: desc (h, w, D) -> (H, W) uint8."""
        import cv2

        if desc.ndim != 3 or desc.shape[2] != self.descriptor_dim:
            raise ValueError(f"descriptors must be (h, w, {self.descriptor_dim}), got {desc.shape}")
        h, w, d = desc.shape
        scores = desc.reshape(h * w, d).astype(np.float32, copy=False) @ self.weight.T + self.bias
        small = scores.argmax(1).astype(np.uint8).reshape(h, w)
        return cv2.resize(small, (int(size[0]), int(size[1])), interpolation=cv2.INTER_NEAREST)

    def check_model(self, model_id: str) -> None:
        """Refuse descriptors from a model other than the one the probe was fitted on."""
        mine = str(self.model.get("id", ""))
        if mine and model_id and mine != model_id:
            raise ProbeFileError(f"the part probe was fitted on model {mine} ({self.model.get('name')} "
                                 f"{self.model.get('version')}) but the descriptors come from model {model_id}: "
                                 "fit it again with `dense-descriptor probe`")

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "classes": json.dumps(self.classes),
                "model": json.dumps(self.model), "notes": self.notes}
        atomic_write(path, lambda tmp: save_file({"weight": self.weight, "bias": self.bias}, tmp, metadata=meta))

    @staticmethod
    def load(path: str | Path) -> PartProbe:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ProbeFileError(f"part probe file {path} does not exist")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = dict(f.metadata() or {})
                if meta.get("format") != FORMAT:
                    raise ProbeFileError(f"{path} is not a part probe file (format {meta.get('format')!r})")
                return PartProbe(f.get_tensor("weight"), f.get_tensor("bias"), json.loads(meta["classes"]),
                                 json.loads(meta.get("model", "{}")), meta.get("notes", ""))
        except ProbeFileError:
            raise
        except Exception as e:  # safetensors / json raise several types for a corrupt file
            raise ProbeFileError(f"{path} is not a readable part probe file: {type(e).__name__}: {e}") from e


__all__ = ["BACKGROUND", "FORMAT", "PartProbe", "ProbeFileError"]
