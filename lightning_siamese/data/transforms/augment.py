"""Training augmentation: Koch et al.'s affine distortions and DarkShotLearning's fixed operations."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import nn


class KochAffine(nn.Module):
    """Koch's random affine distortion, drawn independently for every image of a batch.

    Args:
        rotation: maximum rotation in degrees (uniform in ``[-rotation, rotation]``).
        shear: maximum shear coefficient rho (uniform in ``[-shear, shear]``, x and y).
        scale: range of the x and y scale factors (each drawn separately).
        translation: maximum translation in pixels (x and y).
        p: probability of including each component.
        flip: probability of mirroring an image left to right (not in Koch's; for faces).
        elastic: strength alpha of an elastic distortion added to the affine one (not in
            Koch's; Simard et al. 2003): every pixel moves by alpha times a uniform(-1, 1)
            noise field smoothed by a Gaussian of ``elastic_sigma`` pixels, drawn per image.
            It bends strokes the way different hands draw them. 0 (default) turns it off.
        elastic_sigma: smoothness of the elastic field in pixels.
    """

    def __init__(
        self,
        rotation: float = 10.0,
        shear: float = 0.3,
        scale: tuple[float, float] = (0.8, 1.2),
        translation: float = 2.0,
        p: float = 0.5,
        flip: float = 0.0,
        elastic: float = 0.0,
        elastic_sigma: float = 4.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if not 0.0 <= flip <= 1.0:
            raise ValueError(f"flip must be in [0, 1], got {flip}")
        if elastic < 0 or elastic_sigma <= 0:
            raise ValueError(f"elastic must be >= 0 and elastic_sigma > 0, got {elastic} and {elastic_sigma}")
        if scale[0] <= 0 or scale[0] > scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.rotation = rotation
        self.shear = shear
        self.scale = scale
        self.translation = translation
        self.p = p
        self.flip = flip
        self.elastic = elastic
        self.elastic_sigma = elastic_sigma

    def matrices(self, n: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Forward transforms ``[n, 2, 3]`` in pixel units about the image centre."""

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            return low + (high - low) * torch.rand(*shape, generator=generator)

        def keep(*shape: int) -> torch.Tensor:
            return (torch.rand(*shape, generator=generator) < self.p).float()

        theta = torch.deg2rad(uniform(-self.rotation, self.rotation, n)) * keep(n)
        rho = uniform(-self.shear, self.shear, n, 2) * keep(n, 1)
        s = 1 + (uniform(*self.scale, n, 2) - 1) * keep(n, 1)
        t = uniform(-self.translation, self.translation, n, 2) * keep(n, 1)

        cos, sin = torch.cos(theta), torch.sin(theta)
        rotate = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        shear = torch.ones(n, 2, 2)
        shear[:, 0, 1], shear[:, 1, 0] = rho[:, 0], rho[:, 1]
        if self.flip > 0:  # drawn only when asked, so flip-free streams stay as they were
            s[:, 0] *= 1 - 2 * (torch.rand(n, generator=generator) < self.flip).float()
        linear = rotate @ shear @ torch.diag_embed(s)
        return torch.cat([linear, t.unsqueeze(-1)], dim=-1)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Distort float images ``[B, C, H, W]`` (square); pixels moved in from outside are 0."""
        forward = self.matrices(len(images), images.shape[-1], generator)
        # drawn only when asked, so elastic-free streams stay as they were
        field = self.elastic_field(len(images), images.shape[-1], generator) if self.elastic > 0 else None
        return self.warp(images, forward, field)

    def elastic_field(self, n: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Smooth random displacements ``[n, size, size, 2]`` in pixels (x, y)."""
        noise = torch.rand(n, 2, size, size, generator=generator) * 2 - 1
        kernel = 2 * int(3 * self.elastic_sigma) + 1
        smooth = TF.gaussian_blur(noise, [kernel, kernel], [self.elastic_sigma, self.elastic_sigma])
        # blurring shrinks the noise; rescale it to unit peak so alpha reads as pixels
        smooth = smooth / smooth.flatten(1).abs().amax(1).clamp_min(1e-8)[:, None, None, None]
        return self.elastic * smooth.permute(0, 2, 3, 1)

    @staticmethod
    def warp(images: torch.Tensor, forward: torch.Tensor, field: torch.Tensor | None = None) -> torch.Tensor:
        """Apply forward transforms ``[B, 2, 3]`` (from :meth:`matrices`) to square images, in one call.

        Separate from drawing them, so transforms drawn one image pair at a time (each
        with its own seed) still cost a single ``grid_sample`` per batch. ``field``
        (``[B, H, W, 2]``, pixels, from :meth:`elastic_field`) moves each output pixel's
        sampling point further.
        """
        h, w = images.shape[-2:]
        if h != w:
            raise ValueError(f"KochAffine expects square images, got {h}x{w}")
        # affine_grid maps output to input coordinates, in units of half the image size.
        inverse_linear = torch.linalg.inv(forward[:, :, :2])
        inverse_shift = -(inverse_linear @ forward[:, :, 2:]) * (2.0 / w)
        theta = torch.cat([inverse_linear, inverse_shift], dim=-1).to(images)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        if field is not None:
            grid = grid + field.to(grid) * (2.0 / w)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def extra_repr(self) -> str:
        return (
            f"rotation={self.rotation}, shear={self.shear}, scale={self.scale}, "
            f"translation={self.translation}, p={self.p}, flip={self.flip}, elastic={self.elastic}, "
            f"elastic_sigma={self.elastic_sigma}"
        )


class DarkShotAugment(nn.Module):
    """The DarkShotLearning seed's six augmentations, for parity runs (off by default).

    Each image gets one of: rotation by uniform(-50, 30) degrees, horizontal flip, vertical
    flip, a crop of 0-30% from each side resized back, gamma contrast 2.0, additive Gaussian
    noise (mean 10, std 25 on the 0-255 scale); or stays as it is with probability
    ``p_identity``. (The seed wrote six fixed augmented copies of every image to disk;
    here one is drawn per image per batch, so the same six operations reach training on
    the fly.)
    """

    OPS = ("rotate", "hflip", "vflip", "crop", "gamma", "noise")

    def __init__(self, p_identity: float = 1 / 7) -> None:
        super().__init__()
        if not 0.0 <= p_identity <= 1.0:
            raise ValueError(f"p_identity must be in [0, 1], got {p_identity}")
        self.p_identity = p_identity

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Float images ``[B, C, H, W]`` in [0, 1]."""
        n, _, h, w = images.shape
        choice = torch.randint(len(self.OPS), (n,), generator=generator)
        keep = torch.rand(n, generator=generator) < self.p_identity
        out = images.clone()
        for i in range(n):
            if keep[i]:
                continue
            op = self.OPS[int(choice[i])]
            x = images[i : i + 1]
            if op == "rotate":
                angle = float(-50 + 80 * torch.rand(1, generator=generator))
                x = TF.rotate(x, angle, interpolation=TF.InterpolationMode.BILINEAR)
            elif op == "hflip":
                x = x.flip(-1)
            elif op == "vflip":
                x = x.flip(-2)
            elif op == "crop":
                top, bottom, left, right = (0.3 * torch.rand(4, generator=generator)).tolist()
                t, b = int(top * h), h - int(bottom * h)
                lo, r = int(left * w), w - int(right * w)
                x = F.interpolate(x[..., t:b, lo:r], size=(h, w), mode="bilinear", align_corners=False)
            elif op == "gamma":
                x = x.clamp(0, 1).pow(2.0)
            else:
                noise = (10.0 + 25.0 * torch.randn(x.shape, generator=generator)) / 255.0
                x = (x + noise).clamp(0, 1)
            out[i] = x[0]
        return out
