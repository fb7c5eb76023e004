"""LFWDataModule: the validation carve, both training modes, View 2 folds, download, bad input."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_siamese.data import LFWDataModule
from lightning_siamese.data.sources.lfw import read_pairs

# 16 people: the training list names A..L, the test list M..P.
PEOPLE = {f"P{c}_Q": n for c, n in zip("ABCDEFGHIJKLMNOP", [4, 3, 1, 2, 5, 1, 3, 2, 1, 4, 2, 3, 3, 2, 2, 1])}


def face(person: int, number: int, size: int = 250) -> bytes:
    """A synthetic 'face': a person-specific blob pattern, shifted a little per image."""
    rng = np.random.default_rng(person)
    array = np.zeros((size, size), dtype=np.uint8)
    shift = number * 3
    for _ in range(4):
        r, c = rng.integers(60, 190, size=2)
        array[r - 12 + shift : r + 12 + shift, c - 12 : c + 12] = rng.integers(120, 255)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_people(root: Path, prefix: str = "lfw2") -> None:
    for p, (person, count) in enumerate(PEOPLE.items()):
        folder = root / prefix / person
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(1, count + 1):
            (folder / f"{person}_{n:04d}.jpg").write_bytes(face(p, n))


def pair_lines(people: list[str], per_side: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    several = [p for p in people if PEOPLE[p] >= 2]
    matched = []
    for k in range(per_side):
        person = several[k % len(several)]
        i, j = rng.choice(np.arange(1, PEOPLE[person] + 1), size=2, replace=False)
        matched.append(f"{person}\t{i}\t{j}")
    mismatched = []
    for _ in range(per_side):
        a, b = rng.choice(people, size=2, replace=False)
        mismatched.append(f"{a}\t{rng.integers(1, PEOPLE[a] + 1)}\t{b}\t{rng.integers(1, PEOPLE[b] + 1)}")
    return matched + mismatched


def write_lfw(root: Path) -> Path:
    """A tiny LFW in LFW-a's layout with View 1 and View 2 lists of the official format."""
    write_people(root)
    names = list(PEOPLE)
    train, test = names[:12], names[12:]
    (root / "pairsDevTrain.txt").write_text("\n".join(["10", *pair_lines(train, 10, 0)]) + "\n")
    (root / "pairsDevTest.txt").write_text("\n".join(["4", *pair_lines(test, 4, 1)]) + "\n")
    (root / "peopleDevTrain.txt").write_text("\n".join([str(len(train)), *(f"{p}\t{PEOPLE[p]}" for p in train)]) + "\n")
    # View 2: 4 folds of 3 + 3 pairs, each fold over its own 4 people.
    folds = [pair_lines(names[4 * f : 4 * f + 4], 3, 10 + f) for f in range(4)]
    (root / "pairs.txt").write_text("\n".join(["4\t3", *(line for fold in folds for line in fold)]) + "\n")
    return root


@pytest.fixture
def lfw(tmp_path: Path) -> Path:
    return write_lfw(tmp_path / "lfw")


def module(root: Path, **kwargs) -> LFWDataModule:
    options = {"image_size": 32, "batch_size": 4, "eval_batch_size": 8, "val_fraction": 0.2} | kwargs
    return LFWDataModule(root=str(root), **options)


def as_names(dm: LFWDataModule, split: str) -> set[tuple]:
    pairs = dm.pair_list(split)
    return {(a, b, int(s)) for a, b, s in zip(pairs.first, pairs.second, pairs.same)}


def test_validation_is_a_seeded_stratified_share_of_the_training_pairs(lfw: Path) -> None:
    dm = module(lfw)
    dm.setup("fit")
    train, val = dm.pair_list("train"), dm.pair_list("val")
    assert len(train) == 16 and len(val) == 4
    assert int(val.same.sum()) == 2  # 20% of each label
    assert not as_names(dm, "train") & as_names(dm, "val")
    listed = read_pairs(lfw / "pairsDevTrain.txt")
    assert as_names(dm, "train") | as_names(dm, "val") == {
        (a, b, int(s)) for a, b, s in zip(listed.first, listed.second, listed.same)
    }
    again, other = module(lfw), module(lfw, split_seed=1)
    assert as_names(again, "val") == as_names(dm, "val")
    assert as_names(other, "val") != as_names(dm, "val")


