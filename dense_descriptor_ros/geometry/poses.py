"""Rigid poses in the forms ROS messages carry them (NumPy only)."""

from __future__ import annotations

import math

import numpy as np


def pose_to_position_quaternion(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) rigid transform -> position (3,) and unit quaternion (4,) in ROS order (x, y, z, w), w >= 0.

    Shepperd's method: the largest of the four squared components decides the branch (stable everywhere).
    """
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"T: expected (4, 4), got {T.shape}")
    R = T[:3, :3]
    tr = np.trace(R)
    diag = np.diag(R)
    k = int(np.argmax([*diag, tr]))
    if k == 3:
        w = math.sqrt(max(1.0 + tr, 0.0)) / 2
        q = np.array([(R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w), w])
    else:
        i, j, m = k, (k + 1) % 3, (k + 2) % 3
        s = math.sqrt(max(1.0 + R[i, i] - R[j, j] - R[m, m], 0.0)) * 2
        q = np.empty(4)
        q[i] = s / 4
        q[j] = (R[j, i] + R[i, j]) / s
        q[m] = (R[m, i] + R[i, m]) / s
        q[3] = (R[m, j] - R[j, m]) / s
    q /= np.linalg.norm(q)
    return T[:3, 3].copy(), (q if q[3] >= 0 else -q)


__all__ = ["pose_to_position_quaternion"]
