"""The realistic look (sim/appearance.py, sim/shading.py, sim/sensor.py) and the cartoon look beside it:
training photos only, texture on every part, camera effects on the RGB only, same geometry and ground
truth in both looks, reproducible from the seed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dense_descriptor_ros.data.sample_images import HELDOUT_IMAGES, TRAIN_IMAGES
from dense_descriptor_ros.sim import appearance
from dense_descriptor_ros.sim.format import read_view
from dense_descriptor_ros.sim.generator import GenerateError, generate
from dense_descriptor_ros.sim.library import InstanceRef, build_instance, ensure_instance
from dense_descriptor_ros.sim.sensor import AUTO_EXPOSURE, SensorSettings, apply_sensor, sample_sensor
from dense_descriptor_ros.sim.shading import add_highlights
from dense_descriptor_ros.sim.textures import Material

from .simdata import TINY, tiny_dataset

CARTOON = dataclasses.replace(TINY, appearance="cartoon")
GEOMETRY_FILES = ("depth.tiff", "depth_mm.png", "instance.png", "category.png", "part.png", "coords.png")


@pytest.fixture(scope="module")
def realistic(tmp_path_factory) -> Path:
    assert TINY.appearance == "realistic"  # the default
    return tiny_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def cartoon(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cartoon") / "data"
    generate(CARTOON, root, workers=1, progress=False)
    return root


def views(root: Path):
    for scene in sorted((root / "scenes").glob("scene_*")):
        for v in range(TINY.views):
            yield scene, v


class TestPhotos:
    def test_training_photos_only(self):
        assert appearance.training_photos() == TRAIN_IMAGES
        assert not set(appearance.training_photos()) & set(HELDOUT_IMAGES)
        for name in HELDOUT_IMAGES:
            with pytest.raises(ValueError, match="held-out|not a training"):
                appearance.photo(name)

    def test_textures_load_no_heldout_photo(self):
        appearance.PHOTOS_LOADED.clear()
        rng = np.random.default_rng(0)
        for k in range(20):
            build_instance(0, InstanceRef(("mug", "bowl", "bottle", "can", "box")[k % 5], k), "realistic")
            appearance.realistic_surface_texture(rng, ("table", "floor", "wall")[k % 3], 128)
        assert appearance.PHOTOS_LOADED  # photos were used
        assert appearance.PHOTOS_LOADED <= set(TRAIN_IMAGES)


class TestTextures:
    def test_every_part_textured_at_several_scales(self):
        for k, cat in enumerate(("mug", "bowl", "bottle", "can", "box")):
            _, shape, look = build_instance(0, InstanceRef(cat, k), "realistic")
            plain = {p.name for p in shape.parts if not p.textured}
            assert set(look.part_textures) == plain
            for tex in [look.texture, *look.part_textures.values()]:
                assert tex.dtype == np.uint8 and tex.ndim == 3
                g = tex.astype(np.float32).mean(-1)
                # fine detail (pixel scale) and coarse structure (blurred) both vary
                assert (g - cv2.blur(g, (3, 3))).std() > 0.5
                assert cv2.blur(g, (15, 15)).std() > 0.5
            assert isinstance(look.material, Material) and 0 <= look.material.gloss <= 1

    def test_deterministic_and_independent_of_the_cartoon_look(self, tmp_path):
        ref = InstanceRef("mug", 3)
        a, b = build_instance(0, ref, "realistic")[2], build_instance(0, ref, "realistic")[2]
        assert np.array_equal(a.texture, b.texture)
        assert all(np.array_equal(a.part_textures[p], b.part_textures[p]) for p in a.part_textures)
        cartoon_shape, realistic_shape = build_instance(0, ref)[1], build_instance(0, ref, "realistic")[1]
        for p, q in zip(cartoon_shape.parts, realistic_shape.parts, strict=True):
            assert np.array_equal(p.mesh.vertices, q.mesh.vertices)
        # both looks can share one cache folder
        d1 = ensure_instance(tmp_path, 0, ref)[0]
        d2 = ensure_instance(tmp_path, 0, ref, "realistic")[0]
        assert d1 != d2 and (d2 / "texture_handle.png").is_file() and not (d1 / "texture_handle.png").exists()
        cached = ensure_instance(tmp_path, 0, ref, "realistic")[2]  # textures read back, not drawn again
        assert np.array_equal(cached.texture, a.texture) and cached.material == a.material
        assert set(cached.part_textures) == set(a.part_textures)
        assert all(np.array_equal(cached.part_textures[p], a.part_textures[p]) for p in a.part_textures)
        assert all(np.array_equal(cached.colors[p], a.colors[p]) for p in a.colors)
        with pytest.raises(ValueError, match="appearance"):
            build_instance(0, ref, "photoreal")

    def test_label_has_text_contrast(self):
        label = appearance.printed_label(np.random.default_rng(1), 64, 128)
        assert label.shape == (64, 128, 3)
        g = label.astype(np.float32).mean(-1)
        assert np.percentile(g, 99) - np.percentile(g, 1) > 60


class TestSensor:
    def image(self) -> np.ndarray:
        rng = np.random.default_rng(0)
        return cv2.resize(rng.integers(30, 220, (30, 40, 3)).astype(np.uint8), (160, 120),
                          interpolation=cv2.INTER_CUBIC)

    def test_reproducible_and_changes_only_the_image(self):
        img = self.image()
        s = sample_sensor(np.random.default_rng(5))
        a = apply_sensor(img, s, np.random.default_rng(9))
        b = apply_sensor(img, s, np.random.default_rng(9))
        assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b)
        assert not np.array_equal(a, apply_sensor(img, s, np.random.default_rng(10)))  # the noise is random
        assert np.abs(a.astype(int) - img).mean() > 1

    def test_auto_exposure_and_noise_level(self):
        img = np.full((120, 160, 3), 80, np.uint8)  # dark grey (linear 0.08: gain 2.25)
        quiet = SensorSettings("none", 0.0, 0.0, 0.0, 1.0, [1.0, 1.0, 1.0], 0.0, 0.0, 0)
        out = apply_sensor(img, quiet, np.random.default_rng(0))
        lin = ((out / 255.0 + 0.055) / 1.055) ** 2.4
        assert lin.mean() == pytest.approx(AUTO_EXPOSURE, rel=0.03)  # brought to middle grey
        assert out.std() < 0.6  # no noise, no blur: flat
        noisy = apply_sensor(img, dataclasses.replace(quiet, read_noise=0.01), np.random.default_rng(0))
        assert noisy.std() > 3  # read noise amplified by the auto-exposure gain

    def test_blur_kinds(self):
        img = np.zeros((61, 61, 3), np.uint8)
        img[30, 30] = 255
        quiet = SensorSettings("none", 0.0, 0.0, 0.0, 1.0, [1.0, 1.0, 1.0], 0.0, 0.0, 0)
        for kind, px in (("defocus", 1.0), ("motion", 4.0)):
            out = apply_sensor(img, dataclasses.replace(quiet, blur=kind, blur_px=px), np.random.default_rng(0))
            assert (out.max(-1) > 0).sum() >= 4  # the point spread
        with pytest.raises(ValueError, match="uint8"):
            apply_sensor(img.astype(np.float32), quiet, np.random.default_rng(0))


class TestHighlights:
    def test_only_glossy_instances_brighten(self):
        h, w = 60, 80
        K = np.array([[80.0, 0, 40], [0, 80.0, 29], [0, 0, 1]])
        depth = np.full((h, w), 0.5, np.float32)  # a plane facing the camera
        instance = np.zeros((h, w), np.uint8)
        instance[:, 40:] = 1
        rgb = np.full((h, w, 3), 100, np.uint8)
        T = np.eye(4)  # camera axes = world axes; the light comes from behind the camera
        out = add_highlights(rgb, depth, instance, K, T, np.array([0.0, 0.0, -1.0]), np.ones(3),
                             {1: Material(0.8, 20.0)})
        assert (out >= rgb).all()
        assert np.array_equal(out[:, :38], rgb[:, :38])  # instance 0 (no material) untouched
        assert out[h // 2, 60].mean() > 150  # near the mirror direction: a strong highlight
        assert np.array_equal(add_highlights(rgb, depth, instance, K, T, np.array([0.0, 0, -1]), np.ones(3), {}),
                              rgb)


class TestGenerated:
    def test_same_geometry_and_ground_truth_in_both_looks(self, realistic, cartoon):
        differ = 0
        for scene, v in views(realistic):
            other = cartoon / "scenes" / scene.name
            for suffix in GEOMETRY_FILES:
                name = f"{v:03d}_{suffix}"
                assert (scene / name).read_bytes() == (other / name).read_bytes(), name
            differ += not np.array_equal(read_view(scene, v, ("rgb",))["rgb"], read_view(other, v, ("rgb",))["rgb"])
        assert differ == 2 * TINY.views
        for scene in sorted((realistic / "scenes").glob("scene_*")):
            a = json.loads((scene / "scene.json").read_text())
            b = json.loads((cartoon / "scenes" / scene.name / "scene.json").read_text())
            look = a.pop("appearance")
            assert look["look"] == "realistic" and "appearance" not in b
            clutter = {str(o["instance_id"]) for o in a["objects"] if o["category"] == "distractor"}
            assert set(look["distractor_textures"]) == clutter
            assert set(look["materials"]) == {"0"} | {str(o["instance_id"]) for o in a["objects"]}
            assert a.pop("lighting") != b.pop("lighting")
            for view in a["views"]:
                assert set(view.pop("sensor")) == {f.name for f in dataclasses.fields(SensorSettings)}
            assert a == b  # objects, poses, cameras, keypoints

    def test_colour_varies_within_every_part(self, realistic, cartoon):
        """Within each visible object part, colour varies at pixel scale (texture, print, grain, noise) in
        the realistic look; the cartoon look has flat parts."""

        def part_stats(root: Path) -> np.ndarray:
            out = []
            for scene, v in views(root):
                img = read_view(scene, v, ("rgb", "instance", "part"))
                rgb = img["rgb"].astype(np.float32)
                high = rgb - cv2.blur(rgb, (5, 5))
                for key in np.unique(img["instance"].astype(int) * 256 + img["part"]):
                    if key % 256 == 0:
                        continue
                    m = (img["instance"].astype(int) * 256 + img["part"]) == key
                    m = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # no edges
                    if m.sum() >= 100:
                        out.append((rgb[m].std(0).mean(), high[m].std(0).mean()))
            return np.array(out)

        real, cart = part_stats(realistic), part_stats(cartoon)
        assert len(real) >= 20
        assert real[:, 0].min() > 4 and real[:, 1].min() > 3
        assert np.median(real[:, 1]) > 2 * np.median(cart[:, 1])
        assert cart[:, 1].min() < 1  # the test can fail: the cartoon look has flat parts

    def test_old_cartoon_datasets_resume_only_as_cartoon(self, cartoon, tmp_path):
        old = tmp_path / "old"
        generate(dataclasses.replace(CARTOON, scenes=1), old, workers=1, progress=False)
        meta = json.loads((old / "dataset.json").read_text())
        meta["format_version"] = "1.0"  # written before --appearance existed
        del meta["generator"]["appearance"]
        (old / "dataset.json").write_text(json.dumps(meta))
        with pytest.raises(GenerateError, match="appearance"):
            generate(dataclasses.replace(TINY, scenes=2), old, workers=1, progress=False)
        report = generate(dataclasses.replace(CARTOON, scenes=2), old, workers=1, progress=False)
        assert report.scenes_done == 1
        assert (old / "scenes" / "scene_000001" / "000_rgb.png").read_bytes() == \
            (cartoon / "scenes" / "scene_000001" / "000_rgb.png").read_bytes()

    def test_contact_sheet_compares_the_looks(self, realistic, cartoon, tmp_path):
        from dense_descriptor_ros.sim.contact_sheet import make_contact_sheet

        sheet = make_contact_sheet(realistic, [("scene_000000", 1)], compare=cartoon)
        assert sheet.shape[1] == 5 * (TINY.width + 4)
        last = sheet[-TINY.height - 2:-2, 4 * (TINY.width + 4) + 2:-2]
        assert np.array_equal(last, read_view(cartoon / "scenes" / "scene_000000", 1, ("rgb",))["rgb"])
