from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_siamese.data.datamodules.folder import FolderDataModule
from lightning_siamese.data.sources.folder import load_image_folder

MODES = [("RGB", "png"), ("L", "jpg"), ("RGBA", "png"), ("P", "gif"), ("L", "pgm"), ("RGB", "tiff")]


def write_tree(root: Path, classes: dict[str, int], size: tuple[int, int] = (40, 30)) -> Path:
    rng = np.random.default_rng(0)
    for c, (name, n) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            mode, ext = MODES[(c + i) % len(MODES)]
            pixels = rng.integers(0, 255, size=(size[1] + i, size[0] + 2 * i, 3), dtype=np.uint8)
            image = Image.fromarray(pixels, "RGB").convert(mode)
            image.save(folder / f"{i:03d}.{ext}")
    return root


def test_nested_classes_mixed_formats_modes_and_sizes(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "pills", {"Benzos/Xanax_Pills": 4, "Benzos/Valium": 3, "Opioids/Oxy": 5})
    data, summary = load_image_folder(root, image_size=24, channels=1)
    assert data.class_names == ["Benzos/Valium", "Benzos/Xanax_Pills", "Opioids/Oxy"]
    assert data.group_names == ["Benzos", "Opioids"]
    assert data.class_groups.tolist() == [0, 0, 1]
    assert data.images.shape == (12, 1, 24, 24) and data.images.dtype == torch.uint8
    assert summary["original_width"] == (40, 48) and summary["original_height"] == (30, 34)
    rgb, _ = load_image_folder(root, image_size=16, channels=3)
    assert rgb.images.shape == (12, 3, 16, 16)


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    folder = tmp_path / "root" / "a"
    folder.mkdir(parents=True)
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(folder / "clear.png")
    Image.new("RGBA", (8, 8), (0, 0, 0, 255)).save(folder / "black.png")
    data, _ = load_image_folder(tmp_path / "root", image_size=None)
    assert data.images[data.paths.index(str(folder / "clear.png"))].min() == 255
    assert data.images[data.paths.index(str(folder / "black.png"))].max() == 0


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "r1", {"a": 2, "b": 2})
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty class folder .*empty"):
        load_image_folder(root)

    root = write_tree(tmp_path / "r2", {"a": 2, "b": 2})
    (root / "a" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"notes.txt is not an image file"):
        load_image_folder(root)
    with pytest.warns(UserWarning, match="notes.txt"):
        data, summary = load_image_folder(root, skip_bad_images=True)
    assert len(data) == 4 and summary["skipped"] == [str(root / "a" / "notes.txt")]

    root = write_tree(tmp_path / "r3", {"a": 2, "b": 2})
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match=r"cannot decode image .*broken.jpg"):
        load_image_folder(root)

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(root, channels=2)


def make_module(root: Path, **overrides) -> FolderDataModule:
    options = {
        "root": str(root),
        "image_size": 16,
        "n_way": 3,
        "val_tasks": 10,
        "test_tasks": 10,
        "val_pairs": 8,
        "batch_size": 8,
        "pairs_per_epoch": 16,
        "val_fraction": 0.25,
        "test_fraction": 0.25,
        "seed": 0,
    }
    options.update(overrides)
    return FolderDataModule(**options)


def test_split_by_class_and_small_classes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    classes = {f"c{i:02d}": 4 for i in range(12)} | {"lonely": 1}
    root = write_tree(tmp_path / "set", classes)
    dm = make_module(root)
    dm.setup("fit")
    names = {s: set(dm.split(s).class_names) for s in ("train", "val", "test")}
    assert not names["train"] & names["val"] and not names["train"] & names["test"] and not names["val"] & names["test"]
    assert (len(names["train"]), len(names["val"]), len(names["test"])) == (6, 3, 4)
    assert "lonely" in names["test"]  # the seed's rule: too few images -> novel test class
    out = capsys.readouterr().out
    assert "13 classes" in out and "lonely" in out and "moved to the test split" in out

    dropped = make_module(root, small_classes="drop")
    dropped.setup("fit")
    assert "lonely" not in set(dropped.split("test").class_names)
    assert "dropped" in dropped.summary

    same_again = make_module(root)
    assert set(same_again.split("val").class_names) == names["val"]  # the split is seeded


def test_split_by_group_keeps_top_level_folders_together(tmp_path: Path) -> None:
    classes = {f"g{g}/c{i}": 3 for g in range(4) for i in range(3)}
    root = write_tree(tmp_path / "nested", classes)
    dm = make_module(root, split_by="group", within_group=True)
    dm.setup("fit")
    groups = {s: {n.split("/")[0] for n in dm.split(s).class_names} for s in ("train", "val", "test")}
    assert len(groups["val"]) == 1 and len(groups["test"]) == 1 and len(groups["train"]) == 2
    assert not groups["val"] & groups["train"]


def test_folder_module_rejects_bad_settings(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "s", {"a": 2, "b": 2})
    with pytest.raises(ValueError, match="small_classes"):
        make_module(root, small_classes="keep")
    with pytest.raises(ValueError, match="val_fraction"):
        make_module(root, val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError, match="min_images"):
        make_module(root, min_images=1)
    with pytest.raises(ValueError, match="need at least two classes"):  # one training class left
        make_module(root, val_fraction=0.5, test_fraction=0.0).setup("fit")


def test_non_image_files_at_the_root_are_skipped_with_one_warning(tmp_path: Path) -> None:
    """The AT&T face database as distributed: a README beside s1/ ... s40/."""
    root = write_tree(tmp_path / "att", {"s1": 2, "s2": 2, "s3": 2})
    (root / "README").write_text("The ORL Database of Faces\n")
    (root / "index.html").write_text("<html></html>")
    (root / "thumb.jpg").write_bytes(b"\xff\xd8 not really a jpeg")  # an image by name, not by the decoder
    with pytest.warns(UserWarning, match="not images") as caught:
        data, summary = load_image_folder(root, image_size=16)
    messages = [str(w.message) for w in caught if "not images" in str(w.message)]
    assert len(messages) == 1 and all(name in messages[0] for name in ("README", "index.html", "thumb.jpg"))
    assert data.class_names == ["s1", "s2", "s3"] and len(data) == 6
    assert summary["ignored"] == [str(root / n) for n in ("README", "index.html", "thumb.jpg")]


def test_images_at_the_root_are_an_error_naming_them(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "mixed", {"a": 2, "b": 2})
    (root / "README").write_text("hello")
    Image.new("L", (8, 8)).save(root / "stray.png")
    Image.new("L", (8, 8)).save(root / "scan", format="PNG")  # an image by the decoder, whatever its name
    with pytest.raises(
        ValueError, match=r"image files directly in .*mixed \(scan, stray.png\): expected root/<class>/<image>"
    ) as error:
        load_image_folder(root)
    assert "README" not in str(error.value)


def test_too_few_classes_for_a_class_batch_names_the_option_and_a_value_that_works(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "faces", {f"p{i:02d}": 3 for i in range(8)})  # 4 training classes after the split
    dm = make_module(root, batch_kind="classes", batch_size=16, images_per_class=2, n_way=2)
    with pytest.raises(
        ValueError,
        match=r"needs 8 classes with at least 2 images; the training split has 4 such classes of 4.*"
        r"--data.init_args.batch_size 8 \(4 classes x 2 images\)",
    ):
        dm.setup("fit")
    fits = make_module(root, batch_kind="classes", batch_size=8, images_per_class=2, n_way=2)
    fits.setup("fit")
    assert fits.train_dataloader().dataset[(0, 0)]["images"].shape[0] == 8
