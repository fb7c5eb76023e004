"""Centring and scaling drawings on their ink (``ink_fill``): the crop, and every path that loads images."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from lightning_siamese.data.sources.collection import crop_to_ink
from lightning_siamese.data.sources.omniglot import load_lake_runs, load_omniglot
from lightning_siamese.data.transforms.views import to_float
from lightning_siamese.inference.images import read_image
from tests.data.test_lake_runs import make_lake_runs


def drawing(box: tuple[int, int, int, int], size: int = 105) -> Image.Image:
    """White paper with a black rectangle outline at ``box`` (left, top, right, bottom), inclusive."""
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).rectangle(box, outline=0, width=2)
    return image


def ink_box(image: Image.Image | np.ndarray) -> tuple[int, int, int, int]:
    ink = np.asarray(image) < 128
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def test_crop_centres_the_ink_and_scales_its_longer_side_to_the_fill() -> None:
    cropped = crop_to_ink(drawing((10, 30, 49, 49)), fill=0.8)  # 40 x 20 px of ink, off-centre
    assert cropped.size == (50, 50)  # the longer side, 40 px, is 0.8 of the square
    left, top, right, bottom = ink_box(cropped)
    assert (left, right) == (5, 44)  # 5 px of paper either side horizontally
    assert (top, bottom) == (15, 34)  # and 15 px above and below: centred, aspect kept
    assert (np.asarray(cropped) < 128).sum() == (np.asarray(drawing((10, 30, 49, 49))) < 128).sum()


def test_a_square_reaching_past_the_edges_is_padded_with_paper() -> None:
    original = drawing((0, 0, 29, 99))  # tall ink on the left edge: the square reaches off the page
    cropped = crop_to_ink(original, fill=0.5)
    assert cropped.size == (200, 200)
    # Padding is white paper, not black ink: the ink is exactly the original's, centred.
    assert (np.asarray(cropped) < 128).sum() == (np.asarray(original) < 128).sum()
    assert ink_box(cropped) == (85, 50, 114, 149)


def test_blank_image_is_kept_and_bad_fill_refused() -> None:
    blank = Image.new("L", (105, 105), 255)
    assert crop_to_ink(blank, 0.8) is blank
    for fill in (0.0, 1.5):
        with pytest.raises(ValueError, match="ink_fill must be in"):
            crop_to_ink(drawing((10, 10, 20, 20)), fill)


def write_set(root: Path, boxes: list[tuple[int, int, int, int]]) -> Path:
    """An Omniglot set of one alphabet, one character, drawn at each of ``boxes`` by drawers 1, 2, ..."""
    with zipfile.ZipFile(root / "images_background.zip", "w") as archive:
        for drawer, box in enumerate(boxes, 1):
            buffer = io.BytesIO()
            drawing(box).save(buffer, format="PNG")
            archive.writestr(f"images_background/Alpha/character01/0101_{drawer:02d}.png", buffer.getvalue())
    return root


def test_load_omniglot_makes_the_same_shape_drawn_anywhere_the_same_image(tmp_path: Path) -> None:
    boxes = [(5, 5, 44, 24), (50, 70, 89, 89)]  # one shape, drawn in two places
    plain = load_omniglot(write_set(tmp_path, boxes), ["images_background"], image_size=28)
    assert not torch.equal(plain.images[0], plain.images[1])
    fitted = load_omniglot(tmp_path, ["images_background"], image_size=28, ink_fill=0.8)
    assert fitted.images.shape == (2, 1, 28, 28)
    assert torch.equal(fitted.images[0], fitted.images[1])
    # Inverted as ever (ink bright), and the ink now spans about 0.8 of the side.
    left, _, right, _ = ink_box(255 - fitted.images[0, 0].numpy())
    assert abs((right - left + 1) / 28 - 0.8) < 0.1
    assert (
        load_omniglot(tmp_path, ["images_background"], ink_fill=0.8).images.shape[-1] == 105
    )  # no image_size: 105 kept


def test_data_module_lake_runs_and_read_image_prepare_images_alike(tmp_path: Path) -> None:
    runs = make_lake_runs(tmp_path / "all_runs", runs=1, ways=3, size=105)
    data = OmniglotDataModule(root=str(tmp_path), runs_dir=str(runs), image_size=28, ink_fill=0.8)
    collection = data.test_set().collection
    assert torch.equal(collection.images, load_lake_runs(runs, 28, ink_fill=0.8)[0].images)
    assert not torch.equal(collection.images, load_lake_runs(runs, 28)[0].images)
    # A file read for `embed`/`verify` with the checkpoint's settings matches what the module scored.
    settings = {"image_size": 28, "invert": True, "ink_fill": 0.8}
    assert torch.equal(read_image(collection.paths[0], settings)[0], to_float(collection.images[0]))


def test_data_module_refuses_a_bad_fill() -> None:
    with pytest.raises(ValueError, match=r"ink_fill must be in \(0, 1\].*got 80"):
        OmniglotDataModule(ink_fill=80)