def test_pair_mode_trains_on_the_training_pairs_each_epoch_reshuffled(lfw: Path) -> None:
    dm = module(lfw)
    dm.setup("fit")
    dataset = dm.train_dataloader().dataset
    assert len(dataset) == 4  # 16 pairs in batches of 4
    batch = dataset[(0, 0)]
    assert batch["first"].shape == (4, 1, 32, 32) and batch["same"].shape == (4,)
    labels = torch.cat([dataset[(0, b)]["same"] for b in range(4)])
    assert int(labels.sum()) == 8  # the whole list, each pair once
    order0 = np.concatenate([dataset.examples(0, b)[0] for b in range(4)])
    order1 = np.concatenate([dataset.examples(1, b)[0] for b in range(4)])
    assert sorted(order0) == sorted(order1) == list(range(16)) and list(order0) != list(order1)


def test_validation_set_scores_the_carved_pairs(lfw: Path) -> None:
    dm = module(lfw)
    dm.setup("fit")
    val = dm.val_dataloader().dataset
    assert val.episodes is None and val.name == "verification"
    pairs = dm.pair_list("val")
    names = [Path(p).name for p in val.collection.paths]
    for k in range(len(pairs)):
        person, number = pairs.first[k]
        assert names[int(val.pairs["first"][k])] == f"{person}_{number:04d}.jpg"
    assert torch.equal(val.pairs["same"], pairs.same)


def test_people_mode_trains_on_every_image_of_the_training_people_but_the_validation_ones(lfw: Path) -> None:
    dm = module(lfw, train_on="people", train_people="peopleDevTrain.txt", batch_kind="classes", images_per_class=2)
    dm.setup("fit")
    train = dm.split("train")
    held_out = dm.pair_list("val").people()
    expected = {p for p in list(PEOPLE)[:12] if p not in held_out}
    assert set(train.class_names) == expected
    assert len(train) == sum(PEOPLE[p] for p in expected)
    batch = dm.train_dataloader().dataset[(0, 0)]
    assert batch["images"].shape == (4, 1, 32, 32)
    assert "training on" in dm.summary and "validation people" in dm.summary


def test_people_mode_refuses_test_people_in_training(lfw: Path) -> None:
    people = lfw / "everyone.txt"
    people.write_text("\n".join([str(len(PEOPLE)), *(f"{p}\t{n}" for p, n in PEOPLE.items())]) + "\n")
    dm = module(lfw, train_on="people", train_people=str(people), batch_kind="classes", images_per_class=2)
    with pytest.raises(ValueError, match="training people are in the test pairs"):
        dm.setup("fit")


def test_test_stage_scores_the_test_list(lfw: Path) -> None:
    dm = module(lfw)
    dm.setup("test")
    test = dm.test_dataloader().dataset
    assert len(test.pairs["same"]) == 8 and test.source.endswith("pairsDevTest.txt")
    assert set(test.collection.class_names) <= set(list(PEOPLE)[12:])


def test_view2_fold_trains_on_the_other_folds_and_tests_on_its_own(lfw: Path) -> None:
    dm = module(lfw, view2_fold=2, val_fraction=0.25)
    train_and_val = dm.pair_list("train").people() | dm.pair_list("val").people()
    test = dm.pair_list("test")
    assert len(test) == 6 and set(test.folds.tolist()) == {1}
    assert len(dm.pair_list("train")) + len(dm.pair_list("val")) == 18
    assert not train_and_val & test.people()  # View 2's folds are person-disjoint
    with pytest.raises(ValueError, match=r"view2_fold=5, but .* has 4 folds"):
        module(lfw, view2_fold=5).pair_list("test")


