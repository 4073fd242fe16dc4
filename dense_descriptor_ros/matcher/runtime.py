"""The matcher at run time: a matcher file (.safetensors on PyTorch, .onnx on ONNX Runtime) applied to two
DescriptorMaps of the descriptor model it was trained on, returning matches in image pixels. The pipeline (node,
`bag process`) and `dense-descriptor matcher eval` both use this class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..descriptor_map import DescriptorMap
from .config import MatcherConfig
from .io import MatcherInfo, load_matcher, matcher_config_of, matcher_info_of
from .model import MatcherNet

#: Default confidence threshold of a match (a mutual best cell of the dual-softmax above it).
DEFAULT_THRESHOLD = 0.2


class MatcherMismatchError(ValueError):
    """The descriptor maps come from another model than the one the matcher was trained on."""


@dataclass
class MatcherMatches:
    """Matches from A to B, most confident first.

    Shape:
        uv_a, uv_b: (M, 2) float64 pixel (x, y) in each map's input image; confidence: (M,) float32 in [0, 1]
        (dual-softmax probability); spread: (M,) float32 standard deviation (input pixels) of the fine refinement.
    """

    uv_a: np.ndarray
    uv_b: np.ndarray
    confidence: np.ndarray
    spread: np.ndarray

    def __len__(self) -> int:
        return len(self.uv_a)


def read_matcher_info(path: str | Path) -> MatcherInfo:
    """What a matcher file (.onnx or .safetensors) says about itself, without loading the network.

    Raises:
        FileNotFoundError: no such file. ValueError: not a matcher file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"matcher file {path} does not exist")
    if path.suffix == ".onnx":
        from .export import read_onnx_matcher

        try:
            return read_onnx_matcher(path)[0]
        except ValueError:
            raise
        except Exception as e:  # not an ONNX file at all
            raise ValueError(f"{path} is not a matcher file ({e})") from None
    try:
        return matcher_info_of(path)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"{path} is not a matcher file ({e})") from None


