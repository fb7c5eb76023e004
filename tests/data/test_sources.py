import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from lightning_siamese.data.sources.omniglot import download_omniglot, load_omniglot
from tests.conftest import TINY_ALPHABETS, make_omniglot_set


def test_loads_zip_with_alphabets_characters_and_drawers(tiny_omniglot: Path) -> None:
    data = load_omniglot(tiny_omniglot, ["images_background"])
    assert data.images.dtype == torch.uint8
    assert data.images.shape == (23 * 20, 1, 28, 28)
    assert data.group_names == sorted(TINY_ALPHABETS)
    assert data.num_classes == sum(TINY_ALPHABETS.values())
    assert torch.bincount(data.labels).tolist() == [20] * data.num_classes
    assert sorted(set(data.instances.tolist())) == list(range(1, 21))
    gamma = data.group_names.index("Gamma")
    assert int((data.class_groups == gamma).sum()) == 5
    assert data.class_names[0] == "Alpha/character01"


def test_invert_makes_ink_bright(tiny_omniglot: Path) -> None:
    inverted = load_omniglot(tiny_omniglot, ["images_background"])
    raw = load_omniglot(tiny_omniglot, ["images_background"], invert=False)
    assert torch.equal(inverted.images, 255 - raw.images)
    # strokes are a minority of pixels: after inversion most pixels are dark
    assert (inverted.images == 0).float().mean() > 0.5


def test_folder_and_torchvision_layouts_match_the_zip(tmp_path: Path, tiny_omniglot: Path) -> None:
    from_zip = load_omniglot(tiny_omniglot, ["images_background"])
    with zipfile.ZipFile(tiny_omniglot / "images_background.zip") as archive:
        archive.extractall(tmp_path / "plain")
        archive.extractall(tmp_path / "tv" / "omniglot-py")
    for root in (tmp_path / "plain", tmp_path / "tv"):
        from_folder = load_omniglot(root, ["images_background"])
        assert torch.equal(from_folder.images, from_zip.images)
        assert from_folder.class_names == from_zip.class_names


def test_resize_at_load_time(tiny_omniglot: Path) -> None:
    data = load_omniglot(tiny_omniglot, ["images_background"], image_size=14)
    assert data.images.shape[-2:] == (14, 14)


def test_overlapping_small_sets_load_each_image_once(shipped_omniglot: Path) -> None:
    both = load_omniglot(shipped_omniglot, ["images_background_small1", "images_background_small2"], image_size=20)
    one = load_omniglot(shipped_omniglot, ["images_background_small1"], image_size=20)
    assert "Greek" in one.group_names and "Greek" in both.group_names
    assert len(both.group_names) == 8  # 5 + 5 alphabets, Greek and Latin in both
    greek = [n for n in both.class_names if n.startswith("Greek/")]
    assert len(greek) == 24
    assert torch.bincount(both.labels).max() == 20  # no character got its images twice


def test_select_groups_renumbers_and_keeps_classes_whole(tiny_omniglot: Path) -> None:
    data = load_omniglot(tiny_omniglot, ["images_background"])
    sub = data.select_groups(["Gamma", "Alpha"])
    assert sub.num_classes == 11
    assert sorted(set(sub.labels.tolist())) == list(range(11))
    assert all(n.split("/")[0] in ("Gamma", "Alpha") for n in sub.class_names)
    assert len(sub) == 11 * 20
    with pytest.raises(ValueError, match="Omega"):
        data.select_groups(["Omega"])


def test_missing_data_without_download_names_the_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_omniglot(tmp_path / "nowhere", ["images_background"])
    message = str(err.value)
    assert "images_background.zip" in message and "download: true" in message


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    folder = make_omniglot_set(tmp_path, "images_background", {"Alpha": 2}, drawers=3, as_zip=False)
    bad = folder / "Alpha" / "character01" / "0001_02.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"0001_02.png"):
        load_omniglot(tmp_path, ["images_background"])
    with pytest.warns(UserWarning, match="0001_02.png"):
        data = load_omniglot(tmp_path, ["images_background"], skip_bad_images=True)
    assert len(data) == 5


