"""The classical sparse baseline: SIFT keypoints, RootSIFT descriptors, mutual nearest neighbours and
Lowe's ratio test.

This is the "SIFT + NN + ratio" row of the SuperGlue and LoFTR pose tables: a learned dense matcher is
worth its cost only where it beats it. RootSIFT (Arandjelovic & Zisserman 2012) L1-normalises each SIFT
descriptor and takes the square root, so that Euclidean distance between descriptors is the Hellinger
kernel on the histograms; it matches noticeably better than raw SIFT at no cost. Matching is
`matching.dense.match_descriptors` (the same NN, ratio test and mutual check the dense matcher uses on
detected keypoints).

Pixels are (x, y) with pixel centres at integers: OpenCV's `KeyPoint.pt` already follows it.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..matching.dense import match_descriptors

#: Keypoints kept per image (the strongest by detector response), as in the SuperGlue baseline.
MAX_KEYPOINTS = 2000
#: Lowe's ratio test threshold (best / second-best descriptor distance).
MAX_RATIO = 0.8


def _gray(image: np.ndarray, name: str) -> np.ndarray:
    """RGB (H, W, 3) or grey (H, W) uint8 -> grey (H, W) uint8; ValueError otherwise."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{name}: expected uint8 (H, W, 3) RGB or (H, W), got {image.dtype} {image.shape}")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def root_sift(desc: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """SIFT descriptors -> RootSIFT: L1-normalise, then square root, so each row has unit L2 norm.

    Shape:
        desc: (N, D) non-negative -> (N, D) float32.
    """
    desc = np.asarray(desc, np.float32)
    if desc.ndim != 2:
        raise ValueError(f"desc: expected shape (N, D), got {desc.shape}")
    if (desc < 0).any():
        raise ValueError("desc: SIFT histograms are non-negative")
    return np.sqrt(desc / np.maximum(desc.sum(1, keepdims=True), eps))


def detect_and_describe(image: np.ndarray, max_keypoints: int = MAX_KEYPOINTS) -> tuple[np.ndarray, np.ndarray]:
    """SIFT keypoints of an image with their RootSIFT descriptors, strongest first.

    Shape:
        image: (H, W, 3) RGB (or (H, W) grey) uint8.
        Returns uv (N, 2) float64 pixel (x, y) and desc (N, 128) float32 with N <= max_keypoints
        (N = 0 on an image without texture).
    """
    gray = _gray(image, "image")
    if max_keypoints < 1:
        raise ValueError(f"max_keypoints must be >= 1, got {max_keypoints}")
    kps, desc = cv2.SIFT_create(nfeatures=max_keypoints).detectAndCompute(gray, None)
    if desc is None or len(kps) == 0:
        return np.zeros((0, 2)), np.zeros((0, 128), np.float32)
    # SIFT keeps every keypoint tied with the n-th response, so it may return a few more than asked
    order = np.argsort([-k.response for k in kps], kind="stable")[:max_keypoints]
    uv = np.array([kps[i].pt for i in order], np.float64).reshape(-1, 2)
    return uv, root_sift(desc[order])


def match_rootsift(image_a: np.ndarray, image_b: np.ndarray, max_ratio: float = MAX_RATIO, mutual: bool = True,
                   max_keypoints: int = MAX_KEYPOINTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matches between two images: RootSIFT nearest neighbours, Lowe's ratio test, mutual check.

    Shape:
        image_a: (Ha, Wa, 3), image_b: (Hb, Wb, 3) RGB uint8 (or grey (H, W)).
        Returns uv_a (M, 2), uv_b (M, 2) float64 pixel (x, y) and ratio (M,) float32 (best / second-best
        distance), most distinctive (lowest ratio) first.
    """
    uv_a, desc_a = detect_and_describe(image_a, max_keypoints)
    uv_b, desc_b = detect_and_describe(image_b, max_keypoints)
    ia, ib, _, ratio = match_descriptors(desc_a, desc_b, max_ratio=max_ratio, mutual=mutual)
    return uv_a[ia], uv_b[ib], ratio.astype(np.float32, copy=False)


__all__ = ["MAX_KEYPOINTS", "MAX_RATIO", "detect_and_describe", "match_rootsift", "root_sift"]
