"""Two views of one image through random geometric + photometric augmentation, with the exact
pixel mapping between them (the self-supervision signal: the inverse of each warp is known).
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as KA
import torch

from ..checks import check_shape
from ..geometry.camera import pixel_grid


@dataclass
class AugmentConfig:
    # Fraction of the image area kept by the random resized crop (min, max).
    crop_scale: tuple[float, float] = (0.45, 1.0)
    # Aspect-ratio range of the random resized crop.
    crop_ratio: tuple[float, float] = (0.75, 1.333)
    # Max in-plane rotation in degrees.
    degrees: float = 30.0
    # Max translation as a fraction of width/height.
    translate: float = 0.1
    # Isotropic scale range of the affine warp.
    scale: tuple[float, float] = (0.8, 1.2)
    # Max shear in degrees.
    shear: float = 10.0
    # Probability of the affine warp.
    affine_p: float = 0.8
    # Perspective distortion strength (0 disables) and probability.
    perspective: float = 0.3
    perspective_p: float = 0.5
    # Probability of a horizontal flip (the same physical point still maps exactly).
    hflip_p: float = 0.25
    # Colour jitter strengths (brightness, contrast, saturation, hue) and probability.
    jitter: tuple[float, float, float, float] = (0.35, 0.35, 0.35, 0.05)
    jitter_p: float = 0.8
    # Gaussian blur probability (kernel 5, sigma 0.1-1.5).
    blur_p: float = 0.2
    # Lighting and camera changes beyond colour jitter, each drawn per view with probability illumination_p
    # (0 = off, the default of the models trained before it): a gamma curve (range `gamma`), a white balance
    # shift along the black-body colour temperatures, a linear shading gradient across the image (gain range
    # `shading_gain`) and Gaussian sensor noise (std `noise_std` in [0, 1] intensity). Photos of one object
    # taken at different times or by different cameras differ this way; colour jitter alone is a global
    # affine change of brightness and contrast.
    illumination_p: float = 0.0
    gamma: tuple[float, float] = (0.55, 1.8)
    shading_gain: tuple[float, float] = (0.05, 0.4)
    noise_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("affine_p", "perspective_p", "hflip_p", "jitter_p", "blur_p", "illumination_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be a probability in [0, 1], got {value}")
        if not 0.0 < self.gamma[0] <= self.gamma[1]:
            raise ValueError(f"augment.gamma must be a range 0 < low <= high, got {self.gamma}")
        if not 0.0 <= self.shading_gain[0] <= self.shading_gain[1] <= 1.0:
            raise ValueError(f"augment.shading_gain must be a range in [0, 1], got {self.shading_gain}")
        if self.noise_std < 0:
            raise ValueError(f"augment.noise_std must be >= 0, got {self.noise_std}")


class TwoViewAugmenter:
    """Makes view A and view B of an image and the dense map from A's pixels to B's.

    Each view runs through its own draw of one kornia AugmentationSequential; `transform_matrix`
    (B, 3, 3) maps original pixel (x, y) (centres at integers) into the view, so a pixel of A maps
    to B by ``M_B @ inv(M_A)``. Pixels of A whose source lies outside the original image (padding)
    or that land outside B are invalid. Draws are a pure function of `seed`.
    """

    def __init__(self, size: tuple[int, int], config: AugmentConfig | None = None) -> None:
        c = config or AugmentConfig()
        self.size = (int(size[0]), int(size[1]))
        geometric: list[torch.nn.Module] = [
            KA.RandomResizedCrop(self.size, scale=c.crop_scale, ratio=c.crop_ratio, p=1.0),
            KA.RandomAffine(c.degrees, translate=(c.translate, c.translate), scale=c.scale, shear=c.shear,
                            p=c.affine_p),
        ]
        if c.perspective > 0:
            geometric.append(KA.RandomPerspective(c.perspective, p=c.perspective_p))
        if c.hflip_p > 0:
            geometric.append(KA.RandomHorizontalFlip(p=c.hflip_p))
        photometric: list[torch.nn.Module] = []
        if c.jitter_p > 0:
            photometric.append(KA.ColorJitter(*c.jitter, p=c.jitter_p))
        if c.blur_p > 0:
            photometric.append(KA.RandomGaussianBlur((5, 5), (0.1, 1.5), p=c.blur_p))
        if c.illumination_p > 0:
            photometric += [
                KA.RandomGamma(tuple(c.gamma), p=c.illumination_p),
                KA.RandomPlanckianJitter("blackbody", p=c.illumination_p),
                KA.RandomLinearIllumination(tuple(c.shading_gain), p=c.illumination_p),
                KA.RandomGaussianNoise(std=c.noise_std, p=c.illumination_p),
            ]
        self.geometric = KA.AugmentationSequential(*geometric, data_keys=["input"])
        self.photometric = KA.AugmentationSequential(*photometric, data_keys=["input"]) if photometric else None

    def view(self, image: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One augmented view.

        The geometric ops warp the image together with a channel of ones, whose warped value says which
        view pixels come from inside every intermediate image (a crop followed by a rotation brings in
        source pixels that lie outside the crop window: they are padding, not image).

        Shape:
            image: (1, 3, H0, W0) float in [0, 1] -> view (1, 3, H, W), matrix (1, 3, 3) original -> view,
            coverage (H, W) bool.
        """
        check_shape(image, (1, 3, "H0", "W0"), "image")
        x = torch.cat([image, torch.ones_like(image[:, :1])], dim=1)
        # kornia samples its parameters from torch's global RNG: fork it so the draw depends on the seed only.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.geometric(x)
            matrix = self.geometric.transform_matrix
            rgb = out[:, :3]
            if self.photometric is not None:
                rgb = self.photometric(rgb)
        if matrix is None:  # no geometric op fired: identity mapping
            matrix = torch.eye(3, device=image.device).unsqueeze(0)
        return rgb.clamp(0.0, 1.0), matrix.to(image.dtype), out[0, 3] > 0.999

    def __call__(self, image: torch.Tensor, seed: int) -> TwoViews:
        """Views A and B of `image` (1, 3, H0, W0) and their dense correspondence."""
        img_a, m_a, cov_a = self.view(image, seed * 2 + 1)
        img_b, m_b, cov_b = self.view(image, seed * 2 + 2)
        src_hw = (image.shape[-2], image.shape[-1])
        map_ab, valid_a = dense_map(m_a[0], m_b[0], src_hw, self.size, self.size, cov_a, cov_b)
        _, valid_b = dense_map(m_b[0], m_a[0], src_hw, self.size, self.size, cov_b, cov_a)
        return TwoViews(img_a[0], img_b[0], map_ab, valid_a, valid_b, m_a[0], m_b[0])


