"""Labelled image collections, loaded into memory once.

A source turns files on disk (folders or the official zips) into an
:class:`ImageCollection`: every image decoded once into a uint8 tensor, an integer
class label per image, and a group per class (the Omniglot alphabet).  Everything
downstream (samplers, episodes, data modules) works on these tensors.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from lightning_siamese.data.samplers import Episodes

log = logging.getLogger(__name__)

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
            raise ValueError(
                f"group(s) {missing} not found; available groups: {sorted(self.group_names)}"
            )
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
            class_groups=torch.tensor(
                [group_remap[int(self.class_groups[c])] for c in class_ids], dtype=torch.long
            ),
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
            [(f"@{angle}" if t else "", lambda images, t=t: torch.rot90(images, t, dims=(-2, -1))) for angle, t in zip(angles, turns)]
        )

    def with_mirrored_classes(self) -> ImageCollection:
        """Keep every class and add its mirror image (left to right) as a new class in the same group.

        A mirrored character is another character, as a rotated one is; with rotations by
        0, 90, 180 and 270 degrees this makes all eight symmetries of the square.
        """
        return self._with_classes_made_by([("", lambda images: images), ("@mirror", lambda images: images.flip(-1))])

    def _with_classes_made_by(self, transforms: Sequence[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]) -> ImageCollection:
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
            instances=None if self.instances is None else torch.cat([p.instances for p in parts]),
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
                img = crop_to_ink(img, ink_fill).resize(original if size is None else (size, size), Image.Resampling.BILINEAR)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"cannot decode image {where}: {err}") from err
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1), original


# --- Omniglot -------------------------------------------------------------------------

OMNIGLOT_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
# Checksums of the official zips (the same ones torchvision verifies). The small sets have
# no published checksum; they are downloaded unverified, with a warning.
OMNIGLOT_MD5: dict[str, str | None] = {
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
    "images_background_small1": None,
    "images_background_small2": None,
}
# Koch et al. validate on 10 of the 20 evaluation alphabets and test on the other 10. These
# are the 10 used for validation here (the ones shipped for development); the rest are test.
OMNIGLOT_VAL_ALPHABETS = [
    "Angelic",
    "Atemayar_Qelisayer",
    "Aurek-Besh",
    "Avesta",
    "Keble",
    "Mongolian",
    "Oriya",
    "Sylheti",
    "Syriac_(Serto)",
    "ULOG",
]
OMNIGLOT_TEST_ALPHABETS = [
    "Atlantean",
    "Ge_ez",
    "Glagolitic",
    "Gurmukhi",
    "Kannada",
    "Malayalam",
    "Manipuri",
    "Old_Church_Slavonic_(Cyrillic)",
    "Tengwar",
    "Tibetan",
]

_OMNIGLOT_FILE = re.compile(r"^(?:.*/)?([^/]+)/(character\d+)/(\d+)_(\d+)\.png$")


def find_omniglot_set(root: Path, name: str) -> Path | None:
    """Locate one Omniglot set under ``root``: an extracted folder or the official zip.

    Accepted layouts: ``root/<name>/``, ``root/<name>.zip`` and torchvision's
    ``root/omniglot-py/<name>/``.
    """
    for base in (root, root / "omniglot-py"):
        for candidate in (base / name, base / f"{name}.zip"):
            if candidate.exists():
                return candidate
    return None


def download_omniglot(
    root: Path,
    name: str,
    base_url: str | None = None,
    md5: dict[str, str | None] | None = None,
) -> Path:
    """Download ``<name>.zip`` into ``root`` (checksum verified).

    ``base_url`` and ``md5`` default to the official repository and checksums.
    """
    from torchvision.datasets.utils import download_url

    base_url = OMNIGLOT_URL if base_url is None else base_url
    md5 = OMNIGLOT_MD5 if md5 is None else md5
    if name not in md5:
        raise ValueError(f"unknown Omniglot set {name!r}; known sets: {sorted(md5)}")
    if md5[name] is None:
        warnings.warn(f"{name}.zip has no published checksum; downloading it unverified")
    download_url(f"{base_url}/{name}.zip", str(root), filename=f"{name}.zip", md5=md5[name])
    return root / f"{name}.zip"


def locate_omniglot_set(root: str | Path, name: str, download: bool = False) -> Path:
    """Path of one Omniglot set under ``root``, downloaded first when absent and allowed."""
    root = Path(root)
    location = find_omniglot_set(root, name)
    if location is not None:
        return location
    if not download:
        raise FileNotFoundError(
            f"Omniglot set {name!r} not found under {root.resolve()}: expected "
            f"{root / (name + '.zip')} or the extracted folder {root / name}. "
            f"Place the official file there, or set download: true "
            f"(source: {OMNIGLOT_URL}/{name}.zip)."
        )
    root.mkdir(parents=True, exist_ok=True)
    return download_omniglot(root, name)


def _iter_set_files(location: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, bytes)`` for every file in an Omniglot set (folder or zip)."""
    if location.suffix == ".zip":
        try:
            archive = zipfile.ZipFile(location)
        except zipfile.BadZipFile as err:
            raise ValueError(f"{location} is not a valid zip archive: {err}") from err
        with archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if not info.is_dir() and not Path(info.filename).name.startswith("."):
                    yield f"{location}:{info.filename}", archive.read(info)
    else:
        for path in sorted(location.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                yield str(path), path.read_bytes()


def load_omniglot(
    root: str | Path,
    sets: Sequence[str] = ("images_background", "images_evaluation"),
    image_size: int | None = None,
    invert: bool = True,
    download: bool = False,
    skip_bad_images: bool = False,
    ink_fill: float | None = None,
) -> ImageCollection:
    """Load Omniglot sets into one collection: class = character, group = alphabet.

    Args:
        root: folder holding the sets (zips or extracted folders).
        sets: set names, e.g. ``images_background``; a character present in several
            sets (the small sets share Greek and Latin) is loaded once.
        image_size: resize to ``image_size`` x ``image_size`` (None keeps 105).
        invert: make strokes bright on a dark background (zero padding then means
            "no ink", which suits affine augmentation).
        download: fetch missing sets from the official repository.
        skip_bad_images: warn about and skip undecodable files instead of failing.
        ink_fill: centre each character on its strokes and scale it so that their longer
            side spans this fraction of the image (:func:`crop_to_ink`); None keeps the
            drawing box as drawn.
    """
    root = Path(root)
    images: list[torch.Tensor] = []
    labels: list[int] = []
    instances: list[int] = []
    paths: list[str] = []
    class_index: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for name in sets:
        location = locate_omniglot_set(root, name, download)
        count = 0
        for where, data in _iter_set_files(location):
            match = _OMNIGLOT_FILE.match(where.replace("\\", "/").split(":")[-1])
            if match is None:
                raise ValueError(
                    f"unexpected file {where} in Omniglot set {name}: expected "
                    f"<Alphabet>/characterNN/<id>_<drawer>.png"
                )
            alphabet, character, _, drawer = match.groups()
            class_name = f"{alphabet}/{character}"
            if (class_name, Path(where).name) in seen:
                continue  # the same image from another set (the small sets overlap)
            try:
                image, _ = decode_image(data, where, image_size, ink_fill=ink_fill)
            except ValueError as err:
                if not skip_bad_images:
                    raise ValueError(f"{err}. Remove or replace the file, or set skip_bad_images: true") from err
                warnings.warn(f"skipping {err}")
                continue
            seen.add((class_name, Path(where).name))
            images.append(image)
            labels.append(class_index.setdefault(class_name, len(class_index)))
            instances.append(int(drawer))
            paths.append(where)
            count += 1
        if count == 0:
            raise ValueError(f"Omniglot set {name!r} at {location} holds no images")
        log.info("loaded %d images from %s", count, location)
    stacked = torch.stack(images)
    return ImageCollection.from_class_names(255 - stacked if invert else stacked, labels, list(class_index), paths, instances)


# --- any folder-per-class image set ---------------------------------------------------


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
    are ignored; any other file that is not a readable image is an error naming it, or,
    with ``skip_bad_images``, a warning. A ``class_depth`` deeper than a folder holding
    images is an error naming that folder.

    Returns the collection and a summary: image sizes before resizing, the number of
    classes at each depth the tree allows, and what was skipped.
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
    image_folders = _image_folders(root)
    depths = class_depths(root, [folder for folder, _ in image_folders])
    if class_depth != "leaf" and class_depth > max(depths, default=0):
        shallow = next(f for f, _ in image_folders if len(f.relative_to(root).parts) < class_depth)
        level = len(shallow.relative_to(root).parts)
        raise ValueError(
            f"class_depth={class_depth} is deeper than the folder tree: {shallow} holds images {level} folder "
            f"level(s) below {root}, expected root/<level 1>/.../<level {class_depth}>/<image>; this tree allows "
            f"class_depth {', '.join(map(str, depths)) or 'none'} or 'leaf'"
        )
    for folder, files in image_folders:
        parts = folder.relative_to(root).parts
        name = "/".join(parts if class_depth == "leaf" else parts[:class_depth])
        decoded = 0
        for path in files:
            problem = None
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                problem = f"{path} is not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})"
            else:
                try:
                    image, size = decode_image(path.read_bytes(), str(path), image_size, channels)
                except ValueError as err:
                    problem = str(err)
            if problem is not None:
                if not skip_bad_images:
                    raise ValueError(f"{problem}. Remove the file, or set skip_bad_images: true")
                warnings.warn(f"skipping {problem}")
                skipped.append(str(path))
                continue
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
    }
    return ImageCollection.from_class_names(torch.stack(images), labels, list(class_index), paths), summary


