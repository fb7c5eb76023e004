"""LFW person folders in every layout, the official pair and people lists, and bad input."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_siamese.data.sources.lfw import (
    LFWFiles,
    load_lfw,
    read_pairs,
    read_people,
)

PEOPLE = {"Ann_Lee": 3, "Bo_Chen": 2, "Cy_Diaz": 1}


def jpeg(value: int, size: int = 250, mode: str = "L") -> bytes:
    array = np.full((size, size), value, dtype=np.uint8)
    array[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255 - value  # a bright face in the middle
    image = Image.fromarray(array).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def lfw_files(prefix: str) -> dict[str, bytes]:
    files = {}
    for p, (person, count) in enumerate(PEOPLE.items()):
        for n in range(1, count + 1):
            name = f"{person}/{person}_{n:04d}.jpg"
            files[f"{prefix}/{name}" if prefix else name] = jpeg(40 * p + 10 * n)
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("prefix", ["lfw2", "lfw2/lfw2", "lfw", "lfw-deepfunneled", ""])
@pytest.mark.parametrize("as_zip", [False, True])
def test_every_layout_from_a_folder_or_the_zip(tmp_path: Path, prefix: str, as_zip: bool) -> None:
    files = lfw_files(prefix)
    root = write_zip(tmp_path / "lfw.zip", files) if as_zip else write_tree(tmp_path / "data", files)
    lfw = LFWFiles(root)
    assert lfw.prefix == prefix
    assert dict(lfw.people()) == PEOPLE
    collection, index = load_lfw(root, [("Bo_Chen", 2), ("Ann_Lee", 1), ("Bo_Chen", 2)], image_size=32)
    assert collection.images.shape == (2, 1, 32, 32) and collection.images.dtype == torch.uint8
    assert collection.class_names == ["Bo_Chen", "Ann_Lee"]
    assert index == {("Bo_Chen", 2): 0, ("Ann_Lee", 1): 1}
    assert collection.paths[0].endswith("Bo_Chen/Bo_Chen_0002.jpg")
    # pixel values survive: Bo_Chen's 2nd image has background 40 + 20 = 60
    assert abs(int(collection.images[0, 0, 0, 0]) - 60) <= 3


def test_crop_resize_and_channels(tmp_path: Path) -> None:
    root = write_tree(tmp_path, lfw_files("lfw2"))
    full, _ = load_lfw(root, [("Ann_Lee", 1)], image_size=None)
    assert full.images.shape == (1, 1, 250, 250)
    face, _ = load_lfw(root, [("Ann_Lee", 1)], image_size=None, crop=124)
    assert face.images.shape == (1, 1, 124, 124)
    assert face.images.float().mean() > 220  # only the bright centre is left (255 - 10 = 245)
    rgb, _ = load_lfw(root, [("Ann_Lee", 1)], image_size=64, channels=3)
    assert rgb.images.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"center crop 300 is larger than image .*Ann_Lee_0001.jpg \(250x250\)"):
        load_lfw(root, [("Ann_Lee", 1)], crop=300)


def test_mixed_modes_and_sizes_are_converted_and_resized(tmp_path: Path) -> None:
    files = lfw_files("lfw")
    files["lfw/Ann_Lee/Ann_Lee_0002.jpg"] = jpeg(90, size=120, mode="RGB")  # an RGB, smaller image
    root = write_tree(tmp_path, files)
    collection, _ = load_lfw(root, [("Ann_Lee", 1), ("Ann_Lee", 2)], image_size=105)
    assert collection.images.shape == (2, 1, 105, 105)


def test_view1_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pairsDevTest.txt"
    path.write_text("2\nAnn_Lee\t1\t2\nBo_Chen\t1\t2\nAnn_Lee\t3\tBo_Chen\t1\nCy_Diaz\t1\tAnn_Lee\t2\n")
    pairs = read_pairs(path)
    assert len(pairs) == 4 and pairs.same.tolist() == [1, 1, 0, 0] and pairs.folds.tolist() == [0, 0, 0, 0]
    assert pairs.first[2] == ("Ann_Lee", 3) and pairs.second[2] == ("Bo_Chen", 1)
    assert pairs.images() == [
        ("Ann_Lee", 1),
        ("Bo_Chen", 1),
        ("Ann_Lee", 3),
        ("Cy_Diaz", 1),
        ("Ann_Lee", 2),
        ("Bo_Chen", 2),
    ]


def test_view2_folds(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    fold = "Ann_Lee\t1\t2\nAnn_Lee\t1\tBo_Chen\t2\n"
    path.write_text("3\t1\n" + fold * 3)
    pairs = read_pairs(path)
    assert pairs.folds.tolist() == [0, 0, 1, 1, 2, 2] and pairs.same.tolist() == [1, 0] * 3


def test_the_real_view1_training_list() -> None:
    path = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "lfw" / "pairsDevTrain.txt"
    if not path.exists():
        pytest.skip("../shared/data/lfw is not on this machine")
    pairs = read_pairs(path)
    assert len(pairs) == 2200 and int(pairs.same.sum()) == 1100


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("two\n", r"line 1: header 'two' is not 'N' or 'folds N'"),
        (
            "2\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBo_Chen\t1\n",
            r"2 matched \+ 2 mismatched pairs \(4 lines\), but 2 pair lines follow",
        ),
        ("1\nAnn_Lee\t1\tBo_Chen\t1\nAnn_Lee\t1\t2\n", r"line 2: expected a matched 'name i j' pair \(fold 1\)"),
        ("1\nAnn_Lee\t1\t2\nAnn_Lee\t1\t2\n", r"line 3: expected a mismatched"),
        ("1\nAnn_Lee\tx\t2\nAnn_Lee\t1\tBo_Chen\t1\n", r"line 2: 'x' is not an image number"),
        ("1\nAnn_Lee\t0\t2\nAnn_Lee\t1\tBo_Chen\t1\n", r"line 2: image numbers start at 1"),
    ],
)
def test_bad_pair_lists_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_pairs(path)


def test_a_pair_naming_a_missing_person_or_image_names_the_path(tmp_path: Path) -> None:
    root = write_tree(tmp_path, lfw_files("lfw2"))
    with pytest.raises(FileNotFoundError, match=r"lfw2/Ann_Lee/Ann_Lee_0009.jpg does not exist"):
        load_lfw(root, [("Ann_Lee", 9)])
    with pytest.raises(FileNotFoundError, match=r"Zed_Q/Zed_Q_0001.jpg does not exist"):
        load_lfw(write_zip(tmp_path / "a.zip", lfw_files("lfw2")), [("Zed_Q", 1)])
    with pytest.raises(FileNotFoundError, match="no LFW person folders"):
        LFWFiles(tmp_path / "lfw2" / "Ann_Lee")
    with pytest.raises(FileNotFoundError, match="LFW not found"):
        LFWFiles(tmp_path / "nowhere")


def test_people_lists_view1_and_view2(tmp_path: Path) -> None:
    view1 = tmp_path / "peopleDevTrain.txt"
    view1.write_text("2\nAnn_Lee\t3\nBo_Chen\t2\n")
    assert read_people(view1) == [("Ann_Lee", 3), ("Bo_Chen", 2)]
    view2 = tmp_path / "people.txt"
    view2.write_text("2\n1\nAnn_Lee\t3\n2\nBo_Chen\t2\nCy_Diaz\t1\n")
    assert read_people(view2) == [("Ann_Lee", 3), ("Bo_Chen", 2), ("Cy_Diaz", 1)]
    bad = tmp_path / "bad.txt"
    bad.write_text("3\nAnn_Lee\t3\nBo_Chen\t2\n")
    with pytest.raises(ValueError, match="the count says 3 people, 2 follow"):
        read_people(bad)
    bad.write_text("1\nAnn_Lee 3 extra\n")
    with pytest.raises(ValueError, match=r"line 2: expected 'name<TAB>images'"):
        read_people(bad)
