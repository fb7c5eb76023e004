"""Image files for a trained model: found in folders, read and prepared as its data module prepared its images."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import torch

from lightning_siamese.data.sources.collection import IMAGE_SUFFIXES, decode_image
from lightning_siamese.data.sources.lfw import fit_image
from lightning_siamese.data.sources.signatures import read_signature
from lightning_siamese.data.transforms.views import to_float


def read_image(path: str, data: dict) -> torch.Tensor:
    """One image file, prepared as the checkpoint's data module prepared its images: float ``[1, C, H, W]``."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    if data.get("kind") == "signatures":  # SigNet's preparation, with the training set's pixel std
        return read_signature(file.read_bytes(), path, data["image_size"], data["pixel_std"])
    channels = data.get("channels", 1)
    ink_fill = data.get("ink_fill")  # Omniglot's modules may centre and scale each drawing on its strokes
    decoded = decode_image(file.read_bytes(), path, data.get("image_size") if ink_fill else None, channels, ink_fill)[0]
    image = fit_image(decoded, data.get("crop"), data.get("image_size"), path)
    if data.get("invert", False):  # Omniglot's modules make strokes bright on black
        image = 255 - image
    return to_float(image[None])


def image_paths(inputs: list[str]) -> list[str]:
    """Image files named directly, or found (recursively, sorted) in the folders named."""
    paths = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"folder {name} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif path.is_file():
            paths.append(name)
        else:
            raise FileNotFoundError(f"image {name} does not exist")
    return paths


def labelled_images(folders: Sequence[str], list_file: str | None = None) -> list[tuple[str, str]]:
    """``(path, class)`` pairs from folders and from a list file.

    In a folder, each folder that holds images is a class named by its path under the folder
    given (``people/alice/1.jpg`` under ``people`` is class ``alice``; Omniglot's
    ``Angelic/character01`` under ``images_evaluation``), and images lying in the folder
    given itself belong to a class named after it. A list file has one ``path,class`` line per
    image (CSV; relative paths are relative to the list file's folder; blank lines and lines
    starting with ``#`` are skipped).
    """
    items: list[tuple[str, str]] = []
    for name in folders:
        folder = Path(name)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"folder {name} does not exist (expected a folder of class folders or of one class's images)"
            )
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise ValueError(f"folder {name} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        for path in found:
            parent = path.parent.relative_to(folder)
            items.append((str(path), parent.as_posix() if parent.parts else folder.resolve().name))
    if list_file is not None:
        listed = Path(list_file)
        if not listed.is_file():
            raise FileNotFoundError(f"list file {list_file} does not exist")
        with open(listed, newline="") as file:
            for number, row in enumerate(csv.reader(file), 1):
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                if len(row) != 2 or not row[0].strip() or not row[1].strip():
                    raise ValueError(f"{list_file} line {number}: expected 'path,class', got {','.join(row)!r}")
                path = Path(row[0].strip())
                items.append((str(path if path.is_absolute() else listed.parent / path), row[1].strip()))
    if not items:
        raise ValueError("nothing to enroll: name folders of class folders, or a --list file of 'path,class' lines")
    return items
