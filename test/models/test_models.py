from __future__ import annotations

import pytest
import torch

from dense_descriptor_ros.models import ARCHITECTURES, ModelConfig, build_model, load_model, save_model

SIZES = [(64, 96), (70, 90)]


@pytest.fixture(scope="module", params=ARCHITECTURES)
def net(request):
    torch.manual_seed(0)
    return build_model(ModelConfig(name=request.param, descriptor_dim=8)).eval()


class TestShapes:
    @pytest.mark.parametrize("hw", SIZES)
    def test_full_resolution_output(self, net, hw):
        with torch.no_grad():
            y = net(torch.rand(2, 3, *hw))
        assert y.shape == (2, 8, *hw)

    def test_native_and_pyramid(self, net):
        x = torch.rand(1, 3, 64, 96)
        with torch.no_grad():
            native = net.forward_native(x)
            pyr = net.forward_pyramid(x)
        assert native.shape == (1, 8, 64 // net.stride, 96 // net.stride)
        assert [s for _, s in pyr] == list(net.level_strides)
        for d, s in pyr:
            assert d.shape == (1, 8, 64 // s, 96 // s)
        assert torch.equal(pyr[0][0], native)

    def test_rejects_bad_input(self, net):
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            net(torch.rand(1, 4, 32, 32))


def test_don_reference_is_stride_8_resnet34():
    net = build_model(ModelConfig(name="don_resnet34"))
    assert net.stride == 8
    assert sum(len(layer) for layer in net.encoder.layers) == 3 + 4 + 6 + 3


def test_normalised_descriptors_have_unit_norm():
    net = build_model(ModelConfig(name="lite", normalize=True)).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, 48, 64))
    assert torch.allclose(y.norm(dim=1), torch.ones(1, 48, 64), atol=1e-5)


def test_predictor_head():
    net = build_model(ModelConfig(name="lite", descriptor_dim=8, predictor_hidden=16))
    assert net.predictor(torch.rand(5, 8)).shape == (5, 8)
    assert build_model(ModelConfig(name="lite")).predictor is None


class TestSaveLoad:
    def test_safetensors_round_trip(self, tmp_path):
        net = build_model(ModelConfig(name="fpn_resnet18", descriptor_dim=4, normalize=True)).eval()
        save_model(net, tmp_path / "m.safetensors", {"step": "12"})
        back = load_model(tmp_path / "m.safetensors")
        assert back.config == net.config
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(back(x), net(x))

    def test_corrupt_and_missing(self, tmp_path):
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(b"garbage" * 10)
        with pytest.raises(ValueError, match="not a readable"):
            load_model(bad)
        with pytest.raises(FileNotFoundError):
            load_model(tmp_path / "none.safetensors")


def test_backprop_dependency():
    """The output for sample i depends only on input i (eval mode: BatchNorm in train mode couples the batch)."""
    net = build_model(ModelConfig(name="lite", descriptor_dim=4)).eval()
    x = torch.rand(3, 3, 48, 64, requires_grad=True)
    net(x)[1].sum().backward()
    g = x.grad.abs().flatten(1).sum(1)
    assert g[1] > 0 and g[0] == 0 and g[2] == 0
