"""Lake et al.'s 20 one-shot runs: loader, episodes, scoring, bad input and download."""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_siamese.data.datamodules.base import lake_runs_set
from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from lightning_siamese.data.sources.omniglot import load_lake_runs
from lightning_siamese.evaluation.oneshot import episode_accuracies, evaluate_episodes
from tests.conftest import character_image


def make_lake_runs(root: Path, runs: int = 3, ways: int = 5, size: int = 28) -> Path:
    """Write ``root/runNN/{training/classNN.png, test/itemNN.png, class_labels.txt}`` in Lake's format.

    A class is a synthetic character: its training image is drawer 1's, its test item
    drawer 2's; item k of run r matches a class fixed by a seeded permutation.
    """
    for r in range(1, runs + 1):
        run = f"run{r:02d}"
        (root / run / "training").mkdir(parents=True)
        (root / run / "test").mkdir()
        answers = np.random.default_rng(r).permutation(ways) + 1
        lines = []
        for c in range(1, ways + 1):
            character_image(zlib.crc32(f"{run}/{c}".encode()), 1, size).save(
                root / run / "training" / f"class{c:02d}.png"
            )
        for item, c in enumerate(answers, 1):
            character_image(zlib.crc32(f"{run}/{c}".encode()), 2, size).save(
                root / run / "test" / f"item{item:02d}.png"
            )
            lines.append(f"{run}/test/item{item:02d}.png {run}/training/class{c:02d}.png")
        (root / run / "class_labels.txt").write_text("\n".join(lines) + "\n")
    return root


def zip_folder(folder: Path, target: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return target


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return make_lake_runs(tmp_path / "all_runs")


def test_loader_gives_one_episode_per_run(runs: Path) -> None:
    collection, episodes = load_lake_runs(runs)
    assert collection.group_names == ["run01", "run02", "run03"]
    assert episodes.support.shape == (3, 5, 1) and episodes.query.shape == (3, 5, 1)
    assert collection.images.shape == (30, 1, 28, 28) and collection.images.dtype == torch.uint8
    # Support way w is classNN in file order; its query is the test item class_labels.txt pairs with it.
    assert collection.paths[int(episodes.support[0, 2, 0])].endswith("run01/training/class03.png")
    lines = dict(line.split()[::-1] for line in (runs / "run01" / "class_labels.txt").read_text().splitlines())
    assert collection.paths[int(episodes.query[0, 2, 0])].endswith(lines["run01/training/class03.png"])
    assert torch.equal(collection.labels[episodes.support[..., 0]], collection.labels[episodes.query[..., 0]])
    assert torch.equal(episodes.classes, collection.labels[episodes.support[..., 0]])
    assert collection.class_names[int(episodes.classes[1, 0])] == "run02/class01"
    # Strokes bright on black, like load_omniglot; resized on request.
    assert collection.images.float().mean() < 128
    assert load_lake_runs(runs, image_size=14, invert=False)[0].images.shape[-1] == 14
    assert load_lake_runs(runs, invert=False)[0].images.float().mean() > 128


def test_folder_parent_and_zips_load_alike(runs: Path, tmp_path: Path) -> None:
    reference = load_lake_runs(runs)[0].images
    assert torch.equal(load_lake_runs(tmp_path)[0].images, reference)  # a folder with all_runs/ in it
    bare = zip_folder(runs, tmp_path / "bare.zip")  # run01/... at the top of the zip
    (tmp_path / "zipped").mkdir()
    nested = zip_folder(runs, tmp_path / "zipped" / "all_runs.zip", prefix="all_runs/")
    assert torch.equal(load_lake_runs(bare)[0].images, reference)
    assert torch.equal(load_lake_runs(nested)[0].images, reference)
    assert torch.equal(load_lake_runs(tmp_path / "zipped")[0].images, reference)  # a folder with all_runs.zip


def test_scoring_perfect_and_known_wrong(runs: Path) -> None:
    collection, episodes = load_lake_runs(runs)
    one_hot = torch.nn.functional.one_hot(collection.labels).float()

    def dot(a, b):
        return (a * b).sum(-1)

    result = evaluate_episodes(one_hot, episodes, dot)
    assert result.accuracy == 100.0 and result.tasks == 3 and result.n_way == 5
    # In run01 two test items trade places: 3 of 5 right there, every other run perfect.
    wrong = one_hot.clone()
    swapped = episodes.query[0, :2, 0]
    wrong[swapped] = wrong[swapped.flip(0)]
    per_run = episode_accuracies(wrong, episodes, dot)
    assert per_run.tolist() == pytest.approx([60.0, 100.0, 100.0])
    assert evaluate_episodes(wrong, episodes, dot).accuracy == pytest.approx(260 / 3)


def test_ties_go_to_the_first_training_image_as_in_lakes_demo(runs: Path) -> None:
    collection, episodes = load_lake_runs(runs)
    same = torch.zeros(len(collection), 1)  # every score equal: each item picks class01
    assert episode_accuracies(same, episodes, lambda a, b: (a * b).sum(-1)).tolist() == [20.0, 20.0, 20.0]


def test_evaluation_set_pairs_are_balanced_within_runs(runs: Path) -> None:
    collection, episodes = load_lake_runs(runs)
    evaluation = lake_runs_set(collection, episodes)
    assert evaluation.name == "lake_runs" and evaluation.task_names == ["run01", "run02", "run03"]
    same = evaluation.pairs["same"]
    assert len(same) == 30 and int(same.sum()) == 15
    labels, groups = collection.labels, collection.groups
    first, second = evaluation.pairs["first"], evaluation.pairs["second"]
    assert torch.equal((labels[first] == labels[second]).long(), same)
    assert torch.equal(groups[first], groups[second])
    t = evaluation.triplets
    assert (labels[t["anchor"]] == labels[t["positive"]]).all() and (labels[t["anchor"]] != labels[t["negative"]]).all()


def test_data_module_tests_on_the_runs_only_when_given(runs: Path, tiny_omniglot: Path) -> None:
    common = {
        "root": str(tiny_omniglot),
        "sets": ["images_background"],
        "val_alphabets": ["Gamma"],
        "test_alphabets": ["Delta"],
        "image_size": 28,
        "n_way": 5,
        "test_tasks": 7,
    }
    with_runs = OmniglotDataModule(runs_dir=str(runs), **common)
    with_runs.setup("test")
    assert with_runs.test_dataloader().dataset.name == "lake_runs"
    assert with_runs._collection is None  # testing on the runs loads no Omniglot set
    plain = OmniglotDataModule(**common)
    plain.setup("test")
    dataset = plain.test_dataloader().dataset
    assert dataset.name == "oneshot" and dataset.task_names is None and len(dataset.episodes) == 7


def _rewrite_line(runs: Path, run: str, number: int, text: str) -> None:
    path = runs / run / "class_labels.txt"
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda r: (r / "run02" / "training" / "class02.png").unlink(),
            r"run02/class_labels.txt line \d+ names run02/training/class02.png, which is missing",
        ),
        (
            lambda r: (r / "run01" / "test" / "item04.png").unlink(),
            r"run01/class_labels.txt line 4 names run01/test/item04.png, which is missing",
        ),
        (
            lambda r: _rewrite_line(r, "run03", 2, "run03/test/item02.png"),
            r"run03/class_labels.txt line 2: expected '<test image> <training image>'",
        ),
        (
            lambda r: _rewrite_line(r, "run01", 1, "run01/test/item01.png run01/training/class09.png"),
            r"line 1 names run01/training/class09.png, which is missing",
        ),
        (
            lambda r: _rewrite_line(r, "run01", 1, "run01/test/item01.png run02/training/class01.png"),
            r"run01/class_labels.txt line 1: run02/training/class01.png is not in run01/training/",
        ),
        (
            lambda r: (r / "run02" / "test" / "extra.png").write_bytes(b"x"),
            r"run02/test/extra.png is not named in .*run02/class_labels.txt",
        ),
        (lambda r: (r / "run03" / "class_labels.txt").unlink(), r"run03 has no class_labels.txt"),
        (
            lambda r: (r / "run02" / "training" / "class01.png").write_bytes(b"not a png"),
            r"cannot decode image .*run02/training/class01.png",
        ),
    ],
    ids=[
        "missing-training-image",
        "missing-test-image",
        "malformed-line",
        "line-names-absent-file",
        "other-run",
        "stray-image",
        "no-labels",
        "corrupt-image",
    ],
)
def test_bad_input_names_the_run_and_file(runs: Path, damage, message: str) -> None:
    damage(runs)
    with pytest.raises(ValueError, match=message):
        load_lake_runs(runs)


