"""What a training run reports: TensorBoard scalars and images, a metric history, and its plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..correspondence.pairs import PairSample, sample_descriptors
from ..viz.pca import descriptor_to_rgb, pca_basis


@torch.no_grad()
def collapse_indicators(desc_a: torch.Tensor, desc_b: torch.Tensor, pairs: PairSample,
                        stride: int) -> dict[str, float]:
    """Numbers that reveal a collapsing descriptor space.

    channel_std: mean over channels of the per-channel std over all pixels (-> 0 when collapsed);
    match_dist / nonmatch_dist: mean L2 distance of matches / valid non-matches (they meet when collapsed).
    """
    d = desc_a.shape[1]
    flat = desc_a.detach().float().transpose(0, 1).reshape(d, -1)
    out = {"health/channel_std": flat.std(dim=1).mean().item()}
    da = sample_descriptors(desc_a.float(), pairs.matches_a, stride)
    db = sample_descriptors(desc_b.float(), pairs.matches_b, stride)
    mv = pairs.match_valid
    if mv.any():
        out["health/match_dist"] = (da - db).norm(dim=-1)[mv].mean().item()
    na = sample_descriptors(desc_a.float(), pairs.nonmatch_a, stride)
    nb = sample_descriptors(desc_b.float(), pairs.nonmatch_b, stride)
    nv = pairs.nonmatch_valid
    if nv.any():
        out["health/nonmatch_dist"] = (na - nb).norm(dim=-1)[nv].mean().item()
    return out


def pca_panel(image_a: torch.Tensor, image_b: torch.Tensor, desc_a: torch.Tensor,
              desc_b: torch.Tensor) -> np.ndarray:
    """(H, 4W, 3) uint8: image A | descriptors A | image B | descriptors B, one PCA basis for both."""
    h, w = image_a.shape[-2:]
    up = torch.nn.functional.interpolate(torch.stack([desc_a, desc_b]).float(), size=(h, w), mode="bilinear",
                                         align_corners=False)
    basis = pca_basis(up)
    imgs = [(image_a.permute(1, 2, 0).clamp(0, 1) * 255).byte().cpu().numpy(), descriptor_to_rgb(up[0], basis),
            (image_b.permute(1, 2, 0).clamp(0, 1) * 255).byte().cpu().numpy(), descriptor_to_rgb(up[1], basis)]
    return np.concatenate(imgs, axis=1)


class MetricHistory:
    """step -> {name: value}, kept in memory, saved as JSON in the run and plotted at the end."""

    def __init__(self, rows: list[dict[str, float]] | None = None) -> None:
        self.rows: list[dict[str, float]] = list(rows or [])

    def add(self, step: int, values: dict[str, float]) -> None:
        self.rows.append({"step": float(step), **{k: float(v) for k, v in values.items()}})

    def log(self, step: int, values: dict[str, float], writer) -> None:
        """`add`, and the same scalars to a TensorBoard SummaryWriter (what every run loop logs)."""
        self.add(step, values)
        for k, v in values.items():
            writer.add_scalar(k, v, step)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.rows, indent=0))

    def finish(self, run_dir: str | Path) -> None:
        """history.json and history.png in a run directory (at the end of a run or when it stops)."""
        self.save(Path(run_dir) / "history.json")
        self.plot(Path(run_dir) / "history.png")

    def plot(self, path: str | Path, cols: int = 5) -> None:
        """One small panel per metric against step (metrics differ in scale, so none share an axis)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = sorted({k for r in self.rows for k in r if k != "step"})
        if not keys:
            return
        rows = -(-len(keys) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
        for ax, k in zip(axes.flat, keys, strict=False):
            pts = [(r["step"], r[k]) for r in self.rows if k in r]
            ax.plot(*zip(*pts, strict=True), marker="." if len(pts) < 30 else None,
                    color="C1" if k.startswith("val/") else "C0")
            ax.set_title(k, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        fig.supxlabel("step", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
