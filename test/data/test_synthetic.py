"""The synthetic dataset loader and the Dense Object Nets-style pair dataset, on a tiny generated dataset."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from dense_descriptor_ros.data.base import PairItem, collate_pairs
from dense_descriptor_ros.data.synthetic import SyntheticDataset, SyntheticPairDataset
from dense_descriptor_ros.geometry.camera import view_angle_deg
from dense_descriptor_ros.geometry.reprojection import interpolate_depth, reproject, reproject_points
from test.sim.simdata import tiny_dataset


@pytest.fixture(scope="module", autouse=True)
def _one_thread(torch_one_thread):
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tiny_dataset(tmp_path_factory)


def test_loader_views_and_splits(root):
    data = SyntheticDataset(root)
    assert data.scenes == ["scene_000000", "scene_000001"] and len(data) == 2
    assert len(SyntheticDataset(root, "train")) == 2 and len(SyntheticDataset(root, "test")) == 0
    assert not set(data.instances("train")) & set(data.instances("test"))
    v = data.view("scene_000001", 2)
    assert v.rgb.shape == (240, 320, 3) and v.rgb.dtype == torch.uint8
    assert v.depth.shape == (240, 320) and v.depth.dtype == torch.float32
    assert v.coords.shape == (240, 320, 3) and v.coords_valid.dtype == torch.bool
    assert torch.equal(v.coords_valid, (v.category > 0) & (v.category < 6))
    assert v.K.shape == (3, 3) and v.T_world_camera.shape == (4, 4)
    assert v.image().shape == (3, 240, 320) and float(v.image().max()) <= 1.0
    assert {o["instance_id"] for o in v.objects} == set(range(1, len(v.objects) + 1))
    assert all(k["instance_id"] <= len(v.objects) for k in v.keypoints)
    with pytest.raises(ValueError, match="unknown split"):
        SyntheticDataset(root, "holdout")


def test_loader_rejects_other_folders_and_versions(root, tmp_path):
    with pytest.raises(FileNotFoundError):
        SyntheticDataset(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    meta = json.loads((copy / "dataset.json").read_text())
    meta["format_version"] = "2.0"
    (copy / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format version"):
        SyntheticDataset(copy)
    # an incomplete scene (no scene.json) is not listed
    meta["format_version"] = "1.0"
    (copy / "dataset.json").write_text(json.dumps(meta))
    (copy / "scenes" / "scene_000001" / "scene.json").unlink()
    assert SyntheticDataset(copy).scenes == ["scene_000000"]


def test_pair_items_are_exact_and_pure_functions_of_the_key(root):
    ds = SyntheticPairDataset(root, n_matches=256, nonmatches_per_match=2, min_view_angle_deg=15)
    assert len(ds) == 2
    item = ds[(1, 7)]
    assert isinstance(item, PairItem) and item.image_a.shape == (3, 240, 320)
    assert item.pairs.matches_a.shape == (1, 256, 2) and item.pairs.nonmatch_a.shape == (1, 512, 2)
    again = ds[(1, 7)]
    assert torch.equal(item.image_a, again.image_a) and torch.equal(item.pairs.matches_b, again.pairs.matches_b)
    other = ds[(1, 8)]
    assert not torch.equal(item.pairs.matches_a, other.pairs.matches_a)
    # the views the key picks, and the matches are the depth reprojection between them
    g = torch.Generator().manual_seed(7)
    scene = ds.data.scenes[1]
    ia, ib = ds.pick_views(scene, g)
    assert ia != ib
    va, vb = ds.data.view(scene, ia), ds.data.view(scene, ib)
    assert view_angle_deg(va.T_world_camera, vb.T_world_camera) >= 15
    assert torch.equal(item.image_a, va.image())
    uv, valid = reproject(va.depth, va.K, va.T_world_camera, vb.depth, vb.K, vb.T_world_camera)
    p = item.pairs
    ok = p.match_valid[0]
    assert ok.float().mean() > 0.9
    xa, ya = p.matches_a[0, ok, 0].long(), p.matches_a[0, ok, 1].long()
    assert valid[ya, xa].all() and (va.instance[ya, xa] > 0).all()  # mask-guided: matches on objects
    torch.testing.assert_close(p.matches_b[0, ok], uv[ya, xa])
    # background non-matches lie off the objects of B, the others on them
    nb = p.nonmatch_b[0].long()
    on_object = vb.instance[nb[:, 1], nb[:, 0]] > 0
    assert torch.equal(on_object, ~p.nonmatch_background[0])
    batch = collate_pairs([item, other])
    assert batch.image_a.shape == (2, 3, 240, 320) and batch.pairs.matches_a.shape == (2, 256, 2)


def test_resized_pairs_keep_exact_correspondences(root):
    ds = SyntheticPairDataset(root, n_matches=300, nonmatches_per_match=1, image_size=(120, 160))
    item = ds[(0, 3)]
    assert item.image_a.shape == (3, 120, 160) and item.image_b.shape == (3, 120, 160)
    ia, ib = ds.pick_views(ds.data.scenes[0], torch.Generator().manual_seed(3))
    va, vb = ds.data.view(ds.data.scenes[0], ia), ds.data.view(ds.data.scenes[0], ib)
    ok = item.pairs.match_valid[0]
    assert ok.sum() > 200
    # back to native pixels: x = (x' + 0.5) * 2 - 0.5; the native reprojection must land on the match
    a_native = (item.pairs.matches_a[0, ok].double() + 0.5) * 2 - 0.5
    b_native = (item.pairs.matches_b[0, ok].double() + 0.5) * 2 - 0.5
    z, zok = interpolate_depth(va.depth.double(), a_native)
    uv, valid = reproject_points(a_native, torch.where(zok, z, torch.zeros_like(z)), va.K, va.T_world_camera,
                                 vb.depth, vb.K, vb.T_world_camera)
    assert valid.all()
    assert (uv - b_native).norm(dim=-1).max() < 1e-3


def test_pair_dataset_errors(root):
    with pytest.raises(ValueError, match="no complete scenes"):
        SyntheticPairDataset(root, split="test")
    with pytest.raises(ValueError):
        SyntheticPairDataset(root, min_view_angle_deg=50, max_view_angle_deg=10)
