"""Linear probes on frozen descriptors (issue #15): fitting and scoring a part-segmentation head on synthetic
data, and the metrics. The head itself (`PartProbe`) lives in runtime/part_probe.py, NumPy only, because the
node and `bag process` apply it; fitting needs torch and the evaluation's methods."""

from ..runtime.part_probe import BACKGROUND, PartProbe, ProbeFileError
from .metrics import confusion, iou_per_class, mean_iou, merge_classes

__all__ = ["BACKGROUND", "PartProbe", "ProbeFileError", "confusion", "iou_per_class", "mean_iou", "merge_classes"]
