"""Koch et al.'s fixed training set: pairs uniform per alphabet, plus distorted copies."""

from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_siamese.data.datamodules.batches import EpochKeySampler, KochPairBatches
from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from lightning_siamese.data.samplers.pairs import BalancedPairSampler
from lightning_siamese.data.transforms.augment import KochAffine
from lightning_siamese.data.transforms.views import to_float

CLASS_GROUPS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
LABELS = np.repeat(np.arange(9), 4)


def test_pair_set_is_uniform_per_group_half_same_and_seeded() -> None:
    sampler = BalancedPairSampler(LABELS, CLASS_GROUPS, same_group_prob=1.0)
    pairs = sampler.sample_per_group(600, np.random.default_rng(0))
    first, second, same = pairs["first"], pairs["second"], pairs["same"]
    group = CLASS_GROUPS[LABELS[first]]
    assert np.bincount(group).tolist() == [200, 200, 200]
    assert [int(same[group == g].sum()) for g in range(3)] == [100, 100, 100]
    assert np.all((LABELS[first] == LABELS[second]) == (same == 1))
    assert np.all(first[same == 1] != second[same == 1])  # two distinct images of one character
    assert np.all(CLASS_GROUPS[LABELS[second]] == group)  # different pairs stay in the alphabet
    again = sampler.sample_per_group(600, np.random.default_rng(0))
    assert all(np.array_equal(pairs[k], again[k]) for k in pairs)
    odd = sampler.sample_per_group(602, np.random.default_rng(1))
    assert sorted(np.bincount(CLASS_GROUPS[LABELS[odd["first"]]]).tolist()) == [200, 201, 201]


def koch_batches(distortions: int = 8, augment: KochAffine | None = None) -> tuple[KochPairBatches, torch.Tensor]:
    images = torch.randint(0, 256, (len(LABELS), 1, 12, 12), dtype=torch.uint8)
    pairs = BalancedPairSampler(LABELS, CLASS_GROUPS, 1.0).sample_per_group(30, np.random.default_rng(0))
    augment = KochAffine(p=1.0) if augment is None else augment
    return KochPairBatches(images, pairs, batch_size=8, seed=5, distortions=distortions, augment=augment), images


def test_an_epoch_is_every_pair_once_undistorted_and_eight_times_distorted() -> None:
    dataset, images = koch_batches()
    assert len(dataset) == 30 * 9 // 8
    seen = np.concatenate([np.stack(dataset.examples(0, b), axis=1) for b in range(len(dataset))])
    assert len({tuple(e) for e in seen.tolist()}) == len(seen) == len(dataset) * 8  # no example twice
    assert set(seen[:, 0]) <= set(range(30)) and set(seen[:, 1]) <= set(range(9))
    for b in range(len(dataset)):
        pair, copy = dataset.examples(0, b)
        batch = dataset[(0, b)]
        plain = to_float(images[dataset.pairs["first"][pair]])
        assert torch.equal(batch["same"], torch.from_numpy(dataset.pairs["same"][pair]))
        for k in range(len(pair)):
            assert torch.equal(batch["first"][k], plain[k]) == (copy[k] == 0)  # copy 0 as it is


def test_batches_are_pure_functions_of_their_key_and_copies_are_fixed_across_epochs() -> None:
    dataset, _ = koch_batches()
    first = dataset[(0, 3)]
    dataset[(1, 0)]  # another epoch in between
    again = dataset[(0, 3)]
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not np.array_equal(dataset.examples(0, 0)[0], dataset.examples(1, 0)[0])  # reshuffled per epoch
    # the same (pair, copy) in two epochs is the same distorted image pair
    where = {}
    for epoch in (0, 1):
        for b in range(len(dataset)):
            pair, copy = dataset.examples(epoch, b)
            batch = dataset[(epoch, b)]
            for k, key in enumerate(zip(pair.tolist(), copy.tolist())):
                where.setdefault(key, []).append(batch["second"][k])
    twice = [v for key, v in where.items() if key[1] > 0 and len(v) == 2]
    assert twice and all(torch.allclose(a, b) for a, b in twice)


def test_two_ranks_get_disjoint_whole_koch_batches() -> None:
    dataset, _ = koch_batches()
    ranks = [list(EpochKeySampler(dataset, num_replicas=2, rank=r, shuffle=False, drop_last=True)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(dataset) // 2
    examples = [{tuple(e) for e in np.stack(dataset.examples(*key), axis=1).tolist()} for key in ranks[0] + ranks[1]]
    assert len(set.union(*examples)) == sum(len(e) for e in examples)  # no example on two ranks


def test_distortions_need_koch_affine() -> None:
    with pytest.raises(ValueError, match="KochAffine"):
        KochPairBatches(
            torch.zeros(36, 1, 12, 12, dtype=torch.uint8),
            {
                "first": np.zeros(4, dtype=np.int64),
                "second": np.zeros(4, dtype=np.int64),
                "same": np.zeros(4, dtype=np.int64),
            },
            2,
            0,
            8,
            None,
        )
    plain, _ = koch_batches(distortions=0, augment=None)
    assert len(plain) == 30 // 8


def test_datamodule_koch_pair_sampling(tiny_omniglot: Path) -> None:
    data = OmniglotDataModule(
        root=str(tiny_omniglot),
        sets=["images_background"],
        val_alphabets=["Gamma"],
        test_alphabets=["Delta"],
        image_size=28,
        batch_size=16,
        pair_sampling="koch",
        koch_pairs=40,
        koch_distortions=2,
        same_alphabet_prob=1.0,
        augment=KochAffine(),
        n_way=5,
        val_tasks=4,
        val_pairs=8,
        seed=0,
    )
    data.setup("fit")
    loader = data.train_dataloader()
    dataset = loader.dataset
    assert isinstance(dataset, KochPairBatches) and len(loader) == 40 * 3 // 16
    train = data.split("train")
    groups = train.class_groups[train.labels[torch.from_numpy(dataset.pairs["first"])]]
    assert torch.bincount(groups).tolist() == [20, 20]  # Alpha and Beta, 20 pairs each
    batch = next(iter(loader))
    assert batch["first"].shape == (16, 1, 28, 28) and set(batch) == {"first", "second", "same"}
    with pytest.raises(ValueError, match="batch_kind 'pairs'"):
        OmniglotDataModule(root=str(tiny_omniglot), pair_sampling="koch", batch_kind="triplets")
    with pytest.raises(ValueError, match="KochAffine"):
        OmniglotDataModule(root=str(tiny_omniglot), pair_sampling="koch")
