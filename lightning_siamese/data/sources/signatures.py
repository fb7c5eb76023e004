"""Offline handwritten signatures, genuine and skilled forgeries, in the two common layouts.

- ``sign_data`` (ICDAR 2011 SigComp as redistributed on Kaggle): ``<writer>/`` holds that
  writer's genuine signatures and ``<writer>_forg/`` skilled forgeries of them.
- CEDAR: ``full_org/original_<writer>_<n>.png`` and ``full_forg/forgeries_<writer>_<n>.png``.

Either may sit in a folder, in a zip, or one level down in a zip in the folder (the layout's
folders may be nested under a top folder such as ``sign_data/``). Images are prepared as
SigNet does: grayscale, inverted (ink bright on black), resized to the configured size; the
division by the training set's standard deviation is the data module's.
"""

from __future__ import annotations

import contextlib
import re
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from lightning_siamese.data.sources.collection import (
    IMAGE_SUFFIXES,
    ImageCollection,
    decode_image,
)
from lightning_siamese.data.transforms.views import ScaledToFloat

FORGERY_SUFFIX = "_forg"


CEDAR_GENUINE, CEDAR_FORGED = "full_org", "full_forg"


CEDAR_NAME = re.compile(r"^(original|forgeries)_(\d+)_(\d+)$")


GENUINE, FORGED = "genuine", "forged"


@dataclass
class SignatureFiles:
    """Every signature image of a data set: ``files[writer][kind]`` lists image names.

    ``kind`` is ``"genuine"`` or ``"forged"``; names are member names of ``archive`` (a zip)
    or paths under ``root``.
    """

    root: Path
    layout: str
    files: dict[str, dict[str, list[str]]]
    archive: Path | None = None

    def where(self, name: str) -> str:
        return f"{self.archive}:{name}" if self.archive is not None else str(self.root / name)

    @property
    def writers(self) -> list[str]:
        return sorted(self.files)


def _image_names(root: Path) -> tuple[list[str], Path | None]:
    """Image files under ``root`` (a folder, a zip, or a folder whose only data is a zip)."""
    if root.is_file() and zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as archive:
            names = [n for n in archive.namelist() if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES]
        return sorted(names), root
    if not root.is_dir():
        raise FileNotFoundError(f"signature data {root} does not exist: expected a folder or a zip")
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        archives = sorted(root.glob("*.zip"))
        if len(archives) == 1:
            return _image_names(archives[0])
    return names, None


def _sign_data(names: list[str], where: str) -> dict[str, dict[str, list[str]]]:
    """``<base>/<writer>/*`` genuine and ``<base>/<writer>_forg/*`` forged, checked both ways."""
    folders: dict[PurePosixPath, list[str]] = defaultdict(list)
    for name in names:
        folders[PurePosixPath(name).parent].append(name)
    bases = sorted({str(folder.parent) for folder in folders})
    if len(bases) != 1:
        raise ValueError(
            f"{where}: expected every writer folder (<writer>/ and <writer>{FORGERY_SUFFIX}/) in one folder, "
            f"found image folders under {bases}: point root at one of them"
        )
    base = PurePosixPath(bases[0])
    genuine = {f.name: files for f, files in folders.items() if not f.name.endswith(FORGERY_SUFFIX)}
    forged = {f.name[: -len(FORGERY_SUFFIX)]: files for f, files in folders.items() if f.name.endswith(FORGERY_SUFFIX)}
    for writer in sorted(set(genuine) - set(forged)):
        raise ValueError(
            f"{where}: writer {writer} has {len(genuine[writer])} genuine signatures in {base / writer} but no forgeries: "
            f"expected images in {base / (writer + FORGERY_SUFFIX)}"
        )
    for writer in sorted(set(forged) - set(genuine)):
        raise ValueError(
            f"{where}: {base / (writer + FORGERY_SUFFIX)} holds {len(forged[writer])} forgeries of writer {writer}, "
            f"but that writer's genuine signatures are missing: expected images in {base / writer}"
        )
    return {w: {GENUINE: genuine[w], FORGED: forged[w]} for w in sorted(genuine)}


def _cedar(names: list[str], where: str) -> dict[str, dict[str, list[str]]]:
    """``full_org/original_<w>_<n>.png`` and ``full_forg/forgeries_<w>_<n>.png``."""
    files: dict[str, dict[str, list[str]]] = defaultdict(lambda: {GENUINE: [], FORGED: []})
    for name in names:
        path = PurePosixPath(name)
        if path.parent.name not in (CEDAR_GENUINE, CEDAR_FORGED):
            continue  # e.g. a README image beside the two folders
        match = CEDAR_NAME.match(path.stem)
        expected = "original" if path.parent.name == CEDAR_GENUINE else "forgeries"
        if match is None or match.group(1) != expected:
            raise ValueError(
                f"{where}: CEDAR file name {name} does not parse: expected {path.parent}/{expected}_<writer>_<n>"
                f"{path.suffix} (e.g. {expected}_12_3{path.suffix})"
            )
        files[str(int(match.group(2)))][GENUINE if expected == "original" else FORGED].append(name)
    for writer, kinds in sorted(files.items(), key=lambda item: int(item[0])):
        for kind, other, folder in ((GENUINE, FORGED, CEDAR_FORGED), (FORGED, GENUINE, CEDAR_GENUINE)):
            if not kinds[other]:
                raise ValueError(
                    f"{where}: CEDAR writer {writer} has {len(kinds[kind])} {kind} signatures but no {other} ones: "
                    f"expected {folder}/{'forgeries' if other == FORGED else 'original'}_{writer}_<n> files"
                )
    return dict(sorted(files.items(), key=lambda item: int(item[0])))


