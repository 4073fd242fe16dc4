"""Fitting and scoring a linear part probe on a synthetic dataset (issue #15's detector on frozen descriptors).

Labels come from the simulator's part images (`part.png`: global part ids of dataset.json, 0 = room and
distractors), so class c > 0 is one category's part ("mug/handle") and class 0 the background. Training pixels
are drawn class-balanced from views of the training split (every class gets up to `per_class` pixels per view),
the probe is a multinomial logistic regression on standardised descriptors (L-BFGS, L2), and the scores are the
confusion over *every* pixel of held-out views (split "test": scenes of instances never trained on).

The same recipe runs on any `eval.methods.Method`: a trained model, raw RGB, or random weights, which is what
makes the probe an honest test of what the descriptors hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..eval.methods import Method
from ..runtime.part_probe import BACKGROUND, PartProbe
from ..sim.dataset import SyntheticDataset
from .metrics import confusion

#: parts that only the object's canonical frame tells apart, not its appearance: a box's four side faces are
#: interchangeable under its symmetries (as for cross-instance pairs, data/cross_instance.py), so no descriptor
#: can tell "front" from "left". The probe scores them as one class.
MERGED_PARTS: dict[tuple[str, str], str] = {("box", p): "side" for p in ("front", "back", "left", "right")}


@dataclass
class LabelSpace:
    """The probe's classes for a dataset and the lookup from part ids to class ids.

    Attributes:
        classes: "background", then "<category>/<part>" in dataset.json part-id order, the parts of
            MERGED_PARTS as one class each (at the place of their first part).
        lut: (256,) uint8: class id of every part id (0 for part 0 and unknown ids).
    """

    classes: list[str]
    lut: np.ndarray

    @staticmethod
    def from_dataset(data: SyntheticDataset) -> LabelSpace:
        classes, lut = [BACKGROUND], np.zeros(256, dtype=np.uint8)
        for pid in sorted(data.parts):
            part = data.parts[pid]
            if pid == 0 or not part.get("category"):
                continue
            name = f"{part['category']}/{MERGED_PARTS.get((part['category'], part['name']), part['name'])}"
            if name not in classes:
                classes.append(name)
            lut[pid] = classes.index(name)
        return LabelSpace(classes, lut)

    def labels(self, part: np.ndarray) -> np.ndarray:
        """(H, W) uint8 part ids -> (H, W) uint8 class ids."""
        return self.lut[part]

    def category_groups(self) -> tuple[list[str], list[int]]:
        """Category names (background first) and the category index of every class."""
        names = [BACKGROUND]
        groups = []
        for c in self.classes:
            cat = BACKGROUND if c == BACKGROUND else c.split("/", 1)[0]
            if cat not in names:
                names.append(cat)
            groups.append(names.index(cat))
        return names, groups


def draw_views(data: SyntheticDataset, count: int, seed: int = 0) -> list[tuple[str, int]]:
    """`count` distinct (scene, view) pairs of the dataset's split, seeded; all of them if there are fewer."""
    views = [(s, v) for s in data.scenes for v in range(data.num_views(s))]
    if not views:
        raise ValueError(f"{data.root}: no views in split {data.split!r}")
    order = torch.randperm(len(views), generator=torch.Generator().manual_seed(seed)).tolist()
    return [views[i] for i in sorted(order[:count])]


def describe_view(method: Method, data: SyntheticDataset, view: tuple[str, int], space: LabelSpace,
                   device: str | torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """(D, H, W) full-resolution descriptors and (H, W) class ids of one view."""
    arr = data.arrays(view[0], view[1], ("rgb", "part"))
    image = arr["rgb"].permute(2, 0, 1).float().div(255.0).unsqueeze(0).to(device)
    desc = method.full_resolution(method.describe(image), (image.shape[-2], image.shape[-1]))[0]
    return desc.float().cpu(), space.labels(arr["part"].numpy())


def collect_samples(method: Method, data: SyntheticDataset, views: Iterable[tuple[str, int]], space: LabelSpace,
                    per_class: int = 100, seed: int = 0, device: str | torch.device = "cpu",
                    progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced training pixels: up to `per_class` random pixels of every class in every view.

    Returns X (N, D) float32 descriptors and y (N,) int64 class ids."""
    gen = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for view in views:
        desc, lab = describe_view(method, data, view, space, device)
        flat = torch.from_numpy(lab.reshape(-1).astype(np.int64))
        d = desc.reshape(desc.shape[0], -1)
        for c in torch.unique(flat).tolist():
            idx = torch.nonzero(flat == c).squeeze(1)
            idx = idx[torch.randperm(idx.numel(), generator=gen)[:per_class]]
            xs.append(d[:, idx].T)
            ys.append(torch.full((idx.numel(),), c, dtype=torch.int64))
        if progress is not None:
            progress.update(1)
    if not xs:
        raise ValueError("no training pixels collected")
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


def fit_probe(x: np.ndarray, y: np.ndarray, classes: list[str], weight_decay: float = 1e-4, max_iter: int = 200,
              model: dict | None = None, notes: str = "") -> PartProbe:
    """Multinomial logistic regression of y on x, as a PartProbe over `classes`.

    Features are standardised for the optimiser (raw RGB and unit descriptors differ in scale by 10x), then
    the standardisation is folded into the weights, so the probe applies to raw descriptors. The classes are
    not reweighted: `collect_samples` already balances them per view (reweighting by inverse frequency on top
    made rare parts swallow the background: pixel accuracy 0.10 for raw RGB on a small run). A class with no
    training pixel gets a bias of -1e4 and is never predicted.

    Shape: x (N, D) float, y (N,) int in [0, len(classes)).
    """
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (N, D) and y (N,), got {x.shape} and {y.shape}")
    c = len(classes)
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    mean, std = xt.mean(0), xt.std(0).clamp_min(1e-6)
    z = (xt - mean) / std
    seen = torch.bincount(yt, minlength=c) > 0
    w = torch.zeros(c, x.shape[1], requires_grad=True)
    b = torch.zeros(c, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = z @ w.T + b
        logits = logits.masked_fill(~seen, -1e4)
        loss = F.cross_entropy(logits, yt) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w_raw = (w.detach() / std).numpy()
    b_raw = (b.detach() - (w.detach() * mean / std).sum(1)).masked_fill(~seen, -1e4).numpy()
    return PartProbe(w_raw, b_raw, list(classes), model or {}, notes)


def score_probe(method: Method, probe: PartProbe, data: SyntheticDataset, views: Iterable[tuple[str, int]],
                space: LabelSpace, device: str | torch.device = "cpu", progress=None) -> np.ndarray:
    """(C, C) confusion of the probe over every pixel of `views` (rows ground truth)."""
    if probe.classes != space.classes:
        raise ValueError("the probe's classes differ from the dataset's")
    conf = np.zeros((len(space.classes),) * 2, dtype=np.int64)
    for view in views:
        desc, lab = describe_view(method, data, view, space, device)
        conf += confusion(probe.predict(desc.numpy()), lab, len(space.classes))
        if progress is not None:
            progress.update(1)
    return conf


__all__ = ["MERGED_PARTS", "LabelSpace", "collect_samples", "describe_view", "draw_views", "fit_probe", "score_probe"]
