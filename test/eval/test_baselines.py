"""Baselines (dense RootSIFT, raw colour) and the Method wrapper."""

from __future__ import annotations

import kornia
import numpy as np
import pytest
import torch

from dense_descriptor_ros.correspondence.pairs import sample_descriptors
from dense_descriptor_ros.eval import metrics as M
from dense_descriptor_ros.eval.baselines import DenseRootSIFT, lab_descriptor, rgb_descriptor
from dense_descriptor_ros.eval.methods import MethodError, build_method
from dense_descriptor_ros.models import ModelConfig, build_model, save_model

from .conftest import smooth_texture


def bump_image(size: int = 72) -> torch.Tensor:
    """Grey image with a few smooth bumps of compact support in the middle: every patch around the centre
    sees zero gradient at its border, where kornia's per-patch gradient pads and the dense one does not."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    img = torch.full((size, size), 0.5)
    for cx, cy, r, a in ((30, 31, 7, 0.3), (35, 28, 5, -0.2), (28, 36, 8, 0.25)):
        q = ((xx - cx) ** 2 + (yy - cy) ** 2) / r**2
        img += a * torch.where(q < 1, (1 - q) ** 3, torch.zeros_like(q))
    return img[None, None].repeat(1, 3, 1, 1)


class TestDenseRootSIFT:
    @pytest.mark.parametrize(("stride", "patch"), [(1, 33), (3, 41), (4, 32)])
    def test_equals_kornia_on_patches(self, stride, patch):
        img = bump_image()
        sift = DenseRootSIFT(stride, patch)
        with torch.no_grad():
            dense = sift(img)
        assert dense.shape == (1, 128, -(-72 // stride), -(-72 // stride))
        ref_module = kornia.feature.SIFTDescriptor(sift.patch_size, rootsift=True)
        gray = kornia.color.rgb_to_grayscale(img)
        p = sift.patch_size
        for j, i in ((32 // stride, 31 // stride), (31 // stride, 33 // stride)):
            # cell (j, i) is centred on pixel ((j + 0.5) s - 0.5, (i + 0.5) s - 0.5)
            x0 = round((j + 0.5) * stride - 0.5 - (p - 1) / 2)
            y0 = round((i + 0.5) * stride - 0.5 - (p - 1) / 2)
            with torch.no_grad():
                ref = ref_module(gray[:, :, y0:y0 + p, x0:x0 + p])[0]
            assert torch.allclose(dense[0, :, i, j], ref, atol=1e-6)

    def test_patch_parity_follows_the_stride(self):
        assert DenseRootSIFT(3, 32).patch_size == 33 and DenseRootSIFT(4, 32).patch_size == 32
        with pytest.raises(ValueError):
            DenseRootSIFT(0)

    def test_unit_norm_and_matches_a_translation(self):
        rng = np.random.default_rng(0)
        img = torch.from_numpy(smooth_texture(rng, 90, 120)).permute(2, 0, 1)[None].float() / 255
        moved = img.roll(2, -1)  # B = A shifted right by 2 px
        sift = build_method("rootsift:2")
        da = sift.full_resolution(sift.describe(img), (90, 120))[0]
        db = sift.full_resolution(sift.describe(moved), (90, 120))[0]
        assert torch.allclose(da.norm(dim=0), torch.ones(90, 120), atol=1e-5) and (da >= 0).all()
        uv = torch.stack(torch.meshgrid(torch.arange(20.0, 100, 7), torch.arange(15.0, 75, 7), indexing="xy"),
                         -1).reshape(-1, 2)
        bm = M.best_match(da, db, uv, uv + torch.tensor([2.0, 0.0]))
        assert M.pck(M.pixel_errors(bm.uv, uv + torch.tensor([2.0, 0.0])), (1,))["pck@1"] > 0.9


def test_colour_descriptors_by_hand():
    img = torch.tensor([1.0, 1.0, 1.0]).view(1, 3, 1, 1).repeat(1, 1, 2, 2)
    img[0, :, 0, 0] = torch.tensor([0.485, 0.456, 0.406])  # ImageNet mean colour -> 0
    assert torch.allclose(rgb_descriptor(img)[0, :, 0, 0], torch.zeros(3), atol=1e-6)
    assert torch.allclose(rgb_descriptor(img)[0, 0, 1, 1], torch.tensor((1 - 0.485) / 0.229))
    white = lab_descriptor(img)[0, :, 1, 1]
    assert torch.allclose(white, torch.tensor([100.0, 0.0, 0.0]), atol=1e-2)
    assert lab_descriptor(torch.zeros(1, 3, 2, 2)).abs().max() < 1e-3  # black


class TestMethods:
    def test_baselines_and_random_networks(self):
        img = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
        for spec, dim, stride in (("rgb", 3, 1), ("lab", 3, 1), ("rootsift", 128, 4), ("rootsift:8", 128, 8),
                                  ("random:lite", 16, 4), ("random:don_resnet18:3", 3, 8)):
            m = build_method(spec)
            assert (m.dim, m.stride, m.name) == (dim, stride, spec)
            assert m.describe(img).shape == (1, dim, -(-40 // stride), -(-56 // stride))
        a, b = build_method("random:lite"), build_method("random:lite")
        assert torch.equal(a.describe(img), b.describe(img))  # seeded: every run scores the same network

    def test_model_file(self, tmp_path):
        net = build_model(ModelConfig(name="lite", descriptor_dim=5, decoder_channels=8, width_mult=0.5))
        save_model(net, tmp_path / "tiny.safetensors")
        m = build_method(f"mine={tmp_path / 'tiny.safetensors'}")
        assert (m.name, m.dim, m.stride, m.kind) == ("mine", 5, 4, "model")
        assert build_method(str(tmp_path / "tiny.safetensors")).name == "tiny"
        img = torch.rand(1, 3, 32, 48)
        assert torch.allclose(m.describe(img), net.eval().forward_native(img))

    def test_onnx_export_runs_through_the_deployment_extractor(self, tmp_path):
        from dense_descriptor_ros.runtime import export_onnx

        cfg = ModelConfig(name="lite", descriptor_dim=4, decoder_channels=8, width_mult=0.5)
        net = build_model(cfg).eval()
        export_onnx(net, tmp_path / "tiny.onnx", trace_size=(32, 48))
        m = build_method(str(tmp_path / "tiny.onnx"))
        assert (m.name, m.dim, m.stride, m.info["backend"]) == ("tiny", 4, 4, "onnxruntime")
        img = torch.randint(0, 256, (1, 3, 40, 56)).float() / 255  # uint8-exact, as the extractor feeds it
        assert torch.allclose(m.describe(img), net.forward_native(img), atol=1e-4)

    def test_full_resolution_keeps_cell_centres(self):
        """The upsampled map at a pixel equals bilinear sampling of the native map there."""
        m = build_method("random:lite")
        img = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(2))
        native = m.describe(img)
        full = m.full_resolution(native, (48, 64))
        uv = torch.tensor([[5.0, 7.0], [33.0, 20.0], [60.0, 44.0]])
        expect = sample_descriptors(native, uv[None], stride=4)[0]
        got = full[0, :, uv[:, 1].long(), uv[:, 0].long()].T
        assert full.shape == (1, 16, 48, 64) and torch.allclose(got, expect, atol=1e-6)

    def test_rotation_lifted_and_oriented_specs(self):
        img = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(1))
        c4 = build_method("c4:rootsift")
        assert (c4.name, c4.dim, c4.stride, c4.kind) == ("c4:rootsift", 128, 4, "baseline")
        d = c4.describe(img)
        assert d.shape == (1, 128, 10, 14)
        # invariant under a right angle, which the plain grid RootSIFT is not
        turned = c4.describe(torch.rot90(img, 1, dims=(2, 3)))
        assert torch.allclose(torch.rot90(d, 1, dims=(2, 3)), turned, atol=1e-5)
        o = build_method("rootsift_oriented")
        assert (o.dim, o.stride) == (128, 4) and o.describe(img).shape == (1, 128, 10, 14)

    @pytest.mark.parametrize("spec", ["nope", "random:resnet99", "random:lite:x", "rootsift:-1", "rgb:2",
                                      "m=/no/such/file.safetensors", "c6:rgb", "c4:nope", "rootsift_oriented:0"])
    def test_bad_specs_are_user_errors(self, spec):
        with pytest.raises(MethodError):
            build_method(spec)
