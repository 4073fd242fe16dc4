from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dense_descriptor_ros.correspondence import AugmentConfig, TwoViewAugmenter, apply_homography, pixel_grid

GEOMETRY_ONLY = AugmentConfig(jitter_p=0.0, blur_p=0.0)


def coordinate_image(h: int, w: int) -> torch.Tensor:
    """(1, 3, h, w) image whose R, G channels encode each pixel's own x / w and y / h (linear, so
    bilinear warping reproduces source coordinates exactly)."""
    g = pixel_grid(h, w)
    return torch.stack([g[..., 0] / w, g[..., 1] / h, torch.zeros(h, w)])[None]


def sample(img: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """img (C, H, W) at uv (..., 2) pixel coordinates, bilinear -> (..., C)."""
    h, w = img.shape[-2:]
    grid = torch.stack([2 * uv[..., 0] / (w - 1) - 1, 2 * uv[..., 1] / (h - 1) - 1], -1)
    return F.grid_sample(img[None], grid.reshape(1, -1, 1, 2), align_corners=True)[0, :, :, 0].T.reshape(
        *uv.shape[:-1], img.shape[0])


def eroded(mask: torch.Tensor, r: int = 1) -> torch.Tensor:
    return -F.max_pool2d(-mask.float()[None, None], 2 * r + 1, 1, r)[0, 0] > 0


@pytest.mark.parametrize("seed", range(6))
def test_map_is_subpixel_exact(seed):
    h0, w0 = 150, 200
    img = coordinate_image(h0, w0)
    aug = TwoViewAugmenter((96, 128), GEOMETRY_ONLY)
    v = aug(img, seed)
    src_a = torch.stack([v.image_a[0] * w0, v.image_a[1] * h0], -1)
    src_b = torch.stack([v.image_b[0] * w0, v.image_b[1] * h0], -1)
    # compare where B's bilinear neighbourhood is content too (the sampling in this test reads 2x2 pixels)
    inner_b = eroded(v.valid_b | ~v.valid_b.any(), 1)
    ok = v.valid_a & (sample(inner_b.float()[None], v.map_ab)[..., 0] > 0.999)
    assert ok.sum() > 500
    err = (sample(src_b.permute(2, 0, 1), v.map_ab) - src_a)[ok].norm(dim=-1)
    assert err.median() < 1e-3 and torch.quantile(err, 0.99) < 0.01
    # and the matrices alone say where each A pixel came from
    pred = apply_homography(torch.linalg.inv(v.matrix_a.double()), pixel_grid(96, 128, dtype=torch.float64))
    assert (pred.float() - src_a)[eroded(v.valid_a, 1)].norm(dim=-1).max() < 0.01


def test_checkerboard_corners_follow_the_map():
    """Corners found by OpenCV in both views agree with the predicted mapping to sub-pixel accuracy."""
    sq, n = 20, 8
    board = np.kron((np.indices((n, n)).sum(0) % 2), np.ones((sq, sq))).astype(np.float32)
    board = np.pad(board, 30, constant_values=1.0)
    img = torch.from_numpy(board)[None, None].repeat(1, 3, 1, 1)
    cfg = AugmentConfig(crop_scale=(0.9, 1.0), degrees=10, perspective=0.1, shear=5, hflip_p=0.0, jitter_p=0.0,
                        blur_p=0.0)
    aug = TwoViewAugmenter((board.shape[0], board.shape[1]), cfg)
    pattern = (n - 1, n - 1)
    for seed in range(10):
        v = aug(img, seed)
        corners = []
        for im in (v.image_a, v.image_b):
            g = (im[0].numpy() * 255).astype(np.uint8)
            found, c = cv2.findChessboardCornersSB(g, pattern, flags=cv2.CALIB_CB_ACCURACY)
            corners.append(c.reshape(-1, 2) if found else None)
        if corners[0] is None or corners[1] is None:
            continue
        pred_b = apply_homography(v.matrix_b.double() @ torch.linalg.inv(v.matrix_a.double()),
                                  torch.from_numpy(corners[0]).double())
        d = torch.cdist(pred_b.float(), torch.from_numpy(corners[1]))
        assert d.min(1).values.median() < 0.3
        return
    pytest.fail("no seed gave a detectable checkerboard in both views")


def test_points_leaving_the_frame_are_invalid():
    aug = TwoViewAugmenter((64, 64), AugmentConfig(crop_scale=(0.3, 0.35), jitter_p=0, blur_p=0))
    v = aug(coordinate_image(128, 128), 3)
    inside = (v.map_ab[..., 0] >= -0.5) & (v.map_ab[..., 0] <= 63.5) & (v.map_ab[..., 1] >= -0.5) & (
        v.map_ab[..., 1] <= 63.5)
    assert not (v.valid_a & ~inside).any()
    assert (~v.valid_a).any()  # small crops of a big image do not fully overlap


def test_reproducible_from_seed():
    img = torch.rand(1, 3, 80, 100)
    aug = TwoViewAugmenter((48, 64))
    a, b, c = aug(img, 7), aug(img, 7), aug(img, 8)
    assert torch.equal(a.image_a, b.image_a) and torch.equal(a.map_ab, b.map_ab)
    assert not torch.equal(a.image_a, c.image_a)


def test_illumination_changes_light_not_geometry():
    """The lighting changes (gamma, white balance, shading gradient, noise) alter the colours of a view, not where
    its pixels come from: same seed, same matrices and coverage, and a photo's pixels move by a visible amount."""
    rng = np.random.default_rng(0)
    img = torch.from_numpy(cv2.GaussianBlur(rng.random((120, 160, 3)).astype(np.float32), (0, 0), 3))
    img = img.permute(2, 0, 1)[None]
    plain = TwoViewAugmenter((96, 128), GEOMETRY_ONLY)
    lit = TwoViewAugmenter((96, 128), AugmentConfig(jitter_p=0.0, blur_p=0.0, illumination_p=1.0))
    changed = 0
    for seed in range(4):
        a, b = plain(img, seed), lit(img, seed)
        assert torch.equal(a.matrix_a, b.matrix_a) and torch.equal(a.matrix_b, b.matrix_b)
        assert torch.equal(a.valid_a, b.valid_a) and torch.equal(a.map_ab, b.map_ab)
        changed += int((a.image_a - b.image_a)[:, a.valid_a].abs().mean() > 0.02)
        assert torch.equal(b.image_a, lit(img, seed).image_a)  # reproducible from the seed
    assert changed == 4


@pytest.mark.parametrize("bad", [dict(illumination_p=1.5), dict(gamma=(0.0, 1.0)), dict(shading_gain=(0.3, 0.1)),
                                 dict(noise_std=-0.1), dict(blur_p=-0.2)])
def test_bad_augment_settings_are_refused(bad):
    with pytest.raises(ValueError, match="augment"):
        AugmentConfig(**bad)
