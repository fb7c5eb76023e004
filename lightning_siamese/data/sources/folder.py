"""Any folder-per-class image set: ``root/<class>/<image>``, classes possibly nested."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch

from lightning_siamese.data.sources.collection import (
    IMAGE_SUFFIXES,
    ImageCollection,
    decode_image,
    decode_or_skip,
)


def load_image_folder(
    root: str | Path,
    image_size: int | None = 105,
    channels: int = 1,
    skip_bad_images: bool = False,
    class_depth: int | str = "leaf",
) -> tuple[ImageCollection, dict]:
    """Load ``root/<class>/<image>`` (classes may nest: ``root/Benzos/Xanax_Pills/x.jpg``).

    With ``class_depth="leaf"`` a class is a folder that holds image files and its name is
    its path under ``root``; with ``class_depth=k`` it is the first ``k`` folder levels of
    that path, so one nested tree labels the same images at several granularities (the
    DarkShotLearning seed's 25 shape, 67 type and 100 type-and-shape classes). A class's
    group is its top-level folder. Images of any mode are converted to ``channels`` (1 or
    3) and resized to ``image_size`` x ``image_size`` (aspect ratio not kept). Hidden files
    are ignored, and so, with one warning, are files directly in ``root`` that the decoder
    cannot read (a README beside the class folders); an image directly in ``root`` is an
    error naming it. In a class folder, any file that is not a readable image is an error
    naming it, or, with ``skip_bad_images``, a warning. A ``class_depth`` deeper than a folder holding
    images is an error naming that folder.

    Returns the collection and a summary: image sizes before resizing, the number of
    classes at each depth the tree allows, what was skipped (``skipped``) and the non-image
    files ignored at the root (``ignored``).
    """
    root = Path(root)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    if class_depth != "leaf" and not (isinstance(class_depth, int) and class_depth >= 1):
        raise ValueError(f"class_depth must be 'leaf' or a folder depth of at least 1, got {class_depth!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root.resolve()} does not exist: expected root/<class>/<image>")
    images: list[torch.Tensor] = []
    labels: list[int] = []
    paths: list[str] = []
    sizes: list[tuple[int, int]] = []
    skipped: list[str] = []
    class_index: dict[str, int] = {}
    image_folders, ignored = _image_folders(root)
    if ignored:
        warnings.warn(
            f"ignoring {len(ignored)} file(s) directly in {root} that are not images: "
            f"{', '.join(f.name for f in ignored)}",
            stacklevel=2,
        )
    depths = class_depths(root, [folder for folder, _ in image_folders])
    if isinstance(class_depth, int) and class_depth > max(depths, default=0):  # validated: "leaf" or an int
        shallow = next(f for f, _ in image_folders if len(f.relative_to(root).parts) < class_depth)
        level = len(shallow.relative_to(root).parts)
        raise ValueError(
            f"class_depth={class_depth} is deeper than the folder tree: {shallow} holds images {level} folder "
            f"level(s) below {root}, expected root/<level 1>/.../<level {class_depth}>/<image>; this tree allows "
            f"class_depth {', '.join(map(str, depths)) or 'none'} or 'leaf'"
        )
    for folder, files in image_folders:
        parts = folder.relative_to(root).parts
        name = "/".join(parts[:class_depth] if isinstance(class_depth, int) else parts)
        decoded = 0
        for path in files:
            decoded_file = decode_or_skip(
                partial(_decode_file, path, image_size, channels),
                str(path),
                skip_bad_images,
                "Remove the file",
                skipped,
            )
            if decoded_file is None:
                continue
            image, size = decoded_file
            images.append(image)
            labels.append(class_index.setdefault(name, len(class_index)))
            paths.append(str(path))
            sizes.append(size)
            decoded += 1
        if decoded == 0:
            raise ValueError(f"class folder {folder} holds no readable image")
    if not images:
        raise ValueError(f"no class folders with images under {root}: expected root/<class>/<image>")
    if image_size is None and len({tuple(i.shape) for i in images}) > 1:
        raise ValueError(f"images under {root} differ in size: set image_size to resize them")
    widths, heights = zip(*sizes)
    summary = {
        "classes": len(class_index),
        "images": len(images),
        "original_width": (min(widths), max(widths)),
        "original_height": (min(heights), max(heights)),
        "classes_per_depth": depths,
        "leaf_classes": len(image_folders),
        "skipped": skipped,
        "ignored": [str(f) for f in ignored],
    }
    return ImageCollection.from_class_names(torch.stack(images), labels, list(class_index), paths), summary


def _decode_file(path: Path, image_size: int | None, channels: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """A class folder's file as an image: by its name first (``notes.txt`` is no image), then by the decoder."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path} is not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
    return decode_image(path.read_bytes(), str(path), image_size, channels)


def _image_folders(root: Path) -> tuple[list[tuple[Path, list[Path]]], list[Path]]:
    """Every folder under ``root`` that holds files, with its files (hidden ones ignored), sorted;
    and the files directly in ``root`` that are not images.

    Files beside the class folders that the decoder cannot read (a README, a licence, an index
    page: the AT&T face database ships a README beside ``s1/ ... s40/``) are not data; they are
    returned to be skipped with one warning. Images directly in ``root``, whatever their names,
    have no class: an error naming them, as is an empty folder.
    """
    found = []
    ignored: list[Path] = []
    folders = sorted(p for p in [root, *root.rglob("*")] if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
        subfolders = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if folder != root and not files and not subfolders:
            raise ValueError(f"empty class folder {folder}: expected at least one image in it")
        if not files:
            continue
        if folder == root:
            images = [f for f in files if _decodes(f)]
            if images:
                names = ", ".join(f.name for f in images[:10]) + (
                    f" and {len(images) - 10} more" if len(images) > 10 else ""
                )
                raise ValueError(f"image files directly in {root} ({names}): expected root/<class>/<image>")
            ignored = files
            continue
        found.append((folder, files))
    return found, ignored


def _decodes(path: Path) -> bool:
    """Whether the decoder reads ``path`` as an image (its name aside)."""
    try:
        decode_image(path.read_bytes(), str(path), None)
    except ValueError:
        return False
    return True


def class_depths(root: Path, image_folders: Sequence[Path]) -> dict[int, int]:
    """Number of classes at each ``class_depth`` the tree allows: from 1 to the depth of its
    shallowest image folder (a deeper one would leave that folder's images without a class)."""
    parts = [folder.relative_to(root).parts for folder in image_folders]
    shallowest = min((len(p) for p in parts), default=0)
    return {depth: len({p[:depth] for p in parts}) for depth in range(1, shallowest + 1)}


def depth_counts(summary: dict) -> str:
    """``load_image_folder``'s class counts by depth as text, e.g. ``"1: 30, 2: 964, leaf: 964"``."""
    counts = [f"{depth}: {n}" for depth, n in summary["classes_per_depth"].items()]
    return ", ".join([*counts, f"leaf: {summary['leaf_classes']}"])
