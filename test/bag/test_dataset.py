"""Training from bags: multi-view pairs from depth + camera poses (PoseStamped or TF) checked against the
sample's ground truth, augmentation pairs without poses, and a few real loss steps on the sample bag."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest
import torch

from dense_descriptor_ros.bag.dataset import BagPairDataset, load_bag_frames
from dense_descriptor_ros.bag.io import BagError, BagReader, BagWriter
from dense_descriptor_ros.bag.poses import TfTree, quaternion_to_matrix
from dense_descriptor_ros.bag.sample import GROUND_TRUTH_FILE
from dense_descriptor_ros.geometry.poses import pose_to_position_quaternion
from dense_descriptor_ros.geometry.reprojection import reproject
from dense_descriptor_ros.train.config import DataConfig

from .conftest import FRAMES, copy_bag


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    yield


@pytest.fixture(scope="module")
def sample_frames(sample_bag):
    return load_bag_frames(sample_bag)


def test_frames_and_poses_equal_the_ground_truth(sample_bag, sample_frames):
    gt = json.loads((sample_bag / GROUND_TRUTH_FILE).read_text())
    f = sample_frames
    assert len(f) == 30 and f.pose_source.startswith("/ground_truth/camera_pose") and not f.skipped
    assert f.stamps_ns == gt["recording"]["stamps_ns"]
    np.testing.assert_allclose(np.stack(f.T_world_camera), np.array(gt["T_world_camera"]), atol=1e-9)
    np.testing.assert_allclose(f.K[0], np.array(gt["K"]), atol=1e-12)
    assert f.depth[0].dtype == np.float32 and (f.depth[0] >= 0).all() and np.isfinite(f.depth[0]).all()


def test_multiview_correspondences_carry_keypoints_to_their_ground_truth(sample_bag, sample_frames):
    """Dense A -> B maps from the bag's depth (16UC1 millimetres) and poses move every visible ground-truth
    keypoint of A to its ground-truth position in B (where the rounded pixel lies on the keypoint's surface)."""
    gt = json.loads((sample_bag / GROUND_TRUTH_FILE).read_text())
    f = sample_frames
    errors = []
    for a, b in ((0, 10), (5, 20), (3, 29), (15, 16), (0, 29), (7, 9)):
        uv_b, valid = reproject(*(torch.from_numpy(x) for x in (f.depth[a], f.K[a], f.T_world_camera[a], f.depth[b],
                                                                f.K[b], f.T_world_camera[b])), abs_tol=0.003)
        for ka, kb in zip(gt["keypoints"][a], gt["keypoints"][b], strict=True):
            x, y = (int(round(v)) for v in ka["uv"])
            if ka["visible"] and kb["visible"] and valid[y, x] and abs(f.depth[a][y, x] - ka["z"]) < 0.005:
                errors.append(np.linalg.norm(uv_b[y, x].numpy() - np.array(kb["uv"])))
    errors = np.array(errors)
    assert len(errors) >= 30
    assert np.median(errors) < 0.7 and errors.max() < 2.0  # rounding to the pixel centre: up to ~0.7 px


def test_multiview_items(sample_bag):
    ds = BagPairDataset(sample_bag, size=(120, 160), n_matches=64, abs_tol=0.003, rel_tol=0.0,
                        min_view_angle_deg=5.0, max_view_angle_deg=30.0)
    assert ds.mode == "multiview" and len(ds) == 30
    item = ds[(3, 7)]
    assert item.image_a.shape == item.image_b.shape == (3, 120, 160)
    p = item.pairs
    assert p.match_valid.all() and p.matches_a.shape == (1, 64, 2)
    assert (p.matches_b[0, :, 0] <= 159).all() and (p.matches_b[0, :, 1] <= 119).all()
    again = ds[(3, 7)]
    assert torch.equal(again.pairs.matches_b, p.matches_b) and torch.equal(again.image_b, item.image_b)
    other = ds[(3, 8)]
    assert not torch.equal(other.pairs.matches_a, p.matches_a)
    # the partner frames are 5..30 degrees away (the arc turns 40 degrees over 30 frames)
    assert all(ds.partners[a] for a in range(len(ds)))
    assert all(abs(b - a) >= 3 for a in range(len(ds)) for b in ds.partners[a])


def test_augmentation_pairs_without_poses(short_bags):
    ds = BagPairDataset(short_bags["sqlite3"], size=(96, 128), n_matches=32)
    assert ds.mode == "multiview"
    aug = BagPairDataset(short_bags["sqlite3"], size=(96, 128), n_matches=32, pairs="augment")
    assert aug.mode == "augment" and len(aug) == FRAMES
    item = aug[(2, 5)]
    assert item.image_a.shape == (3, 96, 128) and item.pairs.match_valid.any()


def test_no_poses_falls_back_or_refuses(short_bags, tmp_path):
    no_pose = copy_bag(short_bags["mcap"], tmp_path / "np", topics=["/color/image_raw",
                                                                     "/aligned_depth_to_color/image_raw",
                                                                     "/color/camera_info"])
    assert BagPairDataset(no_pose, size=(96, 128)).mode == "augment"
    with pytest.raises(BagError, match="multi-view pairs need two frames"):
        BagPairDataset(no_pose, size=(96, 128), pairs="multiview")


def _tf_msg(store, stamp_ns, parent, child, T):
    t = store.types
    xyz, q = pose_to_position_quaternion(T)
    tr = t["geometry_msgs/msg/TransformStamped"](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                                                                 nanosec=stamp_ns % 10**9),
                                        frame_id=parent),
        child_frame_id=child,
        transform=t["geometry_msgs/msg/Transform"](translation=t["geometry_msgs/msg/Vector3"](*map(float, xyz)),
                                                   rotation=t["geometry_msgs/msg/Quaternion"](*map(float, q))))
    return t["tf2_msgs/msg/TFMessage"](transforms=[tr])


