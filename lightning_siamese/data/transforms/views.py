"""Evaluation-time views of images: float conversion, flips and shifts, test-time alignment."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lightning_siamese.data.transforms.augment import KochAffine


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., H, W]`` in 0..255 to float32 in [0, 1]."""
    return images.float().div_(255.0)


@dataclass(frozen=True)
class ScaledToFloat:
    """:func:`to_float`, then times ``scale``: SigNet's division by the training pixel standard deviation.

    A plain object rather than a closure, so a DataLoader worker can pickle the evaluation set
    that holds it.
    """

    scale: float

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return to_float(images) * self.scale


def evaluation_views(images: torch.Tensor, flip: bool = False, shift: int = 0) -> list[torch.Tensor]:
    """The image batch, its four copies shifted by ``shift`` px (edges replicated), and all their mirrors if ``flip``."""
    views = [images]
    if shift:
        padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
        h, w = images.shape[-2:]
        for top, left in ((0, shift), (2 * shift, shift), (shift, 0), (shift, 2 * shift)):
            views.append(padded[..., top : top + h, left : left + w])
    return views + [view.flip(-1) for view in views] if flip else views


def embed_views(
    encode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, flip: bool = False, shift: int = 0
) -> torch.Tensor:
    """Test-time augmentation: the mean embedding of :func:`evaluation_views` (just ``encode(images)`` without it)."""
    views = evaluation_views(images, flip, shift)
    if len(views) == 1:
        return encode(images)
    return torch.stack([encode(view) for view in views]).mean(0)


@dataclass(frozen=True)
class AlignmentViews:
    """The small affine transforms under which test-time alignment matches two images.

    Every image is embedded under each view; the similarity of two images is then the best
    over all pairs of their views (:class:`~lightning_siamese.evaluation.oneshot.AlignedSimilarity`),
    so a query meets each support image in the relative position, size and slant where the
    two match best. This differs from ``eval_shift``, which averages the embeddings of an
    image's shifted copies: averaging blurs, alignment picks. The views: every shift in
    ``shifts`` x ``shifts`` (pixels, x and y) at every scale in ``scales``, plus a rotation
    by each of ``angles`` (degrees, about the centre, unshifted and unscaled). The defaults
    give 3 x 3 x 3 + 4 = 31 views.

    ``rotations`` and ``mirrors`` add symmetries: both images are turned by each quarter-turn
    (and mirrored), aligned again, and the best-pair scores are averaged over these symmetries.
    A net trained with ``class_rotations`` and ``class_mirrors`` (each turned or mirrored
    character a class of its own) has learnt every orientation separately, so the eight are
    an ensemble of nearly independent judges: +1.5 points on the Omniglot recipe without
    alignment, +0.9 on top of it. Not for nets trained upright only, which have never seen a
    turned image. Scoring costs one embedding per view, symmetry and image, and
    ``views ** 2`` similarities per symmetry and pair; ``len()`` is views x symmetries.
    """

    shifts: Sequence[int] = (-1, 0, 1)
    scales: Sequence[float] = (0.92, 1.0, 1.08)
    angles: Sequence[float] = (-8.0, -4.0, 4.0, 8.0)
    rotations: bool = False
    mirrors: bool = False

    def __post_init__(self) -> None:
        if 0 not in self.shifts or 1.0 not in self.scales:
            raise ValueError(
                f"alignment views must include the image itself: shifts need 0 and scales 1.0, got shifts "
                f"{list(self.shifts)} and scales {list(self.scales)}"
            )
        if any(scale <= 0 for scale in self.scales):
            raise ValueError(f"alignment scales must be > 0, got {list(self.scales)}")

    def matrices(self) -> torch.Tensor:
        """Forward transforms ``[V, 2, 3]`` in pixels about the image centre, as :meth:`KochAffine.warp` takes them."""
        views = [(dx, dy, scale, 0.0) for dy in self.shifts for dx in self.shifts for scale in self.scales]
        views += [(0, 0, 1.0, angle) for angle in self.angles]
        out = []
        for dx, dy, scale, angle in views:
            cos, sin = math.cos(math.radians(angle)) * scale, math.sin(math.radians(angle)) * scale
            out.append([[cos, -sin, float(dx)], [sin, cos, float(dy)]])
        return torch.tensor(out)

    @property
    def views(self) -> int:
        """Alignment views per symmetry."""
        return len(self.shifts) ** 2 * len(self.scales) + len(self.angles)

    @property
    def symmetries(self) -> int:
        """Quarter-turns (4 with ``rotations``) times mirrorings (2 with ``mirrors``)."""
        return (4 if self.rotations else 1) * (2 if self.mirrors else 1)

    def __len__(self) -> int:
        return self.views * self.symmetries

    def __str__(self) -> str:
        return f"{self.views} views" + (f" x {self.symmetries} symmetries" if self.symmetries > 1 else "")

    def as_dict(self) -> dict:
        """For JSON records: ``views`` (all of them, x symmetries) and the settings."""
        settings = {k: list(getattr(self, k)) for k in ("shifts", "scales", "angles")}
        return {"views": len(self), **settings, "rotations": self.rotations, "mirrors": self.mirrors}

    @property
    def identity(self) -> int:
        """The index of the image itself (no shift, scale 1, upright) among the views: its plain embedding."""
        centre = list(self.shifts).index(0)
        return (centre * len(self.shifts) + centre) * len(self.scales) + list(self.scales).index(1.0)

    def unmoved(self, table: torch.Tensor) -> torch.Tensor:
        """The plain embeddings ``[N, D]`` in a table of every view's side by side ``[N, len(self) * D]`` (a copy)."""
        return table.unflatten(-1, (len(self), -1))[:, self.identity].clone()

    def apply(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Float images ``[B, C, H, W]`` under every view (pixels moved in from outside are 0), symmetry by symmetry."""
        if images.shape[-1] != images.shape[-2]:  # the warps and the quarter-turns are defined on squares
            raise ValueError(f"test-time alignment needs square images, got {images.shape[-2]}x{images.shape[-1]}")
        out = []
        for mirror in (False, True)[: 2 if self.mirrors else 1]:
            for turns in range(4 if self.rotations else 1):
                turned = torch.rot90(images.flip(-1) if mirror else images, turns, (-2, -1))
                out += [KochAffine.warp(turned, forward.expand(len(images), 2, 3)) for forward in self.matrices()]
        return out

    def embed(self, embed: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """``embed`` of float images under every view, side by side: ``[B, len(self) * D]``, as
        :class:`~lightning_siamese.evaluation.oneshot.AlignedSimilarity` takes them."""
        return torch.cat([embed(view) for view in self.apply(images)], -1)
