"""Evaluation pair lists and their ground truth, on a tiny generated dataset."""

from __future__ import annotations

import pytest
import torch

from dense_descriptor_ros.eval import metrics as M
from dense_descriptor_ros.eval.pairs import CANONICAL_TOL, PairError, PairList, PairLoader, make_pair_list
from dense_descriptor_ros.geometry.camera import backproject_depth, transform_points


@pytest.fixture(scope="module")
def plist(sim_root, photo_dir) -> PairList:
    return make_pair_list(sim_root, photo_dir, n_per_set=3, points=60, seed=5, split="all", size=(96, 128))


def world_map(view) -> torch.Tensor:
    """(3, H, W) world coordinates of every pixel: an oracle descriptor for cross-view pairs."""
    p = transform_points(view.T_world_camera, backproject_depth(view.depth.double(), view.K))
    return p.permute(2, 0, 1).float()


def test_lists_are_fixed_by_their_seed(sim_root, photo_dir, plist, tmp_path):
    again = make_pair_list(sim_root, photo_dir, n_per_set=3, points=60, seed=5, split="all", size=(96, 128))
    assert again == plist
    assert {s: len(v) for s, v in plist.by_set().items()} == {"cross_view": 3, "cross_instance": 3,
                                                              "keypoints": 3, "augment": 3, "real_photo": 3,
                                                              "real_stereo": 3}
    assert all(p.image != "corrupt.jpg" for p in plist.pairs)  # unreadable images are left out
    other = make_pair_list(sim_root, photo_dir, n_per_set=3, points=60, seed=6, split="all", size=(96, 128))
    assert [p.seed for p in other.pairs] != [p.seed for p in plist.pairs]
    plist.save(tmp_path / "pairs.json")
    assert PairList.load(tmp_path / "pairs.json") == plist
    loader = PairLoader(plist)
    a, b = loader(plist.pairs[0]), PairLoader(PairList.load(tmp_path / "pairs.json"))(plist.pairs[0])
    assert torch.equal(a.uv_a, b.uv_a) and torch.equal(a.uv_b, b.uv_b)


def test_cross_view_ground_truth(plist):
    from dense_descriptor_ros.data.synthetic import SyntheticDataset

    loader = PairLoader(plist)
    ds = SyntheticDataset(plist.synthetic)
    for spec in plist.by_set()["cross_view"]:
        pair = loader(spec)
        assert spec.scene_a == spec.scene_b and spec.view_a != spec.view_b
        obj = pair.object_sample
        assert 0 < obj.sum() <= 60 and 0 < (~obj).sum() <= 60
        ia = pair.uv_a.long()
        assert (pair.instance_a[ia[obj, 1], ia[obj, 0]] > 0).all()
        # the true B pixel lies on the same 3D point (within the 1 mm occlusion test + pixel rounding)
        p, ok = M.lift_pixels(pair.uv_b, pair.depth_b, pair.K_b)
        assert ok.float().mean() > 0.95
        assert (p[ok] - pair.points_b[ok]).norm(dim=-1).median() < 3e-3
        # an oracle descriptor (world coordinates) matches nearly every object point within a pixel
        va, vb = ds.view(spec.scene_a, spec.view_a), ds.view(spec.scene_b, spec.view_b)
        bm = M.best_match(world_map(va), world_map(vb), pair.uv_a[obj], pair.uv_b[obj])
        assert M.pck(M.pixel_errors(bm.uv, pair.uv_b[obj]), (1,))["pck@1"] > 0.9


def test_cross_instance_ground_truth(plist):
    from dense_descriptor_ros.data.synthetic import SyntheticDataset

    loader = PairLoader(plist)
    ds = SyntheticDataset(plist.synthetic)
    for spec in plist.by_set()["cross_instance"]:
        pair = loader(spec)
        va, vb = ds.view(spec.scene_a, spec.view_a), ds.view(spec.scene_b, spec.view_b)
        oa = next(o for o in va.objects if o["instance_id"] == spec.instance_a)
        ob = next(o for o in vb.objects if o["instance_id"] == spec.instance_b)
        assert oa["category"] == ob["category"] and oa["key"] != ob["key"]
        assert len(pair.uv_a) > 0 and pair.object_sample.all()
        ia, ib = pair.uv_a.long(), pair.uv_b.long()
        assert pair.search_mask_b[ib[:, 1], ib[:, 0]].all()
        ca, cb = va.coords[ia[:, 1], ia[:, 0]], vb.coords[ib[:, 1], ib[:, 0]]
        assert ((ca - cb).norm(dim=-1) <= CANONICAL_TOL + 1e-6).all()


def test_keypoint_pairs(plist):
    loader = PairLoader(plist)
    for spec in plist.by_set()["keypoints"]:
        pair = loader(spec)
        assert len(pair.names) == len(pair.uv_a) >= 2
        assert all("/" in n for n in pair.names)
        assert (pair.points_b[:, 2] > 0).all() and pair.search_mask_b.any()
        h, w = pair.size
        assert ((pair.uv_b >= -0.5) & (pair.uv_b <= torch.tensor([w - 0.5, h - 0.5]))).all()


def test_augment_pairs(plist):
    loader = PairLoader(plist)
    pair = loader(plist.by_set()["augment"][0])
    assert pair.image_a.shape == (3, 96, 128) and len(pair.uv_a) == 60 and not pair.object_sample.any()
    assert pair.depth_b is None and pair.points_b is None


def test_user_errors(sim_root, tmp_path):
    with pytest.raises(PairError, match="no complete scenes"):
        make_pair_list(sim_root, None, split="test")
    with pytest.raises(PairError, match="not an evaluation pair list"):
        (tmp_path / "x.json").write_text("{}")
        PairList.load(tmp_path / "x.json")
    with pytest.raises(PairError, match="unknown evaluation sets"):
        make_pair_list(sim_root, None, sets=("cross_views",))