def test_poses_from_a_tf_chain(short_bags, sample_frames, tmp_path):
    """world -> camera_link (on /tf, at every other frame: the others are interpolated) and camera_link ->
    camera_color_optical_frame (on /tf_static) give the same poses as the PoseStamped topic."""
    T_link_optical = np.eye(4)
    T_link_optical[:3, :3] = quaternion_to_matrix(np.array([-0.5, 0.5, -0.5, 0.5]))  # REP 103 -> optical
    T_link_optical[:3, 3] = [0.0, 0.015, 0.0]
    with BagReader(short_bags["mcap"]) as r, BagWriter(tmp_path / "tf", store=r.store) as w:
        names = ["/color/image_raw", "/aligned_depth_to_color/image_raw", "/color/camera_info"]
        conns = {n: w.add_topic(n, r.topics[n].msgtype) for n in names}
        tf = w.add_topic("/tf", "tf2_msgs/msg/TFMessage")
        static = w.add_topic("/tf_static", "tf2_msgs/msg/TFMessage")
        stamps = sample_frames.stamps_ns[:FRAMES]
        w.write_msg(static, stamps[0], _tf_msg(w.store, stamps[0], "camera_link", "camera_color_optical_frame",
                                               T_link_optical))
        for i in range(0, FRAMES, 2):  # frames 0, 2, 4 ... and one past the end
            j = min(i, FRAMES - 1)
            T = sample_frames.T_world_camera[j] @ np.linalg.inv(T_link_optical)
            w.write_msg(tf, stamps[j], _tf_msg(w.store, stamps[j], "world", "camera_link", T))
        T_last = sample_frames.T_world_camera[FRAMES - 1] @ np.linalg.inv(T_link_optical)
        w.write_msg(tf, stamps[-1], _tf_msg(w.store, stamps[-1], "world", "camera_link", T_last))
        for topic, _, ts, raw in r.messages(names):
            w.write(conns[topic], ts, raw)
    f = load_bag_frames(tmp_path / "tf")
    assert f.pose_source.startswith("TF") and len(f) == FRAMES
    for i in range(FRAMES):
        # interpolated links (odd frames) are close to the truth on this smooth arc, exact links exact
        np.testing.assert_allclose(f.T_world_camera[i], sample_frames.T_world_camera[i],
                                   atol=1e-9 if i % 2 == 0 else 2e-4)
    with pytest.raises(BagError, match="not connected to map"):
        load_bag_frames(tmp_path / "tf", fixed_frame="map")


def test_tf_tree_lookup_rules():
    tree = TfTree()
    assert tree.links == {}
    with pytest.raises(BagError, match="no transform for frame cam"):
        tree.chain("cam")


