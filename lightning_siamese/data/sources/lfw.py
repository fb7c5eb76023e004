"""Labeled Faces in the Wild: person folders, the official pair and people lists.

LFW's files are ``<Person>/<Person>_NNNN.jpg`` (image numbers 1-based, 4 digits) under one
of several top folders depending on the distribution: LFW-a's ``lfw2/`` (some copies nest
it as ``lfw2/lfw2/``), the original ``lfw/``, or ``lfw-deepfunneled/``; the images may sit
in a folder or in the zip itself. The pair lists (``pairsDevTrain.txt``,
``pairsDevTest.txt``: View 1; ``pairs.txt``: View 2's 10 folds) name images by person and
number.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from lightning_siamese.data.sources.collection import ImageCollection, decode_image

LFW_LAYOUTS = ("lfw2/lfw2", "lfw2", "lfw", "lfw-deepfunneled", "lfw_funneled", "")


# The LFW site's files and their checksums (as torchvision lists them). The site has been
# unreliable: ``download_url`` in the data module points elsewhere (a mirror) if need be.
LFW_URL = "http://vis-www.cs.umass.edu/lfw/"


LFW_ARCHIVES = {
    "original": ("lfw.tgz", "a17d05bd522c52d84eca14327a23d494"),
    "funneled": ("lfw-funneled.tgz", "1b42dfed7d15c9b2dd63d5e5840c86ad"),
    "deepfunneled": ("lfw-deepfunneled.tgz", "68331da3eb755a505a502b5aacb3c201"),
}


LFW_LISTS = {
    "pairs.txt": "9f1ba174e4e1c508ff7cdf10ac338a7d",
    "pairsDevTest.txt": "5132f7440eb68cf58910c8a45a2ac10b",
    "pairsDevTrain.txt": "4f27cbf15b2da4a85c1907eb4181ad21",
    "people.txt": "450f0863dd89e85e73936a6d71a3474b",
    "peopleDevTest.txt": "e4bf5be0a43b5dcd9dc5ccfcb8fb19c5",
    "peopleDevTrain.txt": "54eaac34beb6d042ed3a7d883e247a21",
}


def download_lfw_images(root: Path, image_set: str = "original", url: str = LFW_URL) -> None:
    """Fetch and unpack an LFW image archive into ``root`` (checksum verified)."""
    from torchvision.datasets.utils import download_and_extract_archive

    if image_set not in LFW_ARCHIVES:
        raise ValueError(f"unknown LFW image set {image_set!r}; known: {sorted(LFW_ARCHIVES)}")
    filename, md5 = LFW_ARCHIVES[image_set]
    download_and_extract_archive(url.rstrip("/") + "/" + filename, str(root), filename=filename, md5=md5)


def download_lfw_list(path: Path, url: str = LFW_URL) -> None:
    """Fetch one of LFW's pair or people lists to ``path`` (checksum verified when official)."""
    from torchvision.datasets.utils import download_url

    md5 = LFW_LISTS.get(path.name)
    if md5 is None:
        warnings.warn(
            f"{path.name} is not one of LFW's published lists {sorted(LFW_LISTS)}; downloading it unverified",
            stacklevel=2,
        )
    download_url(url.rstrip("/") + "/" + path.name, str(path.parent), filename=path.name, md5=md5)


def find_lfw_images(root: Path) -> LFWFiles:
    """The images at ``root`` itself (a folder in a known layout, or a zip), or in a zip in it."""
    try:
        return LFWFiles(root)
    except FileNotFoundError:
        if root.is_dir():
            for archive in sorted(root.glob("*.zip")):
                try:
                    return LFWFiles(archive)
                except FileNotFoundError:
                    continue
        raise FileNotFoundError(
            f"no LFW images at {root}: expected person folders <Person>/<Person>_0001.jpg under one of "
            f"{[layout or '.' for layout in LFW_LAYOUTS]}, in the folder or in a zip in it "
            f"(set download: true to fetch them)"
        ) from None


def lfw_file_name(person: str, number: int) -> str:
    return f"{person}/{person}_{number:04d}.jpg"


