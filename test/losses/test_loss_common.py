"""Properties every loss must have: the factory, input validation, masking, no NaN, gradcheck."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from losses_testutil import F64, random_pairs

import dense_descriptor_ros.losses as losses
from dense_descriptor_ros.correspondence.pairs import PairSample, sample_descriptors
from dense_descriptor_ros.losses import (
    LOSS_NAMES,
    DenseSimSiamLoss,
    LossOutput,
    PixelInfoNCELoss,
    PixelwiseContrastiveLoss,
    PyramidLoss,
    build_loss,
)


def linear_predictor(d: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(d, d).to(F64)  # no BatchNorm: deterministic, any row count


FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "contrastive": lambda: PixelwiseContrastiveLoss(margin=1.0),
    "contrastive_unscaled": lambda: PixelwiseContrastiveLoss(margin=1.0, scale_by_hard_negatives=False,
                                                             masked_nonmatch_weight=2.0),
    "triplet": lambda: PixelwiseContrastiveLoss(mode="triplet", triplet_margin=0.5),
    "infonce": lambda: PixelInfoNCELoss(temperature=0.5),
    "infonce_nonmatches": lambda: PixelInfoNCELoss(temperature=0.5, use_nonmatches=True, symmetric=False),
    "simsiam": lambda: DenseSimSiamLoss(linear_predictor()),
}


def maps(seed: int, b: int = 2, d: int = 3, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, d, size, size, generator=g, dtype=F64),
            torch.randn(b, d, size + 1, size - 1, generator=g, dtype=F64))  # maps may differ in size


def batch(seed: int = 0, b: int = 2) -> PairSample:
    return random_pairs(b, 6, 2, 7, torch.Generator().manual_seed(seed))


class TestFactory:
    @pytest.mark.parametrize(("name", "cls"), [("contrastive", PixelwiseContrastiveLoss),
                                               ("triplet", PixelwiseContrastiveLoss),
                                               ("infonce", PixelInfoNCELoss), ("simsiam", DenseSimSiamLoss)])
    def test_builds_each_name(self, name: str, cls: type) -> None:
        kwargs = {"predictor": linear_predictor()} if name == "simsiam" else {}
        loss = build_loss(name, **kwargs)
        assert type(loss) is cls and name in LOSS_NAMES
        if cls is PixelwiseContrastiveLoss:
            assert loss.mode == ("triplet" if name == "triplet" else "hinge")

    def test_passes_hyperparameters(self) -> None:
        assert build_loss("infonce", temperature=0.07).temperature == 0.07
        assert build_loss("triplet", triplet_margin=0.2).triplet_margin == 0.2

    @pytest.mark.parametrize(("name", "kwargs", "message"), [
        ("hinge", {}, "unknown loss 'hinge'"),
        ("contrastive", {"temprature": 0.1}, "does not take temprature"),
        ("triplet", {"margin": 0.5}, "does not take margin"),  # the hinge margin would be silently unused
        ("triplet", {"mode": "hinge"}, "does not take mode"),
        ("simsiam", {}, "missing a required argument: 'predictor'"),
        ("simsiam", {"predictor": None}, "predictor_hidden"),
    ])
    def test_user_errors_are_value_errors(self, name: str, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            build_loss(name, **kwargs)

    def test_exports(self) -> None:
        assert all(hasattr(losses, n) for n in losses.__all__)
        assert {"LossOutput", "build_loss", "LOSS_NAMES", "PyramidLoss"} <= set(losses.__all__)

    def test_loss_output_is_frozen(self) -> None:
        out = LossOutput(torch.zeros(()), {})
        with pytest.raises(dataclasses.FrozenInstanceError):
            out.loss = torch.ones(())  # type: ignore[misc]


def simsiam_target_terms(predictor: nn.Module, a: torch.Tensor, b: torch.Tensor, pairs: PairSample) -> torch.Tensor:
    """The SimSiam loss with gradient flowing only into the targets: -1/2 mean [cos(sg(p_a), z_b) + ...]."""
    za = sample_descriptors(a, pairs.matches_a)[pairs.match_valid]
    zb = sample_descriptors(b, pairs.matches_b)[pairs.match_valid]
    pa, pb = predictor(za).detach(), predictor(zb).detach()
    return -0.5 * (F.cosine_similarity(pa, zb, dim=-1).mean() + F.cosine_similarity(pb, za, dim=-1).mean())


def _replace(pairs: PairSample, **kw: torch.Tensor) -> PairSample:
    return dataclasses.replace(pairs, **kw)


@pytest.mark.parametrize("name", list(FACTORIES))
class TestEveryLoss:
    @pytest.mark.parametrize(("what", "make"), [
        ("desc_a", lambda a, b, p: (a[0], b, p, 1)),
        ("desc_b", lambda a, b, p: (a, b[:, :2], p, 1)),  # D differs
        ("desc_b", lambda a, b, p: (a, b[:1], p, 1)),  # batch differs
        ("pairs.match_valid", lambda a, b, p: (a[:1], b[:1], p, 1)),  # pairs batch differs
        ("pairs.nonmatch_valid", lambda a, b, p: (a, b, _replace(p, nonmatch_valid=p.nonmatch_valid.double()), 1)),
        ("stride", lambda a, b, p: (a, b, p, 0)),
        ("PairSample", lambda a, b, p: (a, b, {"matches_a": p.matches_a}, 1)),
    ])
    def test_input_validation(self, name: str, what: str, make: Callable) -> None:
        a, b = maps(0)
        with pytest.raises(ValueError, match=what):
            FACTORIES[name]()(*make(a, b, batch()))

    def test_output_contract(self, name: str) -> None:
        a, b = maps(0)
        a.requires_grad_(True)
        out = FACTORIES[name]()(a, b, batch())
        assert isinstance(out, LossOutput) and out.loss.ndim == 0 and out.loss.requires_grad
        assert out.parts and all(v.ndim == 0 and not v.requires_grad for v in out.parts.values())

    def test_invalid_rows_change_nothing(self, name: str) -> None:
        # Whatever invalid rows hold (-1, NaN, far outside), values and gradients are identical.
        pairs = batch(1)
        assert (~pairs.match_valid).any() and (~pairs.nonmatch_valid).any()

        def run(p: PairSample) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            a, b = (m.requires_grad_(True) for m in maps(2))
            out = FACTORIES[name]()(a, b, p)
            out.loss.backward()
            return out.loss.detach(), a.grad, b.grad

        def scramble(uv: torch.Tensor, valid: torch.Tensor, fill: float) -> torch.Tensor:
            return torch.where(valid.unsqueeze(-1), uv, torch.full_like(uv, fill))

        ref = run(pairs)
        for fill in (-1.0, float("nan"), 1e6):
            other = _replace(pairs, matches_a=scramble(pairs.matches_a, pairs.match_valid, fill),
                             matches_b=scramble(pairs.matches_b, pairs.match_valid, fill),
                             nonmatch_a=scramble(pairs.nonmatch_a, pairs.nonmatch_valid, fill),
                             nonmatch_b=scramble(pairs.nonmatch_b, pairs.nonmatch_valid, fill))
            for x, y in zip(ref, run(other), strict=True):
                torch.testing.assert_close(x, y, rtol=0, atol=1e-12)

    def test_element_without_valid_matches(self, name: str) -> None:
        # Element 1 has no valid match: finite loss and gradients, and element 0 is unaffected.
        pairs = batch(2)
        mv = pairs.match_valid.clone()
        mv[1] = False
        nv = pairs.nonmatch_valid.clone()
        if name == "simsiam" or name.startswith("contrastive"):
            nv[1] = False  # for these, non-matches of element 1 would still (rightly) count
        a, b = (m.requires_grad_(True) for m in maps(3))
        out = FACTORIES[name]()(a, b, _replace(pairs, match_valid=mv, nonmatch_valid=nv))
        out.loss.backward()
        assert torch.isfinite(out.loss) and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
        assert a.grad[1].abs().sum() == 0
        single = PairSample(*(getattr(pairs, f.name)[:1] for f in dataclasses.fields(PairSample)))
        alone = FACTORIES[name]()(a[:1].detach(), b[:1].detach(), single)
        torch.testing.assert_close(out.loss.detach(), alone.loss, rtol=0, atol=1e-12)

    def test_nothing_valid_gives_zero(self, name: str) -> None:
        pairs = batch(0)
        pairs = _replace(pairs, match_valid=torch.zeros_like(pairs.match_valid),
                         nonmatch_valid=torch.zeros_like(pairs.nonmatch_valid))
        a, b = (m.requires_grad_(True) for m in maps(4))
        out = FACTORIES[name]()(a, b, pairs)
        out.loss.backward()
        assert out.loss.item() == 0 and a.grad.abs().sum() == 0 and b.grad.abs().sum() == 0

    def test_gradcheck(self, name: str) -> None:
        pairs = random_pairs(2, 4, 2, 5, torch.Generator().manual_seed(7), valid_frac=0.8)
        a, b = (m.requires_grad_(True) for m in maps(5, b=2, d=3, size=5))
        loss = FACTORIES[name]()

        def f(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            out = loss(x, y, pairs).loss
            if name == "simsiam":
                # The stop-gradient drops the target terms on purpose, so finite differences of the value see
                # more than autograd does. Add the target-only gradient back (r - r.detach() is 0 in value).
                r = simsiam_target_terms(loss.predictor, x, y, pairs)
                out = out + r - r.detach()
            return out

        assert torch.autograd.gradcheck(f, (a, b), eps=1e-6, atol=1e-6)

    def test_float32_and_device_follow_input(self, name: str) -> None:
        a, b = (m.float() for m in maps(0))
        loss = FACTORIES[name]().float()
        pairs = batch()
        out32 = loss(a, b, PairSample(*(getattr(pairs, f.name).float() if getattr(pairs, f.name).is_floating_point()
                                        else getattr(pairs, f.name) for f in dataclasses.fields(PairSample))))
        assert out32.loss.dtype == torch.float32 and out32.loss.device == a.device
        out64 = FACTORIES[name]()(*maps(0), pairs)
        assert out32.loss.item() == pytest.approx(out64.loss.item(), rel=1e-4, abs=1e-5)

    def test_float16_autocast_is_finite(self, name: str) -> None:
        # Mixed-precision training: no -inf / NaN from masking, values close to float32.
        a, b = (m.float() for m in maps(0))
        pairs = dataclasses.replace(batch(), match_valid=batch().match_valid & torch.tensor([[True], [False]]))
        loss = FACTORIES[name]().float()
        ref = loss(a, b, pairs).loss
        a.requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.float16):
            out = loss(a, b, pairs).loss
        out.backward()
        assert torch.isfinite(a.grad).all()
        assert out.item() == pytest.approx(ref.item(), rel=0.05, abs=0.02)


def test_pyramid_gradcheck() -> None:
    pairs = random_pairs(1, 4, 2, 6, torch.Generator().manual_seed(8), valid_frac=0.8)
    g = torch.Generator().manual_seed(9)
    fine, fine_b = (torch.randn(1, 2, 6, 6, generator=g, dtype=F64, requires_grad=True) for _ in range(2))
    coarse, coarse_b = (torch.randn(1, 2, 3, 3, generator=g, dtype=F64, requires_grad=True) for _ in range(2))
    loss = PyramidLoss(PixelInfoNCELoss(temperature=0.5), [1.0, 0.5])
    assert torch.autograd.gradcheck(
        lambda fa, ca, fb, cb: loss([(fa, 1), (ca, 2)], [(fb, 1), (cb, 2)], pairs).loss,
        (fine, coarse, fine_b, coarse_b), eps=1e-6, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(FACTORIES))
def test_cuda_matches_cpu(name: str) -> None:
    a, b = maps(0)
    pairs = batch()
    cpu = FACTORIES[name]()(a, b, pairs).loss
    gpu = FACTORIES[name]().cuda()(a.cuda(), b.cuda(), pairs.to("cuda")).loss
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)
