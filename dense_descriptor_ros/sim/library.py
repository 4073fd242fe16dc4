"""The object library: which instances exist, their split, and their meshes/textures cached on disk.

An instance is (category, index); its shape parameters and appearance are a pure function of
(object_seed, category, index), independent of the scene seed, so datasets generated with different
scene seeds share instance identities and the same instance split. Meshes (one OBJ per part) and the
texture are written once per instance under ``DIR/cache/objects/<key>/`` and reused by later scenes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .categories import CATEGORIES, ShapeModel
from .format import commit_dir
from .mesh import to_obj
from .textures import Appearance, instance_appearance, surface_texture

#: object and room textures of each look ("cartoon": sim/textures.py, "realistic": sim/appearance.py)
APPEARANCES = ("cartoon", "realistic")

SPLITS = ("train", "val", "test")
#: fraction of each category's instances held out for validation and for testing
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1


@dataclass(frozen=True)
class InstanceRef:
    """One object instance of the library."""

    category: str
    index: int

    @property
    def key(self) -> str:
        return f"{self.category}_{self.index:03d}"


def category_id(category: str) -> int:
    """Stable id of a category: 1-based position in CATEGORIES (0 = none)."""
    return list(CATEGORIES).index(category) + 1


def _rng(object_seed: int, category: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([object_seed, category_id(category), index, stream]))


def instance_params(object_seed: int, ref: InstanceRef) -> dict[str, float]:
    return CATEGORIES[ref.category].sample(_rng(object_seed, ref.category, ref.index, 0))


def _check_appearance(appearance: str) -> None:
    if appearance not in APPEARANCES:
        raise ValueError(f"appearance must be one of {', '.join(APPEARANCES)}, got {appearance!r}")


def build_instance(object_seed: int, ref: InstanceRef, appearance: str = "cartoon", textures: bool = True
                   ) -> tuple[dict[str, float], ShapeModel, Appearance]:
    """Shape parameters, geometry and appearance of an instance (deterministic). The shape does not
    depend on `appearance`; each look draws from its own random stream. `textures=False` skips drawing
    the realistic look's textures (about 50 ms; `ensure_instance` reads them from its cache instead);
    the cartoon look's are cheap and always drawn."""
    _check_appearance(appearance)
    params = instance_params(object_seed, ref)
    shape = CATEGORIES[ref.category].build(params)
    names = [p.name for p in shape.parts]
    if appearance == "realistic":
        from .appearance import realistic_instance_appearance

        look = realistic_instance_appearance(_rng(object_seed, ref.category, ref.index, 3), ref.category, names,
                                             [p.textured for p in shape.parts], textures)
    else:
        look = instance_appearance(_rng(object_seed, ref.category, ref.index, 1), ref.category, names)
    return params, shape, look


def instance_split(object_seed: int, category: str, n_instances: int) -> dict[str, list[int]]:
    """Disjoint train/val/test instance indices of a category (a seeded permutation)."""
    perm = _rng(object_seed, category, 10**6, 2).permutation(n_instances)
    n_test = max(1, round(TEST_FRACTION * n_instances))
    n_val = max(1, round(VAL_FRACTION * n_instances))
    return {"test": sorted(perm[:n_test].tolist()), "val": sorted(perm[n_test:n_test + n_val].tolist()),
            "train": sorted(perm[n_test + n_val:].tolist())}


def instance_dir(cache: Path, ref: InstanceRef, appearance: str = "cartoon") -> Path:
    """cache/objects/<key> (cartoon) or cache/objects_realistic/<key>."""
    _check_appearance(appearance)
    return Path(cache) / ("objects" if appearance == "cartoon" else f"objects_{appearance}") / ref.key


def part_texture_file(part: str) -> str:
    """File name of a part's own texture (realistic look) in an instance folder."""
    return f"texture_{part}.png"


def ensure_instance(cache: Path, object_seed: int, ref: InstanceRef, appearance: str = "cartoon"
                    ) -> tuple[Path, ShapeModel, Appearance, dict[str, float]]:
    """Build an instance and make sure its OBJ files and textures are on disk (written atomically, so
    concurrent workers may race safely). Returns the folder, geometry, appearance and parameters."""
    final = instance_dir(cache, ref, appearance)
    cached = final.is_dir()
    params, shape, look = build_instance(object_seed, ref, appearance, textures=not cached)
    if cached and look.texture.size == 0:  # the realistic look: textures from the cache
        look.texture = _read_rgb(final / "texture.png")
        look.part_textures = {p.name: _read_rgb(final / part_texture_file(p.name)) for p in shape.parts
                              if not p.textured}
    if not cached:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{ref.key}."))
        for part in shape.parts:
            (tmp / f"{part.name}.obj").write_text(to_obj(part.mesh))
        cv2.imwrite(str(tmp / "texture.png"), cv2.cvtColor(look.texture, cv2.COLOR_RGB2BGR))
        for part, tex in look.part_textures.items():
            cv2.imwrite(str(tmp / part_texture_file(part)), cv2.cvtColor(tex, cv2.COLOR_RGB2BGR))
        tmp.chmod(0o755)
        commit_dir(tmp, final)
    return final, shape, look, params


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read texture {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def ensure_surface_texture(cache: Path, seed: int, kind: str, index: int, appearance: str = "cartoon") -> Path:
    """Path of room texture `index` of `kind` ("table", "floor", "wall"; "distractor": clutter, realistic
    look only), generated on first use: cache/env/<kind>_NNN.png (cartoon, 256 pixels) or
    cache/env/realistic_<kind>_NNN.png (table 512 pixels, the far walls, floor and clutter 256)."""
    _check_appearance(appearance)
    prefix = "" if appearance == "cartoon" else f"{appearance}_"
    path = Path(cache) / "env" / f"{prefix}{kind}_{index:03d}.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = {"table": 0, "floor": 1, "wall": 2, "distractor": 3}[kind]
        if appearance == "realistic":
            from .appearance import realistic_surface_texture

            rng = np.random.default_rng(np.random.SeedSequence([seed, 7919, stream, index, 1]))
            tex = realistic_surface_texture(rng, kind, 512 if kind == "table" else 256)
        else:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 7919, stream, index]))
            tex = surface_texture(rng, 256)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}."))
        cv2.imwrite(str(tmp / path.name), cv2.cvtColor(tex, cv2.COLOR_RGB2BGR))
        try:
            (tmp / path.name).replace(path)
        finally:
            (tmp / path.name).unlink(missing_ok=True)
            tmp.rmdir()
    return path
