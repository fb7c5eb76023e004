import numpy as np
import pytest
import torch

from lightning_siamese.data.samplers.episodes import sample_episodes
from lightning_siamese.data.samplers.pairs import BalancedPairSampler

# 3 groups: group 0 has classes 0-3, group 1 classes 4-6, group 2 class 7 alone.
CLASS_GROUPS = np.array([0, 0, 0, 0, 1, 1, 1, 2])
LABELS = np.repeat(np.arange(8), 5)  # 5 images per class
INSTANCES = np.tile(np.arange(1, 6), 8)  # image k of each class drawn by drawer k


def test_pairs_are_half_same_half_different_and_correct() -> None:
    sampler = BalancedPairSampler(LABELS, CLASS_GROUPS, same_group_prob=0.5)
    first, second, same = sampler.sample(128, np.random.default_rng(0)).values()
    assert same.sum() == 64 and len(same) == 128
    pos, neg = same == 1, same == 0
    assert np.all(LABELS[first[pos]] == LABELS[second[pos]])
    assert np.all(first[pos] != second[pos])  # two distinct images
    assert np.all(LABELS[first[neg]] != LABELS[second[neg]])


def test_same_group_probability_controls_negatives() -> None:
    rng = np.random.default_rng(1)
    within = BalancedPairSampler(LABELS, [*CLASS_GROUPS[:7].tolist(), 1], same_group_prob=1.0)
    first, second, same = within.sample(2000, rng).values()
    groups = np.array([*CLASS_GROUPS[:7].tolist(), 1])
    neg = same == 0
    assert np.all(groups[LABELS[first[neg]]] == groups[LABELS[second[neg]]])

    half = BalancedPairSampler(LABELS, CLASS_GROUPS, same_group_prob=0.5)
    first, second, same = half.sample(4000, rng).values()
    neg = same == 0
    frac = np.mean(CLASS_GROUPS[LABELS[first[neg]]] == CLASS_GROUPS[LABELS[second[neg]]])
    # 0.5 within, plus cross-alphabet draws that land in the same group by chance
    assert 0.5 < frac < 0.75


def test_pair_sampling_is_seeded() -> None:
    sampler = BalancedPairSampler(LABELS, CLASS_GROUPS)
    a = sampler.sample(64, np.random.default_rng(7)).values()
    b = sampler.sample(64, np.random.default_rng(7)).values()
    c = sampler.sample(64, np.random.default_rng(8)).values()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_pair_sampler_rejects_impossible_input() -> None:
    with pytest.raises(ValueError, match="two images"):
        BalancedPairSampler(np.arange(4), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="same_group_prob"):
        BalancedPairSampler(LABELS, CLASS_GROUPS, same_group_prob=1.5)


def test_episodes_are_valid_within_one_group() -> None:
    episodes = sample_episodes(LABELS, CLASS_GROUPS, n_way=3, k_shot=2, n_query=2, num_tasks=200, seed=0)
    assert episodes.support.shape == (200, 3, 2) and episodes.query.shape == (200, 3, 2)
    labels = torch.from_numpy(LABELS)
    for t in range(200):
        classes = episodes.classes[t]
        assert len(set(classes.tolist())) == 3
        assert len({int(CLASS_GROUPS[c]) for c in classes}) == 1  # within one group
        assert int(CLASS_GROUPS[classes[0]]) != 2  # group 2 cannot supply 3 ways
        for w in range(3):
            images = torch.cat([episodes.support[t, w], episodes.query[t, w]])
            assert torch.all(labels[images] == classes[w])
            assert len(set(images.tolist())) == 4  # shots and queries are distinct images
    used_groups = {int(CLASS_GROUPS[c]) for c in episodes.classes[:, 0]}
    assert used_groups == {0, 1}


def test_episodes_with_instances_share_drawers_koch_style() -> None:
    episodes = sample_episodes(
        LABELS, CLASS_GROUPS, n_way=3, k_shot=1, n_query=1, num_tasks=50, seed=3, instances=INSTANCES
    )
    inst = torch.from_numpy(INSTANCES)
    for t in range(50):
        support_drawers = inst[episodes.support[t, :, 0]]
        query_drawers = inst[episodes.query[t, :, 0]]
        assert len(set(support_drawers.tolist())) == 1  # all shots from drawer A
        assert len(set(query_drawers.tolist())) == 1  # all queries from drawer B
        assert support_drawers[0] != query_drawers[0]


def test_episodes_are_fixed_by_their_seed() -> None:
    a = sample_episodes(LABELS, CLASS_GROUPS, 3, 1, 1, 20, seed=5)
    b = sample_episodes(LABELS, CLASS_GROUPS, 3, 1, 1, 20, seed=5)
    c = sample_episodes(LABELS, CLASS_GROUPS, 3, 1, 1, 20, seed=6)
    assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query)
    assert not torch.equal(a.support, c.support)


def test_across_groups_episodes() -> None:
    episodes = sample_episodes(LABELS, CLASS_GROUPS, 8, 1, 1, 10, seed=0, within_group=False)
    assert all(len(set(row.tolist())) == 8 for row in episodes.classes)


def test_impossible_tasks_fail_with_counts() -> None:
    with pytest.raises(ValueError, match="no group can supply a 5-way") as err:
        sample_episodes(LABELS, CLASS_GROUPS, 5, 1, 1, 10, seed=0, group_names=["A", "B", "C"])
    assert "A: 4" in str(err.value) and "B: 3" in str(err.value)
    with pytest.raises(ValueError, match="at least 6 images"):
        sample_episodes(LABELS, CLASS_GROUPS, 2, 3, 3, 10, seed=0, within_group=False)
    with pytest.raises(ValueError, match=r"only 8 of 8 classes|cannot draw 9-way"):
        sample_episodes(LABELS, CLASS_GROUPS, 9, 1, 1, 10, seed=0, within_group=False)
    with pytest.raises(ValueError, match="n_way"):
        sample_episodes(LABELS, CLASS_GROUPS, 1, 1, 1, 10, seed=0)
