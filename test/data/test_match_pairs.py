"""The matcher's pairs and their ground truth: synthetic views (depth + poses; checked against an independent
projection of the same 3D points) and photo augmentations (checked against the dense map of the augmenter)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dense_descriptor_ros.correspondence.augment import AugmentConfig
from dense_descriptor_ros.data.match_pairs import PhotoMatchPairs, SyntheticMatchPairs, cell_centres, collate_matches


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread):
    yield


def test_cell_centres_follow_the_pixel_convention():
    c = cell_centres((16, 24), 8)
    assert c.tolist() == [[3.5, 3.5], [11.5, 3.5], [19.5, 3.5], [3.5, 11.5], [11.5, 11.5], [19.5, 11.5]]
    assert cell_centres((20, 30), 8).shape == (2 * 3, 2)  # cells that do not fit whole are left out


def test_synthetic_ground_truth_is_the_projection_of_the_same_3d_point(tiny_sim):
    ds = SyntheticMatchPairs(tiny_sim, "train", (120, 160), 8, (0.0, 180.0))
    item = ds[(0, 5)]
    assert item.image_a.shape == (3, 120, 160) and item.target_b.shape == (15 * 20, 2)
    scene, ia, ib = ds.pair(0, 5)
    assert ia != ib
    ok = torch.isfinite(item.target_b).all(-1)
    assert 0.2 < ok.float().mean() < 1.0  # most centres seen in both views; some not
    # independent check at the native size (the tiny dataset renders at 160 x 120): lift with depth, move, project
    depth_a = ds.data.arrays(scene, ia, ("depth",))["depth"].double()
    (K_a, T_a), (K_b, T_b) = ds.data.camera(scene, ia), ds.data.camera(scene, ib)
    uv = ds.centres[ok]
    # depth at the centres (x.5: bilinear of four pixels of one surface, as the dataset requires)
    x0, y0 = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    z = 1.0 / ((1 / depth_a[y0, x0] + 1 / depth_a[y0, x0 + 1] + 1 / depth_a[y0 + 1, x0] + 1 / depth_a[y0 + 1, x0 + 1])
               / 4)
    ray = torch.linalg.solve(K_a, torch.cat([uv, torch.ones(len(uv), 1, dtype=torch.float64)], 1).T).T
    p_world = (T_a[:3, :3] @ (ray * z[:, None]).T).T + T_a[:3, 3]
    p_b = (torch.linalg.inv(T_b)[:3, :3] @ p_world.T).T + torch.linalg.inv(T_b)[:3, 3]
    proj = (K_b @ p_b.T).T
    proj = proj[:, :2] / proj[:, 2:]
    assert torch.allclose(item.target_b[ok].double(), proj, atol=0.05)


def test_identical_views_map_every_centre_with_depth_onto_itself(tiny_sim):
    ds = SyntheticMatchPairs(tiny_sim, "train", (120, 160), 8)
    scene = ds.data.scenes[0]
    t = ds.ground_truth(scene, 0, 0, ds.centres)
    ok = torch.isfinite(t).all(-1)
    assert ok.float().mean() > 0.5
    assert torch.allclose(t[ok].double(), ds.centres[ok], atol=1e-3)


def test_resized_views_keep_exact_ground_truth(tiny_sim):
    full = SyntheticMatchPairs(tiny_sim, "train", (120, 160), 8, (0.0, 180.0))
    half = SyntheticMatchPairs(tiny_sim, "train", (64, 80), 8, (0.0, 180.0))
    # a centre of the half-size image is the full-size point ((x + 0.5) * 2 - 0.5, (y + 0.5) * 15/8 - 0.5)
    scene, ia, ib = full.pair(1, 3)
    t_half = half.ground_truth(scene, ia, ib, half.centres)
    s = torch.tensor([160 / 80, 120 / 64], dtype=torch.float64)
    t_full = full.ground_truth(scene, ia, ib, (half.centres + 0.5) * s - 0.5)
    ok = torch.isfinite(t_half).all(-1) & torch.isfinite(t_full).all(-1)
    assert ok.sum() > 10
    assert torch.allclose((t_half[ok].double() + 0.5) * s - 0.5, t_full[ok].double(), atol=0.02)


def test_photo_ground_truth_agrees_with_the_augmenters_dense_map(image_dir):
    ds = PhotoMatchPairs(image_dir, (64, 96), 8, AugmentConfig(jitter_p=0.0, blur_p=0.0))
    item = ds[(0, 11)]
    views = ds.augmenter(torch.from_numpy(ds.photos.images[0]).permute(2, 0, 1).float().div(255.0)[None], 11)
    assert torch.equal(item.image_a, views.image_a)
    ok = torch.isfinite(item.target_b).all(-1)
    assert ok.sum() > 10
    # the dense map at the four pixels around each x.5 centre, averaged: the homography is smooth at that scale
    c = ds.centres[ok]
    x0, y0 = c[:, 0].floor().long(), c[:, 1].floor().long()
    m = views.map_ab.double()
    avg = (m[y0, x0] + m[y0, x0 + 1] + m[y0 + 1, x0] + m[y0 + 1, x0 + 1]) / 4
    assert torch.allclose(item.target_b[ok].double(), avg, atol=0.05)
    batch = collate_matches([item, ds[(1, 2)]])
    assert batch.image_a.shape == (2, 3, 64, 96) and batch.target_b.shape == (2, 8 * 12, 2)
    assert np.isnan(batch.target_b.numpy()).any() or ok.all()