def _image_folders(root: Path) -> list[tuple[Path, list[Path]]]:
    """Every folder under ``root`` that holds files, with its files (hidden ones ignored), sorted.

    An empty folder, or files directly in ``root``, are errors that name them.
    """
    found = []
    folders = sorted(p for p in [root, *root.rglob("*")] if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
        subfolders = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if folder != root and not files and not subfolders:
            raise ValueError(f"empty class folder {folder}: expected at least one image in it")
        if not files:
            continue
        if folder == root:
            raise ValueError(f"image files directly in {root} (e.g. {files[0].name}): expected root/<class>/<image>")
        found.append((folder, files))
    return found


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


# --- Lake et al.'s 20 one-shot runs ---------------------------------------------------

LAKE_RUNS_URL = f"{OMNIGLOT_URL}/one-shot-classification/all_runs.zip"
# The repository publishes no checksum for all_runs.zip; it is downloaded unverified, with a warning.
LAKE_RUNS_MD5: str | None = None

_LAKE_LABELS = re.compile(r"^(.*/)?(run\d+)/class_labels\.txt$")


def _holds_runs(folder: Path) -> bool:
    return any(re.fullmatch(r"run\d+", p.name) for p in folder.iterdir() if p.is_dir())


def find_lake_runs(path: Path) -> Path | None:
    """Locate Lake's runs: a folder holding ``run01/`` ..., a folder with ``all_runs/`` or ``all_runs.zip``, or the zip."""
    if path.is_file():
        return path if path.suffix == ".zip" else None
    if not path.is_dir():
        return None
    if _holds_runs(path):
        return path
    for candidate in (path / "all_runs", path / "all_runs.zip"):
        if candidate.exists():
            return candidate
    return None


def download_lake_runs(target: Path, url: str | None = None, md5: str | None = None) -> Path:
    """Download ``all_runs.zip`` to the file ``target`` (``url`` and ``md5`` default to the official ones)."""
    from torchvision.datasets.utils import download_url

    url = LAKE_RUNS_URL if url is None else url
    md5 = LAKE_RUNS_MD5 if md5 is None else md5
    if md5 is None:
        warnings.warn(f"{target.name} has no published checksum; downloading it unverified")
    download_url(url, str(target.parent), filename=target.name, md5=md5)
    return target


def locate_lake_runs(path: str | Path, download: bool = False) -> Path:
    """Where Lake's runs are under ``path``; with ``download``, fetch ``all_runs.zip`` when absent.

    The zip is written to ``path`` itself when it ends in ``.zip``, else to ``path/all_runs.zip``.
    """
    path = Path(path)
    location = find_lake_runs(path)
    if location is not None:
        return location
    if not download:
        raise FileNotFoundError(
            f"Lake's one-shot runs not found at {path.resolve()}: expected a folder holding run01/ ... run20/, "
            f"a folder with all_runs/ or all_runs.zip in it, or all_runs.zip itself. Place the official "
            f"file there, or set download: true (source: {LAKE_RUNS_URL})."
        )
    target = path if path.suffix == ".zip" else path / "all_runs.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    return download_lake_runs(target)


def _lake_run_files(location: Path) -> dict[str, bytes]:
    """Every file of the runs, keyed by its path relative to the folder holding the runs."""
    files = {where[len(str(location)) + 1 :].replace("\\", "/"): data for where, data in _iter_set_files(location)}
    prefixes = {m.group(1) or "" for m in map(_LAKE_LABELS.match, files) if m}
    if not prefixes:
        raise ValueError(
            f"no runs found in {location}: expected run01/ ... run20/, each with class_labels.txt, "
            f"training/ and test/ (Lake's all_runs.zip)"
        )
    if len(prefixes) > 1:
        raise ValueError(f"runs found in several folders of {location}: {sorted(prefixes)}; expected one")
    prefix = prefixes.pop()
    return {name[len(prefix) :]: data for name, data in files.items() if name.startswith(prefix)}


def _parse_class_labels(run: str, text: str, files: dict[str, bytes], where: str) -> list[tuple[str, str]]:
    """``(test image, training image)`` per line of one run's ``class_labels.txt``, checked."""
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(
                f"{where} line {number}: expected '<test image> <training image>' "
                f"(e.g. '{run}/test/item01.png {run}/training/class08.png'), got {line!r}"
            )
        for name, folder in zip(parts, ("test", "training")):
            if not name.startswith(f"{run}/{folder}/"):
                raise ValueError(f"{where} line {number}: {name} is not in {run}/{folder}/")
            if name not in files:
                raise ValueError(f"{where} line {number} names {name}, which is missing")
        pairs.append((parts[0], parts[1]))
    for column, kind in ((0, "test image"), (1, "training image")):
        names = [p[column] for p in pairs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{where}: {kind}(s) {repeated} named on several lines; each must appear once")
    return pairs


def load_lake_runs(
    path: str | Path,
    image_size: int | None = None,
    invert: bool = True,
    download: bool = False,
    ink_fill: float | None = None,
) -> tuple[ImageCollection, Episodes]:
    """Load Lake et al.'s (2015) one-shot runs: the official 20 within-alphabet 20-way 1-shot tasks.

    Each run holds ``training/classNN.png`` (one image per class), ``test/itemNN.png`` and
    ``class_labels.txt``, whose lines pair a test item with its training image. In the
    collection each training image is a class (named ``runNN/classNN``) and its test item
    carries the same label; the group is the run. Episode ``r`` is run ``r``: support
    ``[r, w, 0]`` is the w-th training image (in file order), query ``[r, w, 0]`` the test
    item that matches it, so :func:`~lightning_siamese.evaluation.oneshot.evaluate_episodes`
    scores the runs as Lake's ``demo_classification.py`` does (the most similar training
    image wins). Images are decoded and inverted like :func:`load_omniglot`.

    Args:
        path: the folder holding ``run01/`` ..., a folder with ``all_runs/`` or
            ``all_runs.zip`` in it, or ``all_runs.zip``.
        image_size: resize to ``image_size`` x ``image_size`` (None keeps 105).
        invert: strokes bright on black, as :func:`load_omniglot` loads them.
        download: fetch ``all_runs.zip`` when nothing is at ``path``.
        ink_fill: centre and scale each image on its strokes, as :func:`load_omniglot` does.

    Raises:
        ValueError: naming the run and file, for a malformed ``class_labels.txt`` line,
            a line naming a missing image, an image no line names, an undecodable
            image, or runs of different sizes.
    """
    location = locate_lake_runs(path, download)
    files = _lake_run_files(location)
    runs = sorted({name.split("/")[0] for name in files if re.fullmatch(r"run\d+", name.split("/")[0])})
    images: list[torch.Tensor] = []
    labels: list[int] = []
    paths: list[str] = []
    class_names: list[str] = []
    support, query = [], []
    for run in runs:
        where = f"{location}/{run}/class_labels.txt"
        if f"{run}/class_labels.txt" not in files:
            raise ValueError(f"{location}/{run} has no class_labels.txt")
        pairs = _parse_class_labels(run, files[f"{run}/class_labels.txt"].decode(), files, where)
        named = {name for pair in pairs for name in pair}
        stray = sorted(
            name for name in files
            if name.startswith((f"{run}/training/", f"{run}/test/")) and name not in named
        )
        if stray:
            raise ValueError(f"{location}/{stray[0]} is not named in {where} ({len(stray)} such file(s))")
        if not pairs:
            raise ValueError(f"{where} names no images")
        if support and len(pairs) != len(support[0]):
            raise ValueError(
                f"{location}/{run} has {len(pairs)} classes and test items, but {runs[0]} has "
                f"{len(support[0])}; every run must be {len(support[0])}-way"
            )
        answer = {train: test for test, train in pairs}
        run_support, run_query = [], []
        for train in sorted(answer):
            class_names.append(f"{run}/{Path(train).stem}")
            for name, slot in ((train, run_support), (answer[train], run_query)):
                image, _ = decode_image(files[name], f"{location}/{name}", image_size, ink_fill=ink_fill)
                slot.append([len(images)])
                images.append(image)
                labels.append(len(class_names) - 1)
                paths.append(f"{location}/{name}")
        support.append(run_support)
        query.append(run_query)
    if image_size is None and len({tuple(i.shape) for i in images}) > 1:
        raise ValueError(f"the images of {location} differ in size: set image_size to resize them")
    stacked = torch.stack(images)
    collection = ImageCollection.from_class_names(255 - stacked if invert else stacked, labels, class_names, paths)
    support_t = torch.tensor(support, dtype=torch.long)
    episodes = Episodes(
        support=support_t,
        query=torch.tensor(query, dtype=torch.long),
        classes=collection.labels[support_t[:, :, 0]],
        seed=0,  # fixed tasks, drawn by no seed
    )
    return collection, episodes
