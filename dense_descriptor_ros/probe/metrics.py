"""Segmentation scores from a confusion matrix: IoU per class, mean IoU over the classes that occur."""

from __future__ import annotations

import numpy as np


def confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = ground truth, columns = prediction.

    Shape: pred, gt: equal shapes of integer class ids in [0, num_classes)."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    g, p = gt.astype(np.int64).ravel(), pred.astype(np.int64).ravel()
    if g.size and (min(g.min(), p.min()) < 0 or max(g.max(), p.max()) >= num_classes):
        raise ValueError(f"class ids must lie in [0, {num_classes})")
    return np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """(C,) IoU = TP / (TP + FP + FN); NaN for a class that neither occurs nor is predicted."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """Mean IoU over the classes present in the ground truth (a class predicted but absent counts in the
    others' false positives only, so a head cannot gain by inventing classes)."""
    present = conf.sum(1) > 0
    return float(np.nanmean(iou_per_class(conf)[present])) if present.any() else float("nan")


def merge_classes(conf: np.ndarray, groups: list[int]) -> np.ndarray:
    """Confusion over coarser classes: `groups[c]` is the coarse id of fine class c (e.g. its category)."""
    g = np.asarray(groups, dtype=np.int64)
    if g.shape != (conf.shape[0],):
        raise ValueError(f"{g.shape[0]} groups for {conf.shape[0]} classes")
    k = int(g.max()) + 1
    out = np.zeros((k, k), dtype=conf.dtype)
    np.add.at(out, (g[:, None], g[None, :]), conf)
    return out


__all__ = ["confusion", "iou_per_class", "mean_iou", "merge_classes"]