@dataclass
class PairList:
    """Pairs of LFW images by name: ``first[i]`` and ``second[i]`` are (person, number).

    Attributes:
        same: int64 ``[P]``, 1 for a matched pair.
        folds: int64 ``[P]``, the fold of each pair (all 0 for View 1's lists).
        source: the file the list came from, for messages.
        lines: the line of ``source`` each pair is on.
    """

    first: list[tuple[str, int]]
    second: list[tuple[str, int]]
    same: torch.Tensor
    folds: torch.Tensor
    source: str
    lines: list[int]

    def __len__(self) -> int:
        return len(self.same)

    def select(self, keep: torch.Tensor) -> PairList:
        """The pairs where the boolean mask ``keep`` is true."""
        index = keep.nonzero().flatten().tolist()
        return PairList(
            [self.first[i] for i in index],
            [self.second[i] for i in index],
            self.same[index],
            self.folds[index],
            self.source,
            [self.lines[i] for i in index],
        )

    def people(self) -> set[str]:
        return {person for person, _ in self.first + self.second}

    def images(self) -> list[tuple[str, int]]:
        """Every image the list names, each once, in order of first mention."""
        return list(dict.fromkeys(self.first + self.second))


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty lines as (line number, whitespace-split fields)."""
    text = path.read_text(encoding="utf-8")
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _number(value: str, path: Path, line: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{path}, line {line}: {value!r} is not an image number") from None
    if number < 1:
        raise ValueError(f"{path}, line {line}: image numbers start at 1, got {number}")
    return number


def read_pairs(path: str | Path) -> PairList:
    """Read an LFW pair list: View 1 (first line ``N``) or View 2 (first line ``folds N``).

    Each fold is N matched lines ``name<TAB>i<TAB>j`` followed by N mismatched lines
    ``name1<TAB>i<TAB>name2<TAB>j``. A line of the wrong shape, a non-numeric image number
    or a count that does not match the lines is an error naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LFW pair list {path} does not exist")
    lines = _lines(path)
    if not lines:
        raise ValueError(f"{path} is empty: expected a header line 'N' or 'folds N'")
    header_line, header = lines[0]
    try:
        counts = [int(v) for v in header]
    except ValueError:
        raise ValueError(f"{path}, line {header_line}: header {' '.join(header)!r} is not 'N' or 'folds N'") from None
    if len(counts) not in (1, 2) or min(counts) < 1:
        raise ValueError(f"{path}, line {header_line}: header {' '.join(header)!r} is not 'N' or 'folds N'")
    folds, per_side = (1, counts[0]) if len(counts) == 1 else counts
    body = lines[1:]
    expected = folds * 2 * per_side
    if len(body) != expected:
        raise ValueError(
            f"{path}: the header says {folds} fold(s) of {per_side} matched + {per_side} mismatched pairs "
            f"({expected} lines), but {len(body)} pair lines follow"
        )
    first, second, same, fold_of, line_of = [], [], [], [], []
    for k, (line, fields) in enumerate(body):
        fold, position = divmod(k, 2 * per_side)
        matched = position < per_side
        if matched and len(fields) == 3:
            person, i, j = fields
            first.append((person, _number(i, path, line)))
            second.append((person, _number(j, path, line)))
        elif not matched and len(fields) == 4:
            first.append((fields[0], _number(fields[1], path, line)))
            second.append((fields[2], _number(fields[3], path, line)))
        else:
            kind = "matched 'name i j'" if matched else "mismatched 'name1 i name2 j'"
            raise ValueError(f"{path}, line {line}: expected a {kind} pair (fold {fold + 1}), got {' '.join(fields)!r}")
        same.append(int(matched))
        fold_of.append(fold)
        line_of.append(line)
    return PairList(first, second, torch.tensor(same), torch.tensor(fold_of), str(path), line_of)


