"""Unknown queries for open-set episodes: outside the task's ways, from its group, seeded."""

import numpy as np
import pytest
import torch

from lightning_siamese.data.samplers.episodes import (
    sample_episodes,
    sample_unknown_queries,
    unknown_count,
)

# 3 groups of 6, 6 and 2 classes, 5 images each.
GROUPS = np.array([0] * 6 + [1] * 6 + [2] * 2)
LABELS = np.repeat(np.arange(len(GROUPS)), 5)


def episodes(seed: int = 0, n_way: int = 4, within_group: bool = True):
    return sample_episodes(
        LABELS, GROUPS, n_way=n_way, k_shot=1, n_query=2, num_tasks=50, seed=seed, within_group=within_group
    )


@pytest.mark.parametrize(
    ("known", "fraction", "expected"), [(20, 0.2, 5), (8, 0.2, 2), (8, 0.5, 8), (5, 0.01, 1), (20, 0.5, 20)]
)
def test_unknowns_make_the_requested_fraction_of_queries(known: int, fraction: float, expected: int) -> None:
    assert unknown_count(known, fraction) == expected


def test_unknown_queries_come_from_other_classes_of_the_same_group() -> None:
    tasks = episodes()
    unknown = sample_unknown_queries(LABELS, GROUPS, tasks, fraction=0.2)
    assert unknown.shape == (50, 2)  # 8 known queries, 2 unknown: 20%
    for t in range(len(tasks)):
        ways = set(tasks.classes[t].tolist())
        for image in unknown[t].tolist():
            assert LABELS[image] not in ways
            assert GROUPS[LABELS[image]] == GROUPS[tasks.classes[t, 0]]
        assert len(set(LABELS[unknown[t]].tolist())) == 2  # distinct classes while there are enough


def test_unknowns_are_fixed_by_the_seed() -> None:
    tasks = episodes()
    first = sample_unknown_queries(LABELS, GROUPS, tasks)
    assert torch.equal(first, sample_unknown_queries(LABELS, GROUPS, tasks))
    assert torch.equal(first, sample_unknown_queries(LABELS, GROUPS, tasks, seed=tasks.seed))
    assert not torch.equal(first, sample_unknown_queries(LABELS, GROUPS, tasks, seed=tasks.seed + 1))


def test_a_group_with_no_class_to_spare_lends_from_the_split() -> None:
    tasks = episodes(n_way=6)  # a 6-way task uses every class of group 0 or 1
    unknown = sample_unknown_queries(LABELS, GROUPS, tasks, fraction=0.5)
    for t in range(len(tasks)):
        assert not set(LABELS[unknown[t]].tolist()) & set(tasks.classes[t].tolist())


def test_across_groups_draws_from_the_whole_split() -> None:
    tasks = episodes(within_group=False)
    unknown = sample_unknown_queries(LABELS, GROUPS, tasks, fraction=0.5, within_group=False)
    groups = {int(GROUPS[LABELS[i]]) for i in unknown.flatten().tolist()}
    assert groups == {0, 1, 2}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_bad_fractions_are_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match=f"unknown fraction .* strictly between 0 and 1, got {fraction}"):
        sample_unknown_queries(LABELS, GROUPS, episodes(), fraction=fraction)


def test_a_split_with_no_class_outside_the_task_is_refused() -> None:
    labels, groups = np.repeat(np.arange(3), 4), np.zeros(3, dtype=np.int64)
    tasks = sample_episodes(labels, groups, n_way=3, k_shot=1, n_query=1, num_tasks=2, seed=0)
    with pytest.raises(
        ValueError, match=r"need a class outside each task's 3 ways.*every one of the split's 3 classes"
    ):
        sample_unknown_queries(labels, groups, tasks)
