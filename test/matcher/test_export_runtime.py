"""The matcher file, its ONNX export (a real ONNX Runtime session; parity with PyTorch at a traced and an untraced
size) and the runtime class the pipeline uses: same matches from both backends, maps of another model refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dense_descriptor_ros.descriptor_map import DescriptorMap
from dense_descriptor_ros.matcher.config import MatcherConfig
from dense_descriptor_ros.matcher.export import check_matcher_parity, export_matcher_onnx, read_onnx_matcher
from dense_descriptor_ros.matcher.io import MatcherInfo, load_matcher, save_matcher
from dense_descriptor_ros.matcher.model import MatcherNet
from dense_descriptor_ros.matcher.runtime import LearnedMatcher, MatcherMismatchError


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread):
    yield


@pytest.fixture(scope="module", params=[0, 8], ids=["descriptors", "images"])
def files(request, tmp_path_factory):
    """A matcher on the maps alone and one whose fine level reads the images too, saved and exported."""
    d = tmp_path_factory.mktemp("matcher")
    torch.manual_seed(0)
    net = MatcherNet(MatcherConfig(descriptor_dim=8, d_model=16, layers=1, heads=2, fine_dim=8,
                                   image_channels=request.param)).eval()
    # trained-like weights: the zero-initialised last layers get values, the scales their working range
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim > 0 and p.abs().max() == 0:
                p.normal_(0, 0.2)
        net.log_scale.fill_(3.0)
    info = MatcherInfo("abcd1234abcd1234", 4, "step-7")
    save_matcher(net, info, d / "m.safetensors")
    export_matcher_onnx(net, info, d / "m.onnx", trace_size=(8, 12))
    return net, info, d


def shifted_maps(h: int = 12, w: int = 16, d: int = 8, dx: int = 2, dy: int = 2, model_id: str = "abcd1234abcd1234"):
    g = torch.Generator().manual_seed(3)
    a = F.normalize(torch.randn(h, w, d, generator=g), dim=-1).numpy()
    b = F.normalize(torch.randn(h, w, d, generator=g), dim=-1).numpy()
    b[dy:, dx:] = a[: h - dy, : w - dx]
    size = (w * 4, h * 4)
    return DescriptorMap(a, (4, 4), size, model_id, True), DescriptorMap(b, (4, 4), size, model_id, True)


def test_the_file_round_trips_weights_config_and_identity(files):
    net, info, d = files
    loaded, linfo = load_matcher(d / "m.safetensors")
    assert linfo == info and loaded.config == net.config
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in net.state_dict().items())
    assert read_onnx_matcher(d / "m.onnx") == (info, net.config)
    with pytest.raises(ValueError, match="not a matcher file"):
        load_matcher(d / "m.onnx")
    with pytest.raises(FileNotFoundError):
        load_matcher(d / "missing.safetensors")


def test_onnx_parity_at_the_traced_and_other_sizes(files):
    net, _, d = files
    diff = check_matcher_parity(net, d / "m.onnx", sizes=((8, 12), (14, 10)))
    for size in ("8x12", "14x10"):
        assert diff[f"{size}/confidence"] < 1e-4
        assert diff[f"{size}/position"] < 1e-3
        assert diff[f"{size}/disagree"] < 0.02


def images(h: int = 12, w: int = 16, scale: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Input images of maps of h x w cells at stride 4 (`scale` x the processing size, as a 640 x 480 camera)."""
    rng = np.random.default_rng(0)
    return tuple(rng.integers(0, 256, (h * 4 * scale, w * 4 * scale, 3), dtype=np.uint8) for _ in range(2))


def test_both_backends_give_the_same_matches_and_refuse_another_models_maps(files):
    net, _, d = files
    a, b = shifted_maps()
    torch_m, ort_m = LearnedMatcher(d / "m.safetensors"), LearnedMatcher(d / "m.onnx")
    assert (torch_m.backend, ort_m.backend) == ("torch", "onnxruntime")
    assert not torch_m.loaded and not ort_m.loaded  # metadata only until the first match
    assert torch_m.reads_images == ort_m.reads_images == (net.config.image_channels > 0)
    img_a, img_b = images()
    if torch_m.reads_images:
        with pytest.raises(ValueError, match="reads the images"):
            ort_m.match(a, b)
        assert ort_m.image_input(img_a, a).shape == (1, 3, 48, 64)
    mt = torch_m.match(a, b, threshold=0.0, image_a=img_a, image_b=img_b)
    mo = ort_m.match(a, b, threshold=0.0, image_a=img_a, image_b=img_b)
    assert len(mt) == len(mo) > 0
    assert torch_m.loaded and ort_m.loaded
    np.testing.assert_allclose(mt.uv_a, mo.uv_a)
    np.testing.assert_allclose(mt.uv_b, mo.uv_b, atol=1e-3)
    np.testing.assert_allclose(mt.confidence, mo.confidence, atol=1e-5)
    # coordinates are image pixels: coarse cell (r, c) of a stride-4 map is centred on (8c + 3.5, 8r + 3.5)
    assert set(np.round((mt.uv_a - 3.5) / 8, 6).ravel()) <= set(range(8))
    assert np.all(np.diff(mt.confidence) <= 0)  # most confident first
    capped = torch_m.match(a, b, threshold=0.0, max_matches=3, image_a=img_a, image_b=img_b)
    np.testing.assert_allclose(capped.uv_a, mt.uv_a[:3])
    mask = np.zeros((48, 64), bool)
    mask[:, :32] = True
    assert np.all(torch_m.match(a, b, threshold=0.0, mask_a=mask, image_a=img_a, image_b=img_b).uv_a[:, 0] < 32)
    other_a, other_b = shifted_maps(model_id="ffff0000ffff0000")
    with pytest.raises(MatcherMismatchError, match="ffff0000ffff0000"):
        ort_m.match(other_a, other_b)
    with pytest.raises(ValueError, match="same size"):
        torch_m.match(a, shifted_maps(h=10)[1])


def test_odd_maps_are_cropped_and_tiny_ones_refused(files):
    _, _, d = files
    m = LearnedMatcher(d / "m.onnx")
    a, b = shifted_maps(h=11, w=15)
    ia, ib = images(11, 15)
    conf, mutual, pos, spread = m.raw(a.descriptors, b.descriptors, m.image_input(ia, a), m.image_input(ib, b))
    assert conf.shape == (5 * 7,) and pos.shape == (35, 2)
    t, _ = shifted_maps(h=1, w=15)
    with pytest.raises(ValueError, match="too small"):
        m.raw(t.descriptors, t.descriptors)
