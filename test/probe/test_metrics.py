"""Segmentation scores against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dense_descriptor_ros.probe import confusion, iou_per_class, mean_iou, merge_classes


def test_confusion_counts_rows_truth_columns_prediction():
    gt = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = confusion(pred, gt, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_iou_by_hand():
    conf = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    # class 0: TP 1, FP 1 (row 2), FN 1 -> 1/3; class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: TP 1, FN 1 -> 1/2
    assert iou_per_class(conf) == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert mean_iou(conf) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_mean_iou_skips_classes_absent_from_the_truth():
    # class 2 never occurs in the truth; predicting it once costs class 0 a false negative but class 2 is not
    # averaged (a head gains nothing by inventing classes, and loses nothing for a class the data lacks)
    conf = np.array([[3, 0, 1], [0, 4, 0], [0, 0, 0]])
    assert mean_iou(conf) == pytest.approx((3 / 4 + 1.0) / 2)
    assert iou_per_class(np.zeros((2, 2), dtype=np.int64)).tolist() == [pytest.approx(math.nan, nan_ok=True)] * 2


def test_merge_classes_sums_blocks():
    conf = np.arange(16).reshape(4, 4)
    merged = merge_classes(conf, [0, 1, 1, 0])
    assert merged.tolist() == [[0 + 3 + 12 + 15, 1 + 2 + 13 + 14], [4 + 7 + 8 + 11, 5 + 6 + 9 + 10]]
    assert merged.sum() == conf.sum()


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="shape"):
        confusion(np.zeros((2, 2), int), np.zeros((2, 3), int), 2)
    with pytest.raises(ValueError, match="class ids"):
        confusion(np.full((2, 2), 2), np.zeros((2, 2), int), 2)
    with pytest.raises(ValueError, match="groups"):
        merge_classes(np.zeros((3, 3)), [0, 1])
