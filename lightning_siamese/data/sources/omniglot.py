"""Omniglot (Lake et al. 2015): the official background/evaluation sets and the 20 one-shot runs."""

from __future__ import annotations

import logging
import re
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import torch

from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.data.sources.collection import (
    ImageCollection,
    decode_image,
    decode_or_skip,
)

log = logging.getLogger(__name__)


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
        warnings.warn(f"{name}.zip has no published checksum; downloading it unverified", stacklevel=2)
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
                    f"unexpected file {where} in Omniglot set {name}: expected <Alphabet>/characterNN/<id>_<drawer>.png"
                )
            alphabet, character, _, drawer = match.groups()
            class_name = f"{alphabet}/{character}"
            if (class_name, Path(where).name) in seen:
                continue  # the same image from another set (the small sets overlap)
            decoded = decode_or_skip(
                partial(decode_image, data, where, image_size, ink_fill=ink_fill),
                where,
                skip_bad_images,
                "Remove or replace the file",
            )
            if decoded is None:
                continue
            image = decoded[0]
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
    return ImageCollection.from_class_names(
        255 - stacked if invert else stacked, labels, list(class_index), paths, instances
    )


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
        warnings.warn(f"{target.name} has no published checksum; downloading it unverified", stacklevel=2)
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
    support: list[list[list[int]]] = []  # [run][way][shot]: image indices
    query: list[list[list[int]]] = []
    for run in runs:
        where = f"{location}/{run}/class_labels.txt"
        if f"{run}/class_labels.txt" not in files:
            raise ValueError(f"{location}/{run} has no class_labels.txt")
        pairs = _parse_class_labels(run, files[f"{run}/class_labels.txt"].decode(), files, where)
        named = {name for pair in pairs for name in pair}
        stray = sorted(
            name for name in files if name.startswith((f"{run}/training/", f"{run}/test/")) and name not in named
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
        run_support: list[list[int]] = []
        run_query: list[list[int]] = []
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
