from pathlib import Path

import pytest
import torch

from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from tests.tiny import tiny_data


def make_module(root: Path, **overrides) -> OmniglotDataModule:
    options = {"batch_size": 16, "pairs_per_epoch": 64, "val_tasks": 20, "test_tasks": 20, "val_pairs": 32}
    return tiny_data(root, **(options | overrides))


def test_splits_are_disjoint_by_class_and_alphabet(tiny_omniglot: Path) -> None:
    dm = make_module(tiny_omniglot)
    train, val, test = dm.split("train"), dm.split("val"), dm.split("test")
    assert set(train.group_names) == {"Alpha", "Beta"}
    assert val.group_names == ["Gamma"] and test.group_names == ["Delta"]
    names = [set(s.class_names) for s in (train, val, test)]
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert len(train) + len(val) + len(test) == len(dm.collection)


def test_koch_validation_tasks_are_within_alphabet_two_drawers(tiny_omniglot: Path) -> None:
    dm = make_module(tiny_omniglot)
    dm.setup("fit")
    evaluation = dm.evaluation_set("val")
    episodes = evaluation.episodes
    assert episodes.support.shape == (20, 5, 1)
    drawers = evaluation.collection.instances
    for t in range(len(episodes)):
        assert len(set(drawers[episodes.support[t].flatten()].tolist())) == 1
        assert len(set(drawers[episodes.query[t].flatten()].tolist())) == 1
    same = evaluation.pairs["same"]
    assert len(same) == 32 and int(same.sum()) == 16


def test_training_batches_are_balanced_seeded_and_change_per_epoch(tiny_omniglot: Path) -> None:
    dm = make_module(tiny_omniglot)
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == 4
    x1, same = batches[0]["first"], batches[0]["same"]
    assert x1.shape == (16, 1, 28, 28) and x1.dtype == torch.float32
    assert int(same.sum()) == 8
    again = list(dm.train_dataloader())
    assert torch.equal(batches[0]["first"], again[0]["first"])
    loader.sampler.set_epoch(1)
    next_epoch = list(loader)
    assert not torch.equal(batches[0]["first"], next_epoch[0]["first"])


def test_impossible_validation_task_fails_at_setup(tiny_omniglot: Path) -> None:
    dm = make_module(tiny_omniglot, n_way=20)
    with pytest.raises(ValueError, match="no group can supply a 20-way"):
        dm.setup("fit")
    dm = make_module(tiny_omniglot, k_shot=10, n_query=11)
    with pytest.raises(ValueError, match="at least 21 images"):
        dm.setup("validate")


def test_missing_or_overlapping_alphabets_are_named(tiny_omniglot: Path) -> None:
    with pytest.raises(ValueError, match="Omega"):
        make_module(tiny_omniglot, val_alphabets=["Omega"]).setup("fit")
    with pytest.raises(ValueError, match="disjoint"):
        make_module(tiny_omniglot, val_alphabets=["Gamma"], test_alphabets=["Gamma"])
    with pytest.raises(ValueError, match="no test alphabets"):
        make_module(tiny_omniglot, test_alphabets=[]).setup("test")


def test_class_rotations_grow_only_the_training_split(tiny_omniglot: Path) -> None:
    plain = make_module(tiny_omniglot)
    rotated = make_module(tiny_omniglot, class_rotations=[0, 90, 180, 270])
    assert rotated.split("train").num_classes == 4 * plain.split("train").num_classes
    assert rotated.split("val").num_classes == plain.split("val").num_classes
    assert torch.equal(rotated.split("val").images, plain.split("val").images)
    both = make_module(tiny_omniglot, class_rotations=[0, 90, 180, 270], class_mirrors=True)
    assert both.split("train").num_classes == 8 * plain.split("train").num_classes
    assert torch.equal(both.split("val").images, plain.split("val").images)


def test_train_drawers_keeps_koch_s_12_drawers_in_training_only(tiny_omniglot: Path) -> None:
    plain = make_module(tiny_omniglot)
    koch = make_module(tiny_omniglot, train_drawers=12)
    train = koch.split("train")
    assert sorted(set(train.instances.tolist())) == list(range(1, 13))
    assert len(train) == len(plain.split("train")) * 12 // 20
    assert train.class_names == plain.split("train").class_names
    assert all(f"_{d:02d}.png" in path for d, path in zip(train.instances.tolist(), train.paths))
    assert len(koch.split("val")) == len(plain.split("val"))  # evaluation keeps all 20
    with pytest.raises(ValueError, match="train_drawers must be >= 2"):
        make_module(tiny_omniglot, train_drawers=1)


@pytest.mark.parametrize(
    ("kind", "keys"), [("triplets", {"anchor", "positive", "negative"}), ("classes", {"images", "labels"})]
)
def test_triplet_and_class_balanced_batch_kinds(tiny_omniglot: Path, kind: str, keys: set) -> None:
    dm = make_module(tiny_omniglot, batch_kind=kind, batch_size=12, images_per_class=3)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == keys
    if kind == "classes":
        assert batch["images"].shape == (12, 1, 28, 28)
        assert sorted(torch.bincount(batch["labels"])[torch.bincount(batch["labels"]) > 0].tolist()) == [3, 3, 3, 3]


def test_bad_batch_kind_settings_are_named(tiny_omniglot: Path) -> None:
    with pytest.raises(ValueError, match="batch_kind"):
        make_module(tiny_omniglot, batch_kind="quads")
    with pytest.raises(ValueError, match="multiple of images_per_class=5"):
        make_module(tiny_omniglot, batch_kind="classes", batch_size=12, images_per_class=5)
    with pytest.raises(ValueError, match="4 x 21"):
        make_module(tiny_omniglot, batch_kind="classes", batch_size=84, images_per_class=21).setup("fit")


def test_darkshot_parity_options_reach_the_training_batches(tiny_omniglot: Path) -> None:
    from lightning_siamese.data.transforms.augment import DarkShotAugment

    dm = make_module(tiny_omniglot, pair_sampling="darkshot", augment=DarkShotAugment())
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert int(batch["same"].sum()) == 8 and batch["first"].shape == (16, 1, 28, 28)
    with pytest.raises(ValueError, match="pair_sampling"):
        make_module(tiny_omniglot, pair_sampling="random")
