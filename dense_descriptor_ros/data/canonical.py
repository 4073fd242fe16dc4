"""What canonical coordinate each synthetic pixel can be asked for, given its category's symmetry (issue #15).

The simulator gives every pixel of a category object its canonical object coordinate (x, y, z, divided by the
instance's scale: `sim.render.canonical_coordinates`). A network can only be asked for what the image shows:

* a mug's handle fixes its yaw, so all of (x, y, z) is visible;
* bowls, bottles and cans are bodies of revolution: their yaw is invisible, but the height z and the distance
  from the axis r = sqrt(x^2 + y^2) are the same on every instance's rim, shoulder or base;
* a box's faces are interchangeable under its symmetries (and distractors have no canonical frame): nothing.

The target has the four channels (x, y, z, r), NaN where a channel is not asked for. It is the same for two
instances of a category at the same part, which is the category-level structure the auxiliary canonical term
(`losses/canonical.py`) asks of the descriptors.
"""

from __future__ import annotations

import torch

from ..checks import check_shape

#: channels of the target
CHANNELS = ("x", "y", "z", "r")
#: the channels each category's symmetry leaves visible (categories not named here get none)
VISIBLE: dict[str, tuple[str, ...]] = {"mug": ("x", "y", "z", "r"), "bowl": ("z", "r"), "bottle": ("z", "r"),
                                       "can": ("z", "r")}


def canonical_targets(coords: torch.Tensor, category: torch.Tensor, names: dict[int, str]) -> torch.Tensor:
    """The (x, y, z, r) target of every pixel, NaN where its category's symmetry hides the channel.

    Args:
        coords: (H, W, 3) canonical coordinates, NaN off category objects.
        category: (H, W) category ids of the pixels (0 = none).
        names: category id -> name (dataset.json).

    Shape:
        -> (4, H, W) float32.
    """
    check_shape(coords, ("H", "W", 3), "coords")
    check_shape(category, tuple(coords.shape[:2]), "category")
    c = coords.float().permute(2, 0, 1)
    target = torch.cat([c, torch.sqrt(c[0] ** 2 + c[1] ** 2)[None]])  # (4, H, W)
    keep = torch.zeros(len(CHANNELS), *category.shape, dtype=torch.bool)
    cat = category.long()
    for cid, name in names.items():
        channels = VISIBLE.get(name, ())
        if channels:
            on = cat == int(cid)
            for ch in channels:
                keep[CHANNELS.index(ch)] |= on
    return torch.where(keep & torch.isfinite(target), target, torch.full_like(target, float("nan")))


__all__ = ["CHANNELS", "VISIBLE", "canonical_targets"]