def test_a_few_training_steps_on_the_sample_bag(sample_bag):
    """The trainer's path with a bag dataset: collate, network, loss, optimiser; the loss goes down on a
    repeated batch (data.kind=bag is not wired into the trainer yet: see docs/rosbag_tools.md)."""
    from dense_descriptor_ros.data import collate_pairs
    from dense_descriptor_ros.models import build_model
    from dense_descriptor_ros.models.config import ModelConfig
    from dense_descriptor_ros.train import TrainConfig, build_loss_from_config

    ds = BagPairDataset(sample_bag, size=(64, 96), n_matches=64, abs_tol=0.003, rel_tol=0.0)
    batch = collate_pairs([ds[(0, 1)], ds[(12, 2)]])
    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(name="lite", normalize=True, decoder_channels=16, width_mult=0.5))
    net = build_model(cfg.model)
    loss_fn = build_loss_from_config(cfg, net)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):
        d = net.forward_native(torch.cat([batch.image_a, batch.image_b]))
        out = loss_fn(d[:2], d[2:], batch.pairs, net.stride)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.skipif("bag_path" not in {f.name for f in fields(DataConfig)},
                    reason="data.kind=bag is not in train/config.py yet (docs/rosbag_tools.md has the change)")
def test_train_from_the_sample_bag(sample_bag, tmp_path):
    from dense_descriptor_ros.config import load_config
    from dense_descriptor_ros.train import TrainConfig, train

    overrides = ["data.kind=bag", f"data.bag_path={sample_bag}", "data.bag_depth_tolerance=[0.003, 0.0]",
                 "data.image_size=[64, 96]", "data.n_matches=64", "data.val_image_dir=", "steps=3", "batch_size=2",
                 "workers=0", f"out_dir={tmp_path}", "log_every=1", "val_every=2", "image_every=2", "ckpt_every=2",
                 "optim.warmup_steps=1", "model.decoder_channels=16", "model.width_mult=0.5"]
    result = train(load_config(TrainConfig, None, overrides), progress=False)
    assert result.step == 3 and (tmp_path / "model.safetensors").is_file()


def test_depth_cluster_masks_guide_the_sampling(sample_bag):
    """data.bag_masks=depth_clusters: object masks from each frame's depth (no simulator labels) hold the mug's
    visible keypoints; matches fall on them, and half of the non-matches off them, in both pair modes."""
    from dense_descriptor_ros.train.datasets import build_train_dataset

    gt = json.loads((sample_bag / GROUND_TRUTH_FILE).read_text())
    ds = build_train_dataset(DataConfig(kind="bag", bag_path=str(sample_bag), bag_depth_tolerance=(0.003, 0.0),
                                        bag_masks="depth_clusters", n_matches=64))
    assert isinstance(ds, BagPairDataset) and ds.masks == "depth_clusters"
    for f in (0, 15, 29):
        mask = ds.object_mask(f)
        assert mask is not None and mask.shape == (240, 320) and 0.02 < mask.mean() < 0.5
        # visible keypoints higher than the mask's minimum height (a box's bottom corners touch the table), within
        # 2 px (a box's corner keypoints lie on its silhouette)
        kp = [(round(k["uv"][0]), round(k["uv"][1])) for k in gt["keypoints"][f]
              if k["visible"] and k["world"][2] > 0.015]
        assert kp and all(mask[v - 2:v + 3, u - 2:u + 3].any() for u, v in kp)
    item = ds[(4, 11)]
    ua = item.pairs.matches_a[0].long()
    assert torch.from_numpy(ds.object_mask(ds.index[4]))[ua[:, 1], ua[:, 0]].all()
    aug = BagPairDataset(sample_bag, pairs="augment", masks="depth_clusters", n_matches=64, size=(120, 160))
    views_item = aug[(2, 3)]
    assert views_item.pairs.match_valid.all()
    plain = BagPairDataset(sample_bag, pairs="augment", n_matches=64, size=(120, 160))
    assert plain.object_mask(2) is None
    # matches on the warped mask: denser on the mug than the unguided draw of the same pair
    views = aug.augmenter(torch.from_numpy(aug.frames.rgb[2]).permute(2, 0, 1).float().div(255)[None], 3)
    warped = aug._warped_mask(2, views.matrix_a)
    guided = warped[views_item.pairs.matches_a[0, :, 1].long(), views_item.pairs.matches_a[0, :, 0].long()]
    free = plain[(2, 3)].pairs.matches_a[0].long()
    assert guided.all() and warped[free[:, 1], free[:, 0]].float().mean() < 0.5
    with pytest.raises(ValueError, match="masks must be"):
        BagPairDataset(sample_bag, masks="sim")