class LearnedMatcher:
    """A matcher file, ready to match (see module docstring).

    Construction reads only the file's metadata (identity, config: what the checks need); the network (an ONNX
    Runtime session or the PyTorch module) is built on the first match or `load()`: a node that may switch to the
    matcher at run time holds one without paying for it (about 0.4 s and 23 MB for the ONNX session here).

    Args:
        path: matcher file: .safetensors (PyTorch, CPU) or .onnx (ONNX Runtime CPU, `num_threads` threads).
        allow_spinning: ONNX Runtime's idle threads spin (faster alone, costly beside other processes: the node
            turns it off, as for its descriptor model).

    Raises:
        FileNotFoundError: no such file. ValueError: not a matcher file.
    """

    def __init__(self, path: str | Path, num_threads: int = 2, allow_spinning: bool = True) -> None:
        self.path = Path(path)
        self.num_threads, self.allow_spinning = num_threads, allow_spinning
        self._net: MatcherNet | None = None
        self._sess = None
        if self.path.suffix == ".onnx":
            from .export import read_onnx_matcher

            if not self.path.is_file():
                raise FileNotFoundError(f"matcher file {self.path} does not exist")
            self.info, self.config = read_onnx_matcher(self.path)
            self.backend = "onnxruntime"
        else:
            self.info = read_matcher_info(self.path)
            self.config: MatcherConfig = matcher_config_of(self.path)
            self.backend = "torch"

    @property
    def loaded(self) -> bool:
        return self._net is not None or self._sess is not None

    def load(self) -> LearnedMatcher:
        """Build the network now (else the first match does). Returns self."""
        if self.loaded:
            return self
        if self.backend == "onnxruntime":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if self.num_threads > 0:
                opts.intra_op_num_threads = self.num_threads
                opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.allow_spinning else "0")
            self._sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        else:
            self._net, _ = load_matcher(self.path)
        return self

    def check_model(self, model_id: str) -> None:
        """Refuse descriptor maps of a model other than the matcher's (an empty id is not checked)."""
        if model_id and model_id != self.info.descriptor_model_id:
            raise MatcherMismatchError(
                f"matcher {self.path.name} was trained on descriptor model {self.info.descriptor_model_id}, the maps "
                f"come from {model_id}: train a matcher for this model (`dense-descriptor matcher train`)")

    @property
    def reads_images(self) -> bool:
        """Whether the matcher needs the frames' images beside their maps (its fine level reads them)."""
        return self.config.image_channels > 0

    def image_input(self, rgb: np.ndarray, dmap: DescriptorMap) -> np.ndarray:
        """The image input of a frame: its RGB uint8 (H, W, 3) resized so that the map's cells tile it exactly
        (image_stride pixels each) -> (1, 3, h s, w s) float32 in [0, 1]."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        h, w = dmap.descriptors.shape[:2]
        s = self.config.image_stride
        small = cv2.resize(rgb, (w * s, h * s), interpolation=cv2.INTER_AREA if w * s < rgb.shape[1] else
                           cv2.INTER_LINEAR)
        return np.ascontiguousarray(small.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1 / 255)

    def raw(self, desc_a: np.ndarray, desc_b: np.ndarray, image_a: np.ndarray | None = None,
            image_b: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """The graph's outputs for two (h, w, D) maps of equal size (cropped to even h, w) and, for a matcher that
        reads them, their `image_input`s.

        Returns confidence (N,), mutual (N,) bool, position_b (N, 2) fine-map (column, row), spread (N,) fine
        cells, for the N = (h // 2) * (w // 2) coarse cells of A (row-major).
        """
        if desc_a.shape != desc_b.shape or desc_a.ndim != 3:
            raise ValueError(f"maps must be (h, w, D) of one size, got {desc_a.shape} and {desc_b.shape}")
        h, w = desc_a.shape[0] // 2 * 2, desc_a.shape[1] // 2 * 2
        if h < 2 or w < 2:
            raise ValueError(f"maps of {desc_a.shape[:2]} cells are too small to match (need at least 2 x 2)")
        if self.reads_images and (image_a is None or image_b is None):
            raise ValueError(f"matcher {self.path.name} reads the images too: pass both frames' images")
        feeds = {"desc_a": np.ascontiguousarray(desc_a[:h, :w].transpose(2, 0, 1)[None], dtype=np.float32),
                 "desc_b": np.ascontiguousarray(desc_b[:h, :w].transpose(2, 0, 1)[None], dtype=np.float32)}
        if self.reads_images:
            feeds.update(image_a=image_a, image_b=image_b)
        self.load()
        if self._sess is not None:
            out = self._sess.run(None, feeds)
        else:
            with torch.no_grad():
                out = [t.numpy() for t in self._net.match(*(torch.from_numpy(v) for v in feeds.values()))]
        return tuple(o[0] for o in out)

    def match(self, map_a: DescriptorMap, map_b: DescriptorMap, threshold: float = DEFAULT_THRESHOLD,
              max_matches: int = 0, mask_a: np.ndarray | None = None, image_a: np.ndarray | None = None,
              image_b: np.ndarray | None = None) -> MatcherMatches:
        """Mutual matches above `threshold` from A's coarse cells to B, most confident first.

        Args:
            max_matches: cap (0 = all). mask_a: optional (H, W) bool of A's input image: only cells whose centre
                lies inside are kept. image_a, image_b: the frames' RGB uint8 (H, W, 3) input images (needed when
                `reads_images`).
        """
        for m in (map_a, map_b):
            self.check_model(m.model_id)
        if map_a.descriptors.shape != map_b.descriptors.shape or map_a.stride != map_b.stride:
            raise ValueError("both maps must have the same size and stride (one camera, one processing size)")
        imgs = ((self.image_input(image_a, map_a), self.image_input(image_b, map_b)) if self.reads_images
                and image_a is not None and image_b is not None else (None, None))
        conf, mutual, pos, spread = self.raw(map_a.descriptors, map_b.descriptors, *imgs)
        wc = map_a.descriptors.shape[1] // 2
        cell = np.arange(len(conf))
        centre_a = np.stack([2 * (cell % wc) + 0.5, 2 * (cell // wc) + 0.5], 1)
        uv_a = map_a.to_image(centre_a)
        keep = mutual & (conf > threshold)
        if mask_a is not None:
            px = np.clip(np.rint(uv_a).astype(np.int64), 0, [mask_a.shape[1] - 1, mask_a.shape[0] - 1])
            keep &= mask_a[px[:, 1], px[:, 0]]
        idx = np.flatnonzero(keep)
        idx = idx[np.argsort(-conf[idx], kind="stable")]
        if max_matches > 0:
            idx = idx[:max_matches]
        uv_b = map_b.to_image(pos[idx].astype(np.float64))
        return MatcherMatches(uv_a[idx], uv_b, conf[idx].astype(np.float32),
                              (spread[idx] * float(np.mean(map_b.stride))).astype(np.float32))


__all__ = ["LearnedMatcher", "MatcherMatches", "MatcherMismatchError", "DEFAULT_THRESHOLD", "read_matcher_info"]
