"""Cross-instance training pairs (issue #15) on the tiny generated dataset (its first scene holds two mugs)."""

from __future__ import annotations

import pytest
import torch

from dense_descriptor_ros.data.cross_instance import CrossInstancePairDataset
from dense_descriptor_ros.train.config import DataConfig
from dense_descriptor_ros.train.datasets import MixedPairs, build_train_dataset
from test.sim.simdata import tiny_dataset


@pytest.fixture(scope="module", autouse=True)
def _one_thread(torch_one_thread):
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tiny_dataset(tmp_path_factory)


def _at(t: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """t (H, W, ...) at integer pixels uv (N, 2) (x, y)."""
    return t[uv[:, 1].round().long(), uv[:, 0].round().long()]


def test_matches_are_two_instances_of_one_category_at_the_same_canonical_point(root):
    ds = CrossInstancePairDataset(root, n_matches=64, nonmatches_per_match=2, max_distance=0.1)
    for seed in range(4):
        d = ds.draw((0, seed))
        oa, ob = d.view_a.objects[d.instance_a - 1], d.view_b.objects[d.instance_b - 1]
        assert oa["category"] == ob["category"] == "mug" and oa["key"] != ob["key"]
        p = d.item.pairs
        v = p.match_valid[0]
        assert int(v.sum()) == 64  # the tiny scene's mugs give far more than 64 valid candidates
        ua, ub = p.matches_a[0][v], p.matches_b[0][v]
        assert (_at(d.view_a.instance, ua).long() == d.instance_a).all()
        assert (_at(d.view_b.instance, ub).long() == d.instance_b).all()
        dist = (_at(d.view_a.coords, ua) - _at(d.view_b.coords, ub)).norm(dim=-1)
        assert float(dist.max()) <= 0.1
        # the handle (the cue that fixes a mug's canonical yaw) is visible on both objects
        for view, inst in ((d.view_a, d.instance_a), (d.view_b, d.instance_b)):
            mask = view.instance.long() == inst
            assert (view.part[mask].long() == ds.cue_part["mug"]).any()
        # the images are the views' images; non-matches (layout r * N + i) keep their distance from the match
        assert torch.equal(d.item.image_a, d.view_a.image()) and torch.equal(d.item.image_b, d.view_b.image())
        nv = p.nonmatch_valid[0]
        assert nv.any()
        far = (p.nonmatch_b[0][nv] - p.matches_b[0].repeat(2, 1)[nv]).norm(dim=-1)
        assert float(far.min()) >= 8.0


def test_a_tighter_radius_keeps_only_closer_matches(root):
    loose = CrossInstancePairDataset(root, n_matches=64, max_distance=0.1).draw((0, 3))
    tight = CrossInstancePairDataset(root, n_matches=64, max_distance=0.02).draw((0, 3))
    for d, r in ((loose, 0.1), (tight, 0.02)):
        v = d.item.pairs.match_valid[0]
        dist = (_at(d.view_a.coords, d.item.pairs.matches_a[0][v])
                - _at(d.view_b.coords, d.item.pairs.matches_b[0][v])).norm(dim=-1)
        assert float(dist.max()) <= r
    # the loose radius accepts matches the tight one refuses: the ground truth depends on it
    v = loose.item.pairs.match_valid[0]
    dist = (_at(loose.view_a.coords, loose.item.pairs.matches_a[0][v])
            - _at(loose.view_b.coords, loose.item.pairs.matches_b[0][v])).norm(dim=-1)
    assert float(dist.max()) > 0.02


def test_items_are_a_pure_function_of_their_key(root):
    ds = CrossInstancePairDataset(root, n_matches=32)
    a, b, c = ds[(0, 11)], ds[(0, 11)], ds[(0, 12)]
    assert torch.equal(a.image_a, b.image_a) and torch.equal(a.pairs.matches_b, b.pairs.matches_b)
    assert not torch.equal(a.pairs.matches_a, c.pairs.matches_a)


def test_symmetric_unknown_and_unpairable_categories_are_refused(root):
    with pytest.raises(ValueError, match="no visible cue.*symmetric"):
        CrossInstancePairDataset(root, categories=("bowl",))
    with pytest.raises(ValueError, match="unknown category 'teapot'"):
        CrossInstancePairDataset(root, categories=("teapot",))
    with pytest.raises(ValueError, match="stored image size"):
        CrossInstancePairDataset(root, image_size=(120, 160))
    with pytest.raises(ValueError, match="no complete scenes"):
        CrossInstancePairDataset(root, split="test")


def test_nested_mixtures_draw_independent_coins():
    class Const:
        def __init__(self, name):
            self.name = name

        def __len__(self):
            return 10

        def __getitem__(self, key):
            return self.name

    inner = MixedPairs(Const("same"), Const("cross"), 0.5, salt=0xC805)
    outer = MixedPairs(Const("photo"), inner, 0.25)
    draws = [outer[(i, 1000 + i)] for i in range(4000)]
    share = {k: draws.count(k) / len(draws) for k in ("photo", "same", "cross")}
    assert abs(share["photo"] - 0.75) < 0.03 and abs(share["same"] - 0.125) < 0.02
    assert abs(share["cross"] - 0.125) < 0.02  # with one salt for both, every synthetic draw was "cross"


def test_the_training_config_mixes_cross_instance_pairs(root):
    cfg = DataConfig(kind="synthetic", synthetic_dir=str(root), cross_instance_fraction=0.5, n_matches=16)
    ds = build_train_dataset(cfg)
    assert isinstance(ds, MixedPairs) and isinstance(ds.b, CrossInstancePairDataset) and ds.p_b == 0.5
    assert ds[(0, 5)].pairs.matches_a.shape == (1, 16, 2)
    assert not isinstance(build_train_dataset(DataConfig(kind="synthetic", synthetic_dir=str(root))), MixedPairs)
    with pytest.raises(ValueError, match="cross_instance_fraction must be in"):
        DataConfig(cross_instance_fraction=1.5)
    with pytest.raises(ValueError, match="needs at least one"):
        DataConfig(cross_instance_fraction=0.2, cross_instance_categories=())


def test_part_labels_travel_with_the_pairs(root):
    """With part labels on, synthetic items carry each view's part ids; photos in a batch get UNLABELLED."""
    from dense_descriptor_ros.data.base import UNLABELLED, PairItem, collate_pairs
    from dense_descriptor_ros.data.synthetic import SyntheticPairDataset

    d = CrossInstancePairDataset(root, n_matches=16, part_labels=True).draw((0, 1))
    assert torch.equal(d.item.labels_a, d.view_a.part.long()) and torch.equal(d.item.labels_b, d.view_b.part.long())
    same = SyntheticPairDataset(root, n_matches=16, part_labels=True)[(0, 2)]
    assert same.labels_a.shape == same.image_a.shape[1:] and int(same.labels_a.max()) > 0
    assert SyntheticPairDataset(root, n_matches=16)[(0, 2)].labels_a is None
    photo = PairItem(same.image_a, same.image_b, same.pairs)
    batch = collate_pairs([same, photo])
    assert batch.labels_a.shape == (2, *same.image_a.shape[1:]) and torch.equal(batch.labels_a[0], same.labels_a)
    assert (batch.labels_a[1] == UNLABELLED).all() and collate_pairs([photo]).labels_a is None



def test_canonical_targets_by_hand():
    """All of (x, y, z, r) on a mug, z and r on a bowl, nothing on a box or where there is no coordinate."""
    from dense_descriptor_ros.data.canonical import canonical_targets

    coords = torch.tensor([[[0.3, 0.4, 0.5], [0.6, 0.8, 0.1], [0.1, 0.2, 0.3], [float("nan")] * 3]])  # (1, 4, 3)
    category = torch.tensor([[1, 2, 5, 1]], dtype=torch.uint8)
    t = canonical_targets(coords, category, {1: "mug", 2: "bowl", 5: "box"})
    assert t.shape == (4, 1, 4)
    torch.testing.assert_close(t[:, 0, 0], torch.tensor([0.3, 0.4, 0.5, 0.5]))
    assert torch.isnan(t[:2, 0, 1]).all()
    torch.testing.assert_close(t[2:, 0, 1], torch.tensor([0.1, 1.0]))
    assert torch.isnan(t[:, 0, 2]).all() and torch.isnan(t[:, 0, 3]).all()


def test_canonical_targets_travel_with_the_pairs(root):
    """With canonical targets on, synthetic items carry them (computed from the view's own coordinates and
    categories); photos in a batch get NaN."""
    from dense_descriptor_ros.data.base import PairItem, collate_pairs
    from dense_descriptor_ros.data.canonical import canonical_targets
    from dense_descriptor_ros.data.synthetic import SyntheticPairDataset

    ds = CrossInstancePairDataset(root, n_matches=16, canonical=True)
    d = ds.draw((0, 1))
    t = d.item.coords_a
    assert t.shape == (4, *d.item.image_a.shape[1:])
    torch.testing.assert_close(t, canonical_targets(d.view_a.coords, d.view_a.category, ds.data.category_names),
                               equal_nan=True)
    on = (d.view_a.instance.long() == d.instance_a) & d.view_a.coords_valid  # the mug of the pair
    assert bool(on.any()) and torch.isfinite(t[:, on]).all()
    assert torch.isnan(t[:, d.view_a.category == 0]).all()
    same = SyntheticPairDataset(root, n_matches=16, canonical=True)[(0, 2)]
    assert same.coords_a.shape == (4, *same.image_a.shape[1:]) and torch.isfinite(same.coords_a).any()
    assert SyntheticPairDataset(root, n_matches=16)[(0, 2)].coords_a is None
    photo = PairItem(same.image_a, same.image_b, same.pairs)
    batch = collate_pairs([same, photo])
    assert batch.coords_a.shape == (2, 4, *same.image_a.shape[1:]) and torch.isnan(batch.coords_a[1]).all()
    assert collate_pairs([photo]).coords_a is None
