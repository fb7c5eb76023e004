"""Augmentations that run on whole batches of images.

Koch et al. (2015) distort each image of a pair independently with a random affine
transform T = (theta, rho_x, rho_y, s_x, s_y, t_x, t_y), each component included with
probability 0.5. torchvision's ``RandomAffine`` cannot express it exactly (its scale is
isotropic and its shear is an angle), so the matrices are built here and applied to the
whole batch at once with ``affine_grid``/``grid_sample``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KochAffine(nn.Module):
    """Koch's random affine distortion, drawn independently for every image of a batch.

    Args:
        rotation: maximum rotation in degrees (uniform in ``[-rotation, rotation]``).
        shear: maximum shear coefficient rho (uniform in ``[-shear, shear]``, x and y).
        scale: range of the x and y scale factors (each drawn separately).
        translation: maximum translation in pixels (x and y).
        p: probability of including each component.
    """

    def __init__(
        self,
        rotation: float = 10.0,
        shear: float = 0.3,
        scale: tuple[float, float] = (0.8, 1.2),
        translation: float = 2.0,
        p: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if scale[0] <= 0 or scale[0] > scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.rotation = rotation
        self.shear = shear
        self.scale = scale
        self.translation = translation
        self.p = p

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
        linear = rotate @ shear @ torch.diag_embed(s)
        return torch.cat([linear, t.unsqueeze(-1)], dim=-1)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Distort float images ``[B, C, H, W]`` (square); pixels moved in from outside are 0."""
        n, _, h, w = images.shape
        if h != w:
            raise ValueError(f"KochAffine expects square images, got {h}x{w}")
        forward = self.matrices(n, w, generator)
        # affine_grid maps output to input coordinates, in units of half the image size.
        inverse_linear = torch.linalg.inv(forward[:, :, :2])
        inverse_shift = -(inverse_linear @ forward[:, :, 2:]) * (2.0 / w)
        theta = torch.cat([inverse_linear, inverse_shift], dim=-1).to(images)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def extra_repr(self) -> str:
        return (
            f"rotation={self.rotation}, shear={self.shear}, scale={self.scale}, "
            f"translation={self.translation}, p={self.p}"
        )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., H, W]`` in 0..255 to float32 in [0, 1]."""
    return images.float().div_(255.0)