def test_non_image_file_in_class_folder_is_named(tmp_path: Path) -> None:
    folder = make_omniglot_set(tmp_path, "images_background", {"Alpha": 2}, drawers=3, as_zip=False)
    (folder / "Alpha" / "character02" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes.txt"):
        load_omniglot(tmp_path, ["images_background"])


def test_not_a_zip_is_named(tmp_path: Path) -> None:
    (tmp_path / "images_background.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"images_background.zip"):
        load_omniglot(tmp_path, ["images_background"])


def test_download_from_a_server_verifies_the_checksum(tmp_path: Path, tiny_omniglot: Path, http_server) -> None:
    served, url = http_server
    shutil.copy(tiny_omniglot / "images_background.zip", served)
    md5 = hashlib.md5((served / "images_background.zip").read_bytes()).hexdigest()
    target = tmp_path / "root"
    path = download_omniglot(target, "images_background", base_url=url, md5={"images_background": md5})
    assert path == target / "images_background.zip"
    assert len(load_omniglot(target, ["images_background"])) == 23 * 20

    with pytest.raises(RuntimeError):
        download_omniglot(tmp_path / "other", "images_background", base_url=url, md5={"images_background": "0" * 32})


def test_load_with_download_fetches_missing_sets(tmp_path: Path, tiny_omniglot: Path, http_server, monkeypatch) -> None:
    served, url = http_server
    shutil.copy(tiny_omniglot / "images_background.zip", served)
    md5 = hashlib.md5((served / "images_background.zip").read_bytes()).hexdigest()
    import lightning_siamese.data.sources.omniglot as sources

    monkeypatch.setattr(sources, "OMNIGLOT_URL", url)
    monkeypatch.setitem(sources.OMNIGLOT_MD5, "images_background", md5)
    data = load_omniglot(tmp_path / "fresh", ["images_background"], download=True)
    assert (tmp_path / "fresh" / "images_background.zip").exists()
    assert len(data) == 23 * 20


def test_rotated_classes_are_new_classes_in_the_same_group(tiny_omniglot: Path) -> None:
    data = load_omniglot(tiny_omniglot, ["images_background"]).select_groups(["Alpha"])
    rotated = data.with_rotated_classes([0, 90, 180])
    assert rotated.num_classes == 3 * data.num_classes and len(rotated) == 3 * len(data)
    assert torch.equal(rotated.images[: len(data)], data.images)
    k = len(data)
    assert torch.equal(rotated.images[k], torch.rot90(data.images[0], 1, dims=(-2, -1)))
    assert rotated.labels[k] == data.labels[0] + data.num_classes
    assert rotated.class_names[data.num_classes] == "Alpha/character01@90"
    assert set(rotated.class_groups.tolist()) == {0}
    with pytest.raises(ValueError, match="multiples of 90"):
        data.with_rotated_classes([45])


def test_mirrored_classes_are_new_classes_in_the_same_group(tiny_omniglot: Path) -> None:
    data = load_omniglot(tiny_omniglot, ["images_background"]).select_groups(["Alpha", "Beta"])
    mirrored = data.with_rotated_classes([0, 90]).with_mirrored_classes()
    assert mirrored.num_classes == 4 * data.num_classes and len(mirrored) == 4 * len(data)
    k = 2 * len(data)  # the mirrors follow the originals and their rotations
    assert torch.equal(mirrored.images[k], data.images[0].flip(-1))
    assert torch.equal(mirrored.images[k + len(data)], torch.rot90(data.images[0], 1, dims=(-2, -1)).flip(-1))
    assert mirrored.labels[k] == data.labels[0] + 2 * data.num_classes
    assert mirrored.class_names[2 * data.num_classes] == data.class_names[0] + "@mirror"
    assert mirrored.class_names[3 * data.num_classes] == data.class_names[0] + "@90@mirror"
    assert torch.equal(
        mirrored.class_groups[: data.num_classes], mirrored.class_groups[2 * data.num_classes : 3 * data.num_classes]
    )
    assert mirrored.paths[k] == data.paths[0]