def test_a_run_of_another_size_and_repeated_answers_are_named(runs: Path) -> None:
    path = runs / "run02" / "class_labels.txt"
    lines = path.read_text().splitlines()
    train = lines[-1].split()[1]
    (runs / lines[-1].split()[0]).unlink()
    (runs / train).unlink()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"run02 has 4 classes and test items, but run01 has 5"):
        load_lake_runs(runs)

    other = make_lake_runs(runs.parent / "other")
    first = (other / "run01" / "class_labels.txt").read_text().splitlines()
    _rewrite_line(other, "run01", 2, f"{first[1].split()[0]} {first[0].split()[1]}")
    with pytest.raises(
        ValueError,
        match=r"run01/class_labels.txt: training image\(s\) \['run01/training/class\d\d.png'\] named on several lines",
    ):
        load_lake_runs(other)


def test_missing_runs_are_named_with_the_download_hint(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"Lake's one-shot runs not found at .*nowhere.*all_runs.zip.*download: true"
    ):
        load_lake_runs(tmp_path / "nowhere")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
        archive.writestr("readme.txt", "no runs here")
    with pytest.raises(ValueError, match=r"no runs found in .*empty.zip: expected run01/"):
        load_lake_runs(tmp_path / "empty.zip")


def test_download_fetches_all_runs_zip(runs: Path, tmp_path: Path, http_server, monkeypatch) -> None:
    served, url = http_server
    zip_folder(runs, served / "all_runs.zip")
    import lightning_siamese.data.sources.omniglot as sources

    monkeypatch.setattr(sources, "LAKE_RUNS_URL", f"{url}/all_runs.zip")
    with pytest.warns(UserWarning, match="no published checksum"):
        collection, _ = load_lake_runs(tmp_path / "fresh", download=True)
    assert (tmp_path / "fresh" / "all_runs.zip").exists() and len(collection) == 30

    md5 = hashlib.md5((served / "all_runs.zip").read_bytes()).hexdigest()
    monkeypatch.setattr(sources, "LAKE_RUNS_MD5", md5)
    data = OmniglotDataModule(runs_dir=str(tmp_path / "mine.zip"), download=True, sets=[])
    data.prepare_data()
    assert (tmp_path / "mine.zip").exists()
    monkeypatch.setattr(sources, "LAKE_RUNS_MD5", "0" * 32)
    with pytest.raises(RuntimeError):
        load_lake_runs(tmp_path / "bad", download=True)