def read_people(path: str | Path) -> list[tuple[str, int]]:
    """Read an LFW people list: ``peopleDevTrain.txt`` (a count, then ``name<TAB>images``
    lines) or View 2's ``people.txt`` (a fold count, then per fold a count and its lines)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LFW people list {path} does not exist")
    lines = _lines(path)
    view2 = len(lines) > 1 and len(lines[1][1]) == 1
    blocks, k = (int(lines[0][1][0]), 1) if view2 else (1, 0)
    people: list[tuple[str, int]] = []
    for _ in range(blocks):
        if k >= len(lines) or len(lines[k][1]) != 1 or not lines[k][1][0].isdigit():
            where = f"line {lines[k][0]}" if k < len(lines) else "the end"
            raise ValueError(f"{path}: expected a count of people at {where}")
        count = int(lines[k][1][0])
        block = lines[k + 1 : k + 1 + count]
        if len(block) != count:
            raise ValueError(f"{path}, line {lines[k][0]}: the count says {count} people, {len(block)} follow")
        for line, fields in block:
            if len(fields) != 2:
                raise ValueError(f"{path}, line {line}: expected 'name<TAB>images', got {' '.join(fields)!r}")
            people.append((fields[0], _number(fields[1], path, line)))
        k += 1 + count
    if k != len(lines):
        raise ValueError(f"{path}, line {lines[k][0]}: unexpected line after the listed people")
    return people


class LFWFiles:
    """Reads LFW images by (person, number) from a folder or a zip, in any known layout."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._zip: zipfile.ZipFile | None = None
        if self.root.is_file() and zipfile.is_zipfile(self.root):
            self._zip = zipfile.ZipFile(self.root)
            self._names = set(self._zip.namelist())
            has_people = self._zip_has_people
        elif self.root.is_dir():
            has_people = self._dir_has_people
        else:
            raise FileNotFoundError(f"LFW not found at {self.root}: expected a folder or a zip of person folders")
        for layout in LFW_LAYOUTS:
            if has_people(layout):
                self.prefix = layout
                return
        raise FileNotFoundError(
            f"no LFW person folders (<Person>/<Person>_0001.jpg) in {self.root} under any of "
            f"{[layout or '.' for layout in LFW_LAYOUTS]}"
        )

    def _dir_has_people(self, layout: str) -> bool:
        base = self.root / layout if layout else self.root
        return base.is_dir() and any(p.is_dir() and any(p.glob(f"{p.name}_*.jpg")) for p in base.iterdir())

    def _zip_has_people(self, layout: str) -> bool:
        start = f"{layout}/" if layout else ""
        depth = start.count("/") + 1  # <layout>/<Person>/<file>.jpg
        return any(n.startswith(start) and n.endswith(".jpg") and n.count("/") == depth for n in self._names)

    def _member(self, person: str, number: int) -> str:
        """The image's path relative to the root (or its name in the zip)."""
        name = lfw_file_name(person, number)
        return f"{self.prefix}/{name}" if self.prefix else name

    def where(self, person: str, number: int) -> str:
        name = self._member(person, number)
        return f"{self.root}:{name}" if self._zip is not None else str(self.root / name)

    def exists(self, person: str, number: int) -> bool:
        name = self._member(person, number)
        if self._zip is not None:
            return name in self._names
        return (self.root / name).is_file()

    def check_pairs(self, pairs: PairList) -> None:
        """Fail on the first pair whose image is missing, naming the list's line and the path."""
        for first, second, line in zip(pairs.first, pairs.second, pairs.lines):
            for person, number in (first, second):
                if not self.exists(person, number):
                    raise FileNotFoundError(
                        f"{pairs.source}, line {line}: image {number} of {person} is not in LFW: "
                        f"{self.where(person, number)} does not exist"
                    )

    def read(self, person: str, number: int) -> bytes:
        name = self._member(person, number)
        try:
            if self._zip is not None:
                return self._zip.read(name)
            return (self.root / name).read_bytes()
        except (KeyError, FileNotFoundError):
            raise FileNotFoundError(f"LFW image {self.where(person, number)} does not exist") from None

    def people(self) -> Iterator[tuple[str, int]]:
        """Every (person, image count) in the data set."""
        if self._zip is not None:
            start = f"{self.prefix}/" if self.prefix else ""
            counts: dict[str, int] = {}
            for n in self._zip.namelist():
                if n.startswith(start) and n.endswith(".jpg"):
                    person = n[len(start) :].split("/")[0]
                    counts[person] = counts.get(person, 0) + 1
            yield from sorted(counts.items())
        else:
            base = self.root / self.prefix if self.prefix else self.root
            for folder in sorted(p for p in base.iterdir() if p.is_dir()):
                yield folder.name, len(list(folder.glob(f"{folder.name}_*.jpg")))


def fit_image(image: torch.Tensor, crop: int | None, image_size: int | None, where: str) -> torch.Tensor:
    """Centre-crop a uint8 image ``[C, H, W]`` to ``crop`` pixels, then resize it (antialiased)
    to ``image_size``; ``None`` skips either step."""
    if crop is not None:
        height, width = image.shape[-2:]
        if crop > min(height, width):
            raise ValueError(f"center crop {crop} is larger than image {where} ({width}x{height})")
        top, left = (height - crop) // 2, (width - crop) // 2
        image = image[..., top : top + crop, left : left + crop]
    if image_size is not None and tuple(image.shape[-2:]) != (image_size, image_size):
        image = (
            torch.nn.functional.interpolate(
                image[None].float(), size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
            )[0]
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    return image


def load_lfw(
    root: str | Path | LFWFiles,
    images: Iterable[tuple[str, int]],
    image_size: int | None = 105,
    channels: int = 1,
    crop: int | None = None,
) -> tuple[ImageCollection, dict[tuple[str, int], int]]:
    """Decode the named LFW images (person, number) once.

    Each image is centre-cropped to ``crop`` pixels first (LFW images are 250x250 with the
    face in the middle; e.g. ``crop: 150``), then resized to ``image_size`` and converted to
    ``channels`` (1: grayscale, 3: RGB) whatever its mode. Returns the collection (class =
    person; each person is its own group) and each name's index into it.
    """
    files = root if isinstance(root, LFWFiles) else LFWFiles(root)
    decoded: list[torch.Tensor] = []
    labels: list[int] = []
    paths: list[str] = []
    classes: dict[str, int] = {}
    index: dict[tuple[str, int], int] = {}
    for person, number in images:
        if (person, number) in index:
            continue
        where = files.where(person, number)
        data = files.read(person, number)
        image = fit_image(decode_image(data, where, None, channels)[0], crop, image_size, where)
        index[(person, number)] = len(decoded)
        decoded.append(image)
        labels.append(classes.setdefault(person, len(classes)))
        paths.append(where)
    if not decoded:
        raise ValueError(f"no LFW images requested from {root}")
    # A person's name has no "/", so each person is its own group.
    return ImageCollection.from_class_names(torch.stack(decoded), labels, list(classes), paths), index