def test_a_pair_naming_a_missing_image_names_the_line_and_the_path(lfw: Path) -> None:
    lines = (lfw / "pairsDevTrain.txt").read_text().splitlines()
    lines[3] = "PA_Q\t1\tPA_Q\t9"  # a matched line turned into a 4-field one: malformed
    (lfw / "bad.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 4: expected a matched 'name i j' pair"):
        module(lfw, train_pairs="bad.txt").setup("fit")
    lines[3] = "PA_Q\t1\t9"
    (lfw / "bad.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        FileNotFoundError, match=r"bad.txt, line 4: image 9 of PA_Q is not in LFW: .*PA_Q_0009.jpg does not exist"
    ):
        module(lfw, train_pairs="bad.txt").setup("fit")
    lines[3] = "Nobody_Here\t1\t2"
    (lfw / "bad.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(FileNotFoundError, match=r"line 4: image 1 of Nobody_Here is not in LFW"):
        module(lfw, train_pairs="bad.txt").setup("fit")


def test_bad_options_are_refused(lfw: Path) -> None:
    with pytest.raises(ValueError, match="train_on must be"):
        module(lfw, train_on="faces")
    with pytest.raises(ValueError, match="set batch_kind 'pairs'"):
        module(lfw, batch_kind="triplets")
    with pytest.raises(ValueError, match="val_fraction must be in"):
        module(lfw, val_fraction=0.0)
    with pytest.raises(FileNotFoundError, match="no LFW images at"):
        module(lfw, images=str(lfw / "lfw2" / "PA_Q")).setup("fit")
    with pytest.raises(FileNotFoundError, match=r"LFW pair list .*nowhere.txt does not exist"):
        module(lfw, train_pairs="nowhere.txt").setup("fit")
    with pytest.raises(ValueError, match="needs test_pairs"):
        module(lfw, test_pairs=None).setup("test")


def test_download_fetches_the_archive_and_lists_from_a_server(tmp_path: Path, http_server, monkeypatch) -> None:
    served, url = http_server
    source = write_lfw(tmp_path / "source")
    with tarfile.open(served / "lfw.tgz", "w:gz") as archive:
        archive.add(source / "lfw2", arcname="lfw")
    for name in ("pairsDevTrain.txt", "pairsDevTest.txt"):
        (served / name).write_bytes((source / name).read_bytes())
    import lightning_siamese.data.sources.lfw as lfw_module

    md5 = {
        name: hashlib.md5((served / name).read_bytes()).hexdigest()
        for name in ("lfw.tgz", "pairsDevTrain.txt", "pairsDevTest.txt")
    }
    monkeypatch.setitem(lfw_module.LFW_ARCHIVES, "original", ("lfw.tgz", md5["lfw.tgz"]))
    monkeypatch.setitem(lfw_module.LFW_LISTS, "pairsDevTrain.txt", md5["pairsDevTrain.txt"])
    monkeypatch.setitem(lfw_module.LFW_LISTS, "pairsDevTest.txt", "0" * 32)  # a corrupted download
    dm = module(tmp_path / "fresh", download=True, download_url=url)
    with pytest.raises(RuntimeError):
        dm.prepare_data()
    monkeypatch.setitem(lfw_module.LFW_LISTS, "pairsDevTest.txt", md5["pairsDevTest.txt"])
    dm.prepare_data()
    assert (tmp_path / "fresh" / "lfw" / "PA_Q" / "PA_Q_0001.jpg").is_file()
    dm.setup("fit")
    assert dm.files.prefix == "lfw" and len(dm.pair_list("val")) == 4


@pytest.mark.parametrize("train_on", ["pairs", "people"])
def test_a_malformed_test_list_is_an_error_naming_its_file_and_line(lfw: Path, train_on: str) -> None:
    lines = (lfw / "pairsDevTest.txt").read_text().splitlines()
    lines[2] = "PM_Q\t1\tx"  # a matched line whose image number is no number
    (lfw / "pairsDevTest.txt").write_text("\n".join(lines) + "\n")
    options = (
        {"train_people": "peopleDevTrain.txt", "batch_kind": "classes", "images_per_class": 2}
        if train_on == "people"
        else {}
    )
    with pytest.raises(ValueError, match=r"pairsDevTest.txt, line 3: 'x' is not an image number"):
        module(lfw, train_on=train_on, **options).setup("fit")


def test_pair_mode_refuses_test_people_in_the_training_pairs(lfw: Path) -> None:
    lines = (lfw / "pairsDevTrain.txt").read_text().splitlines()
    lines[-1] = "PA_Q\t1\tPM_Q\t2"  # a mismatched training pair with a test person
    (lfw / "leaky.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"1 training people are in the test pairs \(PM_Q\)"):
        module(lfw, train_pairs="leaky.txt").setup("fit")


def test_training_without_the_test_list_at_hand_skips_the_check(lfw: Path) -> None:
    (lfw / "pairsDevTest.txt").unlink()  # held back while training
    for options in (
        {},
        {"train_on": "people", "train_people": "peopleDevTrain.txt", "batch_kind": "classes", "images_per_class": 2},
    ):
        dm = module(lfw, **options)
        dm.setup("fit")
        assert len(dm.split("train")) > 0
    dm = module(lfw, test_pairs=None)
    dm.setup("fit")
    assert len(dm.split("train")) > 0