@dataclass
class TwoViews:
    """Views A and B with their correspondence.

    Shape:
        image_a, image_b: (3, H, W). map_ab: (H, W, 2) pixel (x, y) in B for every pixel of A.
        valid_a: (H, W) bool, pixel of A seen in B. valid_b: (H, W) bool, pixel of B seen in A.
        matrix_a, matrix_b: (3, 3) original -> view.
    """

    image_a: torch.Tensor
    image_b: torch.Tensor
    map_ab: torch.Tensor
    valid_a: torch.Tensor
    valid_b: torch.Tensor
    matrix_a: torch.Tensor
    matrix_b: torch.Tensor


def apply_homography(matrix: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """(3, 3) homography applied to (..., 2) points."""
    ones = torch.ones_like(uv[..., :1])
    p = torch.cat([uv, ones], dim=-1) @ matrix.transpose(0, 1)
    return p[..., :2] / p[..., 2:3]


def in_bounds(uv: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(..., 2) points -> (...) bool: inside the image area [-0.5, W-0.5] x [-0.5, H-0.5]."""
    h, w = hw
    x, y = uv[..., 0], uv[..., 1]
    return (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


def dense_map(m_a: torch.Tensor, m_b: torch.Tensor, src_hw: tuple[int, int], hw_a: tuple[int, int],
              hw_b: tuple[int, int], coverage_a: torch.Tensor | None = None,
              coverage_b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Map every pixel of view A to view B through the source image.

    Args:
        m_a, m_b: (3, 3) source -> view matrices.
        coverage_a, coverage_b: optional (H, W) bool, view pixels that show image content (not padding).
    Returns:
        map_ab (Ha, Wa, 2) and valid (Ha, Wa): the pixel shows content in A, its source lies in the source
        image, and it lands on a content pixel of B.
    """
    check_shape(m_a, (3, 3), "m_a")
    check_shape(m_b, (3, 3), "m_b")
    grid = pixel_grid(*hw_a, device=m_a.device, dtype=torch.float64)
    src = apply_homography(torch.linalg.inv(m_a.double()), grid)
    uv_b = apply_homography(m_b.double(), src)
    valid = in_bounds(src, src_hw) & in_bounds(uv_b, hw_b) & torch.isfinite(uv_b).all(-1)
    if coverage_a is not None:
        valid &= coverage_a
    if coverage_b is not None:
        ib = uv_b.round().long()
        ix = ib[..., 0].clamp(0, hw_b[1] - 1)
        iy = ib[..., 1].clamp(0, hw_b[0] - 1)
        valid &= coverage_b[iy, ix]
    return uv_b.float(), valid
