import numpy as np
import pytest
import torch

from lightning_siamese.data.datamodules.batches import EpochKeySampler, SampledBatches
from lightning_siamese.data.samplers.classes import ClassBalancedSampler
from lightning_siamese.data.samplers.pairs import BalancedPairSampler, TripletSampler

CLASS_GROUPS = np.array([0, 0, 0, 0, 1, 1, 1, 2])
LABELS = np.concatenate([np.repeat(np.arange(7), 5), [7]])  # class 7 has a single image


def test_triplets_have_distinct_anchor_and_positive_and_a_foreign_negative() -> None:
    sampler = TripletSampler(LABELS, CLASS_GROUPS, same_group_prob=1.0)
    out = sampler.sample(500, np.random.default_rng(0))
    a, p, n = out["anchor"], out["positive"], out["negative"]
    assert np.all(a != p)
    assert np.all(LABELS[a] == LABELS[p]) and np.all(LABELS[a] != LABELS[n])
    assert not np.any(LABELS[a] == 7)  # a one-image class cannot anchor
    # within-group negatives wherever the group has another class
    assert np.all(CLASS_GROUPS[LABELS[a]] == CLASS_GROUPS[LABELS[n]])
    counts = np.bincount(LABELS[a], minlength=8)[:7]
    assert counts.min() > 40  # anchor classes drawn uniformly (500 / 7 ~ 71)


def test_class_balanced_batches_hold_p_classes_of_k_images() -> None:
    sampler = ClassBalancedSampler(LABELS, classes_per_batch=3, images_per_class=4)
    out = sampler.sample(12, np.random.default_rng(1))
    idx, labels = out["images"], out["labels"]
    assert len(idx) == 12 and len(set(idx.tolist())) == 12
    assert np.array_equal(LABELS[idx], labels)
    assert sorted(np.bincount(labels)[np.bincount(labels) > 0].tolist()) == [4, 4, 4]


def test_class_balanced_batches_can_come_from_one_group() -> None:
    sampler = ClassBalancedSampler(LABELS, 3, 2, CLASS_GROUPS, same_group_prob=1.0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        groups = CLASS_GROUPS[np.unique(sampler.sample(6, rng)["labels"])]
        # group 0 has 4 classes, group 1 three: a batch is one group's; group 2's only
        # class has one image, so that group never takes part
        assert len(set(groups.tolist())) == 1 and groups[0] in (0, 1)
    topped_up = ClassBalancedSampler(LABELS, 5, 2, CLASS_GROUPS, same_group_prob=1.0).sample(10, rng)["labels"]
    assert len(np.unique(topped_up)) == 5  # no group has 5 classes: filled from the others
    mixed = ClassBalancedSampler(LABELS, 3, 2, CLASS_GROUPS, same_group_prob=0.0)
    spans = [len(set(CLASS_GROUPS[mixed.sample(6, rng)["labels"]].tolist())) for _ in range(50)]
    assert max(spans) > 1
    with pytest.raises(ValueError, match="needs class_groups"):
        ClassBalancedSampler(LABELS, 3, 2, same_group_prob=0.5)


def test_one_image_per_class_batches_reach_every_class() -> None:
    labels = np.array([0, 0, 0, 1, 2, 3, 3])  # classes 1 and 2 have a single image
    sampler = ClassBalancedSampler(labels, classes_per_batch=4, images_per_class=1)
    batch = sampler.sample(4, np.random.default_rng(0))
    assert sorted(batch["labels"]) == [0, 1, 2, 3]
    assert list(labels[batch["images"]]) == list(batch["labels"])


def test_class_balanced_sampler_rejects_what_the_data_cannot_supply() -> None:
    with pytest.raises(ValueError, match=r"3 x 6"):
        ClassBalancedSampler(LABELS, classes_per_batch=3, images_per_class=6)
    with pytest.raises(ValueError, match=r"8 classes"):
        ClassBalancedSampler(LABELS, classes_per_batch=8, images_per_class=2)
    with pytest.raises(ValueError, match="images_per_class"):
        ClassBalancedSampler(LABELS, classes_per_batch=2, images_per_class=0)
    with pytest.raises(ValueError, match="batch_size"):
        ClassBalancedSampler(LABELS, 2, 2).sample(5, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("sampler", "keys"),
    [
        (BalancedPairSampler(LABELS, CLASS_GROUPS), {"first", "second", "same"}),
        (TripletSampler(LABELS, CLASS_GROUPS), {"anchor", "positive", "negative"}),
        (ClassBalancedSampler(LABELS, 2, 3), {"images", "labels"}),
    ],
)
def test_two_ranks_get_disjoint_whole_batches_of_every_kind(sampler, keys) -> None:
    images = torch.arange(len(LABELS), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    dataset = SampledBatches(images, sampler, batch_size=6, num_batches=10, seed=3)
    ranks = [list(EpochKeySampler(dataset, num_replicas=2, rank=r, shuffle=False, drop_last=True)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 5 and not set(ranks[0]) & set(ranks[1])
    batches = [dataset[k] for k in ranks[0] + ranks[1]]
    assert set(batches[0]) == keys
    flat = [torch.cat([v.flatten() for v in b.values()]) for b in batches]
    assert len({tuple(f.tolist()) for f in flat}) == 10  # ten different batches
    again = dataset[ranks[0][0]]
    assert all(torch.equal(again[k], batches[0][k]) for k in keys)  # a batch is a function of its key


def test_darkshot_pair_generators() -> None:
    from lightning_siamese.data.samplers.pairs import ImagePairSampler

    labels = np.repeat(np.arange(5), 2)
    out = ImagePairSampler(labels, balanced=True).sample(2000, np.random.default_rng(0))
    first, second, same = out["first"], out["second"], out["same"]
    assert same.sum() == 1000
    pos, neg = same == 1, same == 0
    assert np.all(labels[first[pos]] == labels[second[pos]]) and np.all(labels[first[neg]] != labels[second[neg]])
    assert np.mean(first[pos] == second[pos]) == pytest.approx(0.5, abs=0.05)  # the positive may be the anchor itself
    assert np.array_equal(first[pos], first[neg])  # each anchor gets one positive and one negative
    random = ImagePairSampler(labels, balanced=False).sample(4000, np.random.default_rng(0))
    assert np.mean(random["same"]) == pytest.approx(0.2, abs=0.03)  # 1 in 5 classes


def test_darkshot_augment_applies_the_six_operations() -> None:
    from lightning_siamese.data.transforms.augment import DarkShotAugment

    images = torch.rand(64, 1, 20, 20)
    out = DarkShotAugment(p_identity=0.0)(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    changed = (out - images).abs().flatten(1).amax(1) > 1e-6
    assert changed.all()
    same = DarkShotAugment(p_identity=1.0)(images, torch.Generator().manual_seed(0))
    assert torch.equal(same, images)
    flipped = DarkShotAugment.OPS.index("hflip")
    generator = torch.Generator().manual_seed(0)
    choice = torch.randint(6, (64,), generator=generator)
    i = int((choice == flipped).nonzero()[0])
    torch.testing.assert_close(out[i], images[i].flip(-1))