def find_signatures(root: str | Path, layout: str = "auto") -> SignatureFiles:
    """List a signature data set at ``root`` (folder or zip) in the ``sign_data`` or CEDAR layout.

    ``layout`` ``"auto"`` picks CEDAR when ``full_org``/``full_forg`` folders exist. Every
    writer must have both genuine signatures and forgeries: a writer with only one kind, or
    a CEDAR name that does not parse, is an error naming the path and what was expected.
    """
    if layout not in ("auto", "sign_data", "cedar"):
        raise ValueError(f"layout must be 'auto', 'sign_data' or 'cedar', got {layout!r}")
    root = Path(root)
    names, archive = _image_names(root)
    where = str(archive or root)
    if not names:
        raise FileNotFoundError(
            f"no signature images in {where}: expected <writer>/ and <writer>{FORGERY_SUFFIX}/ folders (sign_data) "
            f"or {CEDAR_GENUINE}/ and {CEDAR_FORGED}/ (CEDAR)"
        )
    is_cedar = any(PurePosixPath(n).parent.name in (CEDAR_GENUINE, CEDAR_FORGED) for n in names)
    chosen = layout if layout != "auto" else ("cedar" if is_cedar else "sign_data")
    files = _cedar(names, where) if chosen == "cedar" else _sign_data(names, where)
    if not files:
        raise FileNotFoundError(f"no CEDAR images in {where}: expected {CEDAR_GENUINE}/original_<w>_<n> files")
    return SignatureFiles(root if archive is None else archive.parent, chosen, files, archive)


def prepare_signature(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A grayscale uint8 scan ``[1, H, W]`` as SigNet takes it: inverted (ink bright), resized
    (antialiased, aspect not kept, as the paper) to ``size`` = (height, width)."""
    image = 255 - image
    if tuple(image.shape[-2:]) != tuple(size):
        image = (
            torch.nn.functional.interpolate(
                image[None].float(), size=tuple(size), mode="bilinear", antialias=True, align_corners=False
            )[0]
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    return image


def read_signature(data: bytes, where: str, size: Sequence[int], pixel_std: float) -> torch.Tensor:
    """One signature file as a trained SigNet takes it: float ``[1, 1, H, W]``, inverted, resized,
    divided by the training images' pixel standard deviation, as ``SignatureDataModule.prepare`` does."""
    image = prepare_signature(decode_image(data, where, None, 1)[0], tuple(size))
    return ScaledToFloat(1.0 / pixel_std)(image[None])


def load_signatures(files: SignatureFiles, size: tuple[int, int], writers: list[str] | None = None) -> ImageCollection:
    """Decode and prepare the signatures of ``writers`` (all by default).

    The collection has two classes per writer, ``<writer>/genuine`` and ``<writer>/forged``,
    and each writer is a group (so selecting groups selects writers).
    """
    writers = files.writers if writers is None else writers
    unknown = [w for w in writers if w not in files.files]
    if unknown:
        raise ValueError(f"writer(s) {unknown} are not in {files.where('')}; writers there: {files.writers}")
    images, labels, paths, class_names = [], [], [], []
    with contextlib.ExitStack() as stack:  # one open of the zip for every image
        archive = None if files.archive is None else stack.enter_context(zipfile.ZipFile(files.archive))
        for writer in writers:
            for kind in (GENUINE, FORGED):
                class_names.append(f"{writer}/{kind}")
                for name in files.files[writer][kind]:
                    where = files.where(name)
                    data = archive.read(name) if archive is not None else (files.root / name).read_bytes()
                    images.append(prepare_signature(decode_image(data, where, None, 1)[0], size))
                    labels.append(len(class_names) - 1)
                    paths.append(where)
    return ImageCollection.from_class_names(torch.stack(images), labels, class_names, paths)


def writers_and_kinds(collection: ImageCollection) -> tuple[np.ndarray, np.ndarray]:
    """Each image's writer (its group) and whether it is genuine, from the class names."""
    genuine_class = np.array([name.endswith(f"/{GENUINE}") for name in collection.class_names])
    labels = collection.labels.numpy()
    return collection.class_groups.numpy()[labels], genuine_class[labels]
