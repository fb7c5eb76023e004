"""MNIST through torchvision's ``MNIST`` dataset, checked before torchvision reads it.

torchvision looks for the four IDX files under ``<root>/MNIST/raw/`` (gzipped as
downloaded, plus the extracted copies it reads). :func:`load_mnist` can link them there
from a folder that holds the four ``.gz`` files, checks every file it finds (a truncated
``.gz`` fails with its path and what was expected, instead of a numpy error deep in
torchvision), extracts what is missing, and only then lets torchvision load (or, with
``download``, fetch) the data.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from lightning_siamese.data.sources.collection import ImageCollection

# (file, number of dimensions) of the four IDX files, in torchvision's order.
MNIST_FILES = (
    ("train-images-idx3-ubyte.gz", 3),
    ("train-labels-idx1-ubyte.gz", 1),
    ("t10k-images-idx3-ubyte.gz", 3),
    ("t10k-labels-idx1-ubyte.gz", 1),
)


IDX_UBYTE = 0x08


def _idx_size(header: bytes, ndim: int, where: str) -> int:
    """The byte size an IDX file of unsigned bytes with this header must have."""
    if len(header) < 4 + 4 * ndim or header[:3] != bytes([0, 0, IDX_UBYTE]) or header[3] != ndim:
        raise ValueError(
            f"{where} is not an MNIST IDX file: expected the magic number 0x0000{IDX_UBYTE:02x}{ndim:02x} "
            f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''}), got {header[:4].hex() or 'an empty file'}"
        )
    dims = np.frombuffer(header[4 : 4 + 4 * ndim], dtype=">i4")
    return 4 + 4 * ndim + int(np.prod(dims))


def _extracted_ok(path: Path, ndim: int) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        header = f.read(4 + 4 * ndim)
    return path.stat().st_size == _idx_size(header, ndim, str(path))


def _extract(gz: Path, ndim: int) -> None:
    """Decompress one ``.gz`` next to itself after checking it holds a whole IDX file."""
    shown = f"{gz} (-> {gz.resolve()})" if gz.is_symlink() else str(gz)
    expected = f"the gzipped MNIST IDX file {gz.name}, as torchvision downloads it"
    try:
        data = gzip.decompress(gz.read_bytes())
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(f"{shown} is truncated or not gzip data ({error}): expected {expected}") from None
    size = _idx_size(data[: 4 + 4 * ndim], ndim, shown)
    if len(data) != size:
        raise ValueError(
            f"{shown} holds {len(data)} bytes of IDX data, its header promises {size}: expected {expected}"
        )
    out = gz.with_suffix("")
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, out)


def _link(files: Path, raw: Path) -> None:
    """Make ``raw/<name>.gz`` point at ``files/<name>.gz`` for the four files."""
    missing = [name for name, _ in MNIST_FILES if not (files / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"MNIST folder {files} lacks {', '.join(missing)}: expected the four official .gz files there"
        )
    raw.mkdir(parents=True, exist_ok=True)
    for name, _ in MNIST_FILES:
        target, link = (files / name).resolve(), raw / name
        if link.is_symlink() and link.resolve() == target:
            continue
        if link.exists() or link.is_symlink():
            link.unlink()
        link.with_suffix("").unlink(missing_ok=True)  # extracted from another copy: redo from this one
        link.symlink_to(target)


def load_mnist(
    root: str | Path, files: str | Path | None = None, download: bool = False, image_size: int = 28
) -> tuple[ImageCollection, int]:
    """MNIST's 60,000 training and 10,000 test digits in one collection, and the number of training images.

    Digits stay as MNIST has them: bright strokes on black. Classes are named
    ``digits/0`` ... ``digits/9`` (one group); images are resized to ``image_size``.

    Args:
        root: torchvision's root: the files live in ``<root>/MNIST/raw/``.
        files: a folder holding the four ``.gz`` files; they are linked into
            ``<root>/MNIST/raw/`` (nothing is copied but the extracted files).
        download: let torchvision fetch missing files (checksums verified by torchvision).
    """
    from torchvision.datasets import MNIST
    from torchvision.transforms.v2.functional import resize

    raw = Path(root) / "MNIST" / "raw"
    if files is not None:
        _link(Path(files), raw)
    missing = []
    for name, ndim in MNIST_FILES:
        gz = raw / name
        if gz.exists() and not _extracted_ok(gz.with_suffix(""), ndim):
            _extract(gz, ndim)
        elif not _extracted_ok(gz.with_suffix(""), ndim):
            missing.append(name)
    if missing and not download:
        raise FileNotFoundError(
            f"MNIST not found in {raw}: missing {', '.join(missing)}. Expected the four official .gz files there "
            f"(or point `files` at a folder that holds them), or set download: true"
        )
    train, test = (MNIST(str(root), train=split, download=download) for split in (True, False))
    images = torch.cat([train.data, test.data])[:, None]
    if image_size != images.shape[-1]:
        images = resize(images, [image_size, image_size], antialias=True)
    labels = torch.cat([train.targets, test.targets])
    names = ["train"] * len(train.data) + ["t10k"] * len(test.data)
    index = list(range(len(train.data))) + list(range(len(test.data)))
    paths = [f"{raw}/{n}-images-idx3-ubyte#{i}" for n, i in zip(names, index)]
    collection = ImageCollection.from_class_names(images, labels.tolist(), [f"digits/{d}" for d in range(10)], paths)
    return collection, len(train.data)
