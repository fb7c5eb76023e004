"""benchmarks/darkshot.py: the DarkShotLearning table from a nested tree, end to end on tiny data."""

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO


def load_script():
    spec = importlib.util.spec_from_file_location("darkshot", REPO / "benchmarks" / "darkshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def omniglot_zip(path: Path, alphabets: int = 4, characters: int = 5, drawers: int = 3) -> Path:
    """A zip laid out like Omniglot's: images_background/<alphabet>/characterNN/<id>_<drawer>.png."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for a in range(alphabets):
            for c in range(characters):
                strokes = rng.random((28, 28)) < 0.2  # one character's shape, redrawn by each drawer
                for d in range(drawers):
                    noisy = strokes ^ (rng.random((28, 28)) < 0.03)
                    image = Image.fromarray(np.where(noisy, 0, 255).astype(np.uint8), "L")
                    buffer = path.parent / "tmp.png"
                    image.save(buffer)
                    archive.write(buffer, f"images_background/Alphabet{a}/character{c:02d}/{a * 100 + c}_{d:02d}.png")
    return path


def test_build_omniglot_tree_gives_two_class_levels(tmp_path: Path) -> None:
    script = load_script()
    tree = script.build_omniglot_tree(omniglot_zip(tmp_path / "o.zip"), tmp_path / "tree", alphabets=3)
    assert sorted(p.name for p in tree.iterdir()) == ["Alphabet0", "Alphabet1", "Alphabet2"]
    assert len(list(tree.glob("*/*/*.png"))) == 3 * 5 * 3
    by_alphabet = script.split_preview(tree, 1)
    assert by_alphabet.collection.num_classes == 3
    by_character = script.split_preview(tree, 2)
    assert by_character.collection.num_classes == 15
    assert "classes by class_depth: 1: 3, 2: 15, leaf: 15" in by_character.summary
    with pytest.raises(
        ValueError, match=r"class_depth=3 is deeper than the folder tree: .*Alphabet0/character00 holds"
    ):
        script.split_preview(tree, 3)


@pytest.mark.slow
def test_one_command_prints_one_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = load_script()
    output = tmp_path / "darkshot.md"
    script.main(
        [
            "--omniglot",
            str(omniglot_zip(tmp_path / "o.zip")),
            "--tree",
            str(tmp_path / "tree"),
            "--class_depth",
            "2",
            "--n_way",
            "4",
            "3",
            "--tasks",
            "6",
            "--epochs",
            "1",
            "--pairs_per_epoch",
            "8",
            "--batch_size",
            "4",
            "--log_dir",
            str(tmp_path / "logs"),
            "--output",
            str(output),
            "--variants",
            "Siamese abs(e1-e2) + sigmoid, BCE",
            "categorical CNN (penultimate layer)",
            "--fit_args",
            "--data.init_args.n_way",
            "4",
            "--data.init_args.val_tasks",
            "6",
            "--data.init_args.val_pairs",
            "8",
            "--data.init_args.num_workers",
            "0",
        ]
    )
    table = output.read_text()
    record = json.loads(output.with_suffix(".json").read_text())
    names = [row["name"] for row in record["rows"]]
    assert names == ["knn", "chance", "Siamese abs(e1-e2) + sigmoid, BCE", "categorical CNN (penultimate layer)"]
    for row in record["rows"]:
        assert set(row["results"]) == {"4-way 1-shot", "3-way 1-shot"}
        assert all(r["tasks"] == 6 for r in row["results"].values())
    assert "| categorical CNN (penultimate layer) |" in table and "ClassifierHead" in table
    assert "classes by class_depth: 1: 4, 2: 20, leaf: 20; using class_depth 2." in table
    assert "Command: `python benchmarks/darkshot.py --omniglot" in table
    assert table in capsys.readouterr().out
