"""Labelled image collections in memory, and decoding image files into them.

A source turns files on disk (folders or the official zips) into an
:class:`ImageCollection`: every image decoded once into a uint8 tensor, an integer
class label per image, and a group per class (the Omniglot alphabet). Everything
downstream (samplers, episodes, data modules) works on these tensors.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)


T = TypeVar("T")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class ImageCollection:
    """Images with class labels; each class belongs to one group.

    Attributes:
        images: uint8 tensor ``[N, C, H, W]``.
        labels: int64 tensor ``[N]``, indices into ``class_names``.
        class_names: one name per class, e.g. ``"Greek/character01"``.
        class_groups: int64 tensor ``[num_classes]``, index into ``group_names``.
        group_names: e.g. alphabet names.
        instances: int64 tensor ``[N]`` naming who drew/took the image (Omniglot's
            drawer), or ``None`` when the source has no such notion.
        paths: where each image came from, for error messages and reports.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    class_groups: torch.Tensor
    group_names: list[str]
    instances: torch.Tensor | None
    paths: list[str]

    @classmethod
    def from_class_names(
        cls,
        images: torch.Tensor,
        labels: Sequence[int],
        class_names: list[str],
        paths: list[str],
        instances: Sequence[int] | None = None,
    ) -> ImageCollection:
        """A collection whose classes are named ``<group>/<class>``: each class's group is the
        first part of its name (a name without ``/`` is its own group); groups sorted by name."""
        group_of = [name.split("/")[0] for name in class_names]
        group_names = sorted(set(group_of))
        return cls(
            images=images,
            labels=torch.tensor(labels, dtype=torch.long),
            class_names=class_names,
            class_groups=torch.tensor([group_names.index(g) for g in group_of], dtype=torch.long),
            group_names=group_names,
            instances=None if instances is None else torch.tensor(instances, dtype=torch.long),
            paths=paths,
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def groups(self) -> torch.Tensor:
        """Group index of every image, ``[N]``."""
        return self.class_groups[self.labels]

    def select_groups(self, names: Sequence[str]) -> ImageCollection:
        """The sub-collection of the named groups, with classes renumbered from 0."""
        missing = [n for n in names if n not in self.group_names]
        if missing:
            raise ValueError(f"group(s) {missing} not found; available groups: {sorted(self.group_names)}")
        group_ids = torch.tensor([self.group_names.index(n) for n in names], dtype=torch.long)
        keep_classes = torch.isin(self.class_groups, group_ids).nonzero().flatten()
        return self.select_classes(keep_classes.tolist())

    def select_classes(self, class_ids: Sequence[int]) -> ImageCollection:
        """The sub-collection of the given classes, renumbered in the given order."""
        remap = torch.full((self.num_classes,), -1, dtype=torch.long)
        remap[torch.as_tensor(list(class_ids), dtype=torch.long)] = torch.arange(len(class_ids))
        keep = (remap[self.labels] >= 0).nonzero().flatten()
        used_groups = sorted({int(self.class_groups[c]) for c in class_ids})
        group_remap = {g: i for i, g in enumerate(used_groups)}
        return ImageCollection(
            images=self.images[keep],
            labels=remap[self.labels[keep]],
            class_names=[self.class_names[c] for c in class_ids],
            class_groups=torch.tensor([group_remap[int(self.class_groups[c])] for c in class_ids], dtype=torch.long),
            group_names=[self.group_names[g] for g in used_groups],
            instances=None if self.instances is None else self.instances[keep],
            paths=[self.paths[i] for i in keep.tolist()],
        )

    def select_images(self, keep: torch.Tensor) -> ImageCollection:
        """The images where the boolean mask ``keep`` ``[N]`` is true; classes and groups as they are."""
        index = keep.nonzero().flatten()
        return ImageCollection(
            images=self.images[index],
            labels=self.labels[index],
            class_names=self.class_names,
            class_groups=self.class_groups,
            group_names=self.group_names,
            instances=None if self.instances is None else self.instances[index],
            paths=[self.paths[i] for i in index.tolist()],
        )

    def with_rotated_classes(self, angles: Sequence[int]) -> ImageCollection:
        """Add each class rotated by each angle (multiples of 90 degrees) as a new class.

        A rotated character is a new character (Santoro et al. 2016; Snell et al. 2017);
        it stays in its class's group. Angle 0 keeps the originals.
        """
        bad = [a for a in angles if a % 90]
        if bad:
            raise ValueError(f"class rotations must be multiples of 90 degrees, got {bad}")
        turns = [(angle // 90) % 4 for angle in angles]
        return self._with_classes_made_by(
            [(f"@{angle}" if t else "", partial(torch.rot90, k=t, dims=(-2, -1))) for angle, t in zip(angles, turns)]
        )

    def with_mirrored_classes(self) -> ImageCollection:
        """Keep every class and add its mirror image (left to right) as a new class in the same group.

        A mirrored character is another character, as a rotated one is; with rotations by
        0, 90, 180 and 270 degrees this makes all eight symmetries of the square.
        """
        return self._with_classes_made_by([("", lambda images: images), ("@mirror", lambda images: images.flip(-1))])

    def _with_classes_made_by(
        self, transforms: Sequence[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]
    ) -> ImageCollection:
        """One copy of the collection per (name suffix, image transform), each copy's classes new classes."""
        parts = [
            ImageCollection(
                images=transform(self.images),
                labels=self.labels + k * self.num_classes,
                class_names=[f"{n}{suffix}" for n in self.class_names],
                class_groups=self.class_groups,
                group_names=self.group_names,
                instances=self.instances,
                paths=self.paths,
            )
            for k, (suffix, transform) in enumerate(transforms)
        ]
        return ImageCollection(
            images=torch.cat([p.images for p in parts]),
            labels=torch.cat([p.labels for p in parts]),
            class_names=[n for p in parts for n in p.class_names],
            class_groups=torch.cat([p.class_groups for p in parts]),
            group_names=self.group_names,
            instances=None
            if self.instances is None
            else torch.cat([self.instances for _ in parts]),  # every part keeps them
            paths=[path for p in parts for path in p.paths],
        )

    def summary(self) -> str:
        counts = torch.bincount(self.labels, minlength=self.num_classes)
        return (
            f"{len(self.group_names)} groups, {self.num_classes} classes, {len(self)} images "
            f"({int(counts.min())}-{int(counts.max())} per class), "
            f"image size {tuple(self.images.shape[1:])}"
        )


def crop_to_ink(image: Image.Image, fill: float) -> Image.Image:
    """The square around an image's dark ink, so that the ink's longer side spans ``fill`` of it.

    Drawings (Omniglot's characters: dark strokes on white) are centred on their ink's
    bounding box and scaled to a common size, the way MNIST's digits were normalised: a net
    then spends its pixels on the strokes rather than on white margins, and no longer has to
    learn where in the box, and how large, each hand drew. The square keeps the ink's aspect
    ratio; what lies outside the image is white. An image without ink comes back unchanged.
    """
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"ink_fill must be in (0, 1], got {fill}")
    ink = np.asarray(image.convert("L")) < 128
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    if len(rows) == 0:
        return image
    side = round(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / fill)
    top = round((rows[0] + rows[-1] + 1 - side) / 2)
    left = round((cols[0] + cols[-1] + 1 - side) / 2)
    padded = ImageOps.expand(image, border=side, fill="white")  # the square may reach past the edges
    return padded.crop((left + side, top + side, left + 2 * side, top + 2 * side))


def decode_image(
    data: bytes, where: str, size: int | None, channels: int = 1, ink_fill: float | None = None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Decode image bytes of any mode to uint8 ``[C, size, size]``, and the original (w, h).

    Transparency is flattened onto white. With ``ink_fill``, the image is first cropped to
    the square around its dark ink (:func:`crop_to_ink`). Raises ValueError naming
    ``where`` when the bytes are not a readable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            original = img.size
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img.alpha_composite(rgba)
            img = img.convert("L" if channels == 1 else "RGB")
            if ink_fill is not None:
                img = crop_to_ink(img, ink_fill).resize(
                    original if size is None else (size, size), Image.Resampling.BILINEAR
                )
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"cannot decode image {where}: {err}") from err
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1), original


def decode_or_skip(
    decode: Callable[[], T],
    where: str,
    skip_bad_images: bool,
    remedy: str,
    skipped: list[str] | None = None,
) -> T | None:
    """``decode()``, the one rule every loader applies to a file that is not a readable image.

    ``decode`` raises ValueError naming the file when it is not one (:func:`decode_image`
    does). Then, without ``skip_bad_images``, that is an error ending with ``remedy`` and how
    to skip instead; with it, a warning, ``where`` is appended to ``skipped``, and the result
    is ``None``.
    """
    try:
        return decode()
    except ValueError as err:
        if not skip_bad_images:
            raise ValueError(f"{err}. {remedy}, or set skip_bad_images: true") from err
        warnings.warn(f"skipping {err}", stacklevel=3)
        if skipped is not None:
            skipped.append(where)
        return None
