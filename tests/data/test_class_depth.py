"""class_depth: one nested folder tree labelled at several granularities (DarkShotLearning's 25/67/100 classes)."""

from pathlib import Path

import pytest

from lightning_siamese.data.datamodules.folder import FolderDataModule
from lightning_siamese.data.sources.folder import load_image_folder
from tests.data.test_folder import write_tree

# shape / type / batch: 2 shapes, 3 types, 4 leaf folders, 2 images in each.
TREE = {"round/xanax/a": 2, "round/xanax/b": 2, "round/valium/a": 2, "square/oxy/a": 2}


def test_class_depth_names_classes_by_their_first_levels(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "pills", TREE)
    by_shape, summary = load_image_folder(root, image_size=8, class_depth=1)
    assert by_shape.class_names == ["round", "square"]
    assert by_shape.labels.bincount().tolist() == [6, 2]
    assert summary["classes_per_depth"] == {1: 2, 2: 3, 3: 4} and summary["leaf_classes"] == 4

    by_type, _ = load_image_folder(root, image_size=8, class_depth=2)
    assert by_type.class_names == ["round/valium", "round/xanax", "square/oxy"]
    assert by_type.group_names == ["round", "square"] and by_type.class_groups.tolist() == [0, 0, 1]
    # Every image keeps its class: the path of the image starts with the class folder.
    for path, label in zip(by_type.paths, by_type.labels.tolist()):
        assert Path(path).relative_to(root).as_posix().startswith(by_type.class_names[label] + "/")

    leaf, _ = load_image_folder(root, image_size=8, class_depth="leaf")
    deepest, _ = load_image_folder(root, image_size=8, class_depth=3)
    assert leaf.class_names == deepest.class_names == sorted(TREE)
    assert leaf.labels.tolist() == deepest.labels.tolist()


def test_leaf_classes_of_an_uneven_tree(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "uneven", {"a/x": 2, "a/y": 2, "b": 3})
    leaf, summary = load_image_folder(root, image_size=8)
    assert leaf.class_names == ["a/x", "a/y", "b"]
    assert summary["classes_per_depth"] == {1: 2}  # b's images sit one level down: depth 2 would orphan them
    top, _ = load_image_folder(root, image_size=8, class_depth=1)
    assert top.class_names == ["a", "b"] and top.labels.bincount().tolist() == [4, 3]


def test_class_depth_deeper_than_the_tree_names_the_folder(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "uneven", {"a/x": 2, "a/y": 2, "b": 3})
    with pytest.raises(
        ValueError,
        match=r"class_depth=2 is deeper than the folder tree: .*uneven/b holds images 1 "
        r"folder level\(s\) below .*expected root/<level 1>/.../<level 2>/<image>; "
        r"this tree allows class_depth 1 or 'leaf'",
    ):
        load_image_folder(root, class_depth=2)
    flat = write_tree(tmp_path / "flat", {"a": 2, "b": 2})
    with pytest.raises(ValueError, match=r"class_depth=3 .*flat/a holds images 1 folder level"):
        load_image_folder(flat, class_depth=3)
    with pytest.raises(ValueError, match="class_depth must be 'leaf' or a folder depth of at least 1, got 0"):
        load_image_folder(flat, class_depth=0)
    with pytest.raises(ValueError, match="got 'deepest'"):
        load_image_folder(flat, class_depth="deepest")


def test_folder_module_prints_the_class_count_of_every_depth(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_tree(tmp_path / "pills", {**TREE, "square/oxy/b": 2, "square/ritalin/a": 2})
    data = FolderDataModule(
        str(root),
        image_size=8,
        class_depth=2,
        n_way=2,
        val_tasks=4,
        test_tasks=4,
        val_pairs=4,
        batch_size=4,
        pairs_per_epoch=8,
        val_fraction=0.25,
        test_fraction=0.25,
    )
    data.setup("predict")
    printed = capsys.readouterr().out
    assert "classes by class_depth: 1: 2, 2: 4, 3: 6, leaf: 6; using class_depth 2." in printed
    assert data.collection.num_classes == 4
    with pytest.raises(ValueError, match="class_depth=4 is deeper than the folder tree"):
        FolderDataModule(str(root), class_depth=4).setup("predict")
