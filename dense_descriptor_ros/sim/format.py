"""The on-disk dataset format (version 1): file names, image encodings and JSON metadata.

The full specification is docs/sim_format.md. In short::

    DIR/dataset.json                    format version, generator settings, categories, parts, splits
    DIR/cache/                          generated meshes and textures (reused by later scenes)
    DIR/scenes/scene_000123/scene.json  objects, poses, per-view cameras and keypoints
    DIR/scenes/scene_000123/007_rgb.png ... one set of images per view (see VIEW_FILES)

A scene folder is written under a temporary name and renamed when complete, so a folder named
``scene_NNNNNN`` is always whole. The writer and the loader both use this module, so the encoding is
defined in one place. Plain numpy + OpenCV (no torch).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

FORMAT_VERSION = "1.1"
DATASET_FILE = "dataset.json"
SCENE_FILE = "scene.json"
SCENES_DIR = "scenes"
CACHE_DIR = "cache"

#: view file suffixes -> what they hold (the file is f"{view:03d}_{suffix}").
VIEW_FILES = {
    "rgb.png": "8-bit RGB",
    "depth.tiff": "float32 depth in metres (z along the optical axis), 0 = no surface; LZW TIFF, predictor 3",
    "depth_mm.png": "uint16 depth in millimetres (rounded, clipped at 65535), 0 = no surface",
    "instance.png": "uint8 scene instance id (0 = table/room, 1..N objects as listed in scene.json)",
    "category.png": "uint8 category id (0 = none, ids in dataset.json 'categories')",
    "part.png": "uint8 global part id (0 = none, ids in dataset.json 'parts')",
    "coords.png": "uint16 x 3 canonical object coordinates (x, y, z): c = (v - 1) / COORD_SCALE + COORD_MIN, "
                  "v = 0 where no category object",
}
#: fixed-point encoding of canonical coordinates in coords.png (step 1/13000, range [-2.5, 2.5])
COORD_MIN = -2.5
COORD_SCALE = 13000.0
#: written only with depth noise enabled
NOISY_DEPTH_FILE = "depth_noisy_mm.png"
_TIFF = [cv2.IMWRITE_TIFF_COMPRESSION, cv2.IMWRITE_TIFF_COMPRESSION_LZW,
         cv2.IMWRITE_TIFF_PREDICTOR, cv2.IMWRITE_TIFF_PREDICTOR_FLOATINGPOINT]
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 3]


def scene_name(index: int) -> str:
    return f"scene_{index:06d}"


def view_file(view: int, suffix: str) -> str:
    return f"{view:03d}_{suffix}"


def _encode(path: Path, image: np.ndarray, params: list[int]) -> None:
    ok, buf = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def depth_to_mm(depth: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres (0 stays 0 = invalid)."""
    mm = np.round(np.nan_to_num(depth, nan=0.0) * 1000.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def encode_coords(coords: np.ndarray) -> np.ndarray:
    """(H, W, 3) float canonical coordinates (NaN = none) -> uint16 fixed point (0 = none)."""
    ok = np.isfinite(coords).all(-1, keepdims=True)
    v = np.round((np.clip(np.nan_to_num(coords), COORD_MIN, -COORD_MIN) - COORD_MIN) * COORD_SCALE) + 1
    return np.ascontiguousarray(np.where(ok, v, 0).astype(np.uint16))


def decode_coords(v: np.ndarray) -> np.ndarray:
    """uint16 fixed point -> (H, W, 3) float32 canonical coordinates, NaN where none."""
    c = (v.astype(np.float32) - 1.0) / COORD_SCALE + COORD_MIN
    return np.where((v > 0).all(-1, keepdims=True), c, np.nan).astype(np.float32)


def write_view(scene_dir: Path, view: int, images: dict[str, np.ndarray]) -> None:
    """Write one view's images. Keys: rgb (H,W,3) uint8, depth (H,W) float32, instance, category, part
    (H,W) uint8, coords (H,W,3) float (NaN = none), optional depth_noisy (H,W) float32."""
    _encode(scene_dir / view_file(view, "rgb.png"), cv2.cvtColor(images["rgb"], cv2.COLOR_RGB2BGR), _PNG)
    _encode(scene_dir / view_file(view, "depth.tiff"), images["depth"].astype(np.float32), _TIFF)
    _encode(scene_dir / view_file(view, "depth_mm.png"), depth_to_mm(images["depth"]), _PNG)
    for key in ("instance", "category", "part"):
        _encode(scene_dir / view_file(view, f"{key}.png"), images[key].astype(np.uint8), _PNG)
    # OpenCV writes 3-channel arrays as BGR; reversing the channels makes the file's RGB = x, y, z
    _encode(scene_dir / view_file(view, "coords.png"), np.ascontiguousarray(encode_coords(images["coords"])[..., ::-1]),
            _PNG)
    if "depth_noisy" in images:
        _encode(scene_dir / view_file(view, NOISY_DEPTH_FILE), depth_to_mm(images["depth_noisy"]), _PNG)


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return img


def read_view(scene_dir: Path, view: int, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Read a view's images (all of them, or `keys` among rgb, depth, depth_mm, instance, category,
    part, coords, depth_noisy). Arrays as documented in `write_view`; depth_mm and depth_noisy come back
    as float32 metres."""
    scene_dir = Path(scene_dir)
    keys = keys or ("rgb", "depth", "depth_mm", "instance", "category", "part", "coords")
    out: dict[str, np.ndarray] = {}
    for key in keys:
        if key == "rgb":
            out[key] = cv2.cvtColor(_read(scene_dir / view_file(view, "rgb.png")), cv2.COLOR_BGR2RGB)
        elif key == "depth":
            out[key] = _read(scene_dir / view_file(view, "depth.tiff")).astype(np.float32)
        elif key in ("depth_mm", "depth_noisy"):
            name = "depth_mm.png" if key == "depth_mm" else NOISY_DEPTH_FILE
            out[key] = _read(scene_dir / view_file(view, name)).astype(np.float32) / 1000.0
        elif key == "coords":
            out[key] = decode_coords(_read(scene_dir / view_file(view, "coords.png"))[..., ::-1])
        elif key in ("instance", "category", "part"):
            out[key] = _read(scene_dir / view_file(view, f"{key}.png"))
        else:
            raise KeyError(f"unknown view image {key!r}")
    return out


def to_json(value: Any) -> Any:
    """numpy -> plain Python for json (float64 repr is exact and deterministic)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(path: Path, data: Any) -> None:
    """Atomic, deterministic JSON write (sorted keys, fixed indentation)."""
    atomic_write_bytes(path, (json.dumps(to_json(data), indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def commit_dir(tmp_dir: Path, final_dir: Path) -> bool:
    """Rename a completed temporary folder into place; False (and tmp removed) if another process won."""
    try:
        os.rename(tmp_dir, final_dir)
        return True
    except OSError:
        if final_dir.is_dir():
            shutil.rmtree(tmp_dir, ignore_errors=True)
            return False
        raise
