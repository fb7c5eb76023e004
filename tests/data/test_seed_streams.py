"""One seed, independent streams: episodes, unknown queries, evaluation pairs and triplets never share random numbers."""

from pathlib import Path

import numpy as np
import pytest
import torch

import lightning_siamese.data.samplers.episodes as episodes_module
from lightning_siamese.data.samplers.episodes import (
    sample_episodes,
    sample_unknown_queries,
)
from lightning_siamese.data.samplers.pairs import BalancedPairSampler, TripletSampler
from lightning_siamese.data.samplers.seeds import STREAMS, seed_stream
from tests.tiny import tiny_data

GROUPS = np.array([0] * 6 + [1] * 6)
LABELS = np.repeat(np.arange(len(GROUPS)), 5)


def test_episodes_keep_the_root_stream_and_every_other_purpose_is_its_own_child() -> None:
    assert STREAMS == ("episodes", "unknown_queries", "pairs", "triplets")  # append new purposes, never reorder
    plain = np.random.default_rng(7).random(8)
    # Episodes: the seed's root stream, so a seed draws the tasks it always drew (recorded accuracies stay comparable).
    assert np.array_equal(seed_stream(7, "episodes").random(8), plain)
    children = np.random.SeedSequence(7).spawn(3)
    draws = {"episodes": plain}
    for purpose, child in zip(STREAMS[1:], children):
        draws[purpose] = seed_stream(7, purpose).random(8)
        assert np.array_equal(draws[purpose], np.random.default_rng(child).random(8))
    assert len({tuple(d) for d in draws.values()}) == len(STREAMS)  # no two purposes share their draws
    with pytest.raises(ValueError, match="unknown random stream 'labels'"):
        seed_stream(7, "labels")


def test_episodes_and_their_unknown_queries_draw_from_their_own_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def spy(seed: int, purpose: str) -> np.random.Generator:
        asked.append((seed, purpose))
        return seed_stream(seed, purpose)

    monkeypatch.setattr(episodes_module, "seed_stream", spy)
    tasks = sample_episodes(LABELS, GROUPS, n_way=3, k_shot=1, n_query=1, num_tasks=10, seed=5)
    sample_unknown_queries(LABELS, GROUPS, tasks)
    sample_unknown_queries(LABELS, GROUPS, tasks, seed=9)
    assert asked == [(5, "episodes"), (5, "unknown_queries"), (9, "unknown_queries")]
    assert tasks.seed == 5


def test_validation_pairs_and_triplets_have_their_own_streams_and_stay_fixed_by_the_seed(tiny_omniglot: Path) -> None:
    dm = tiny_data(tiny_omniglot, val_pairs=16)
    first, again = dm.evaluation_set("val"), dm.evaluation_set("val")
    assert torch.equal(first.episodes.support, again.episodes.support) and torch.equal(
        first.episodes.query, again.episodes.query
    )
    assert all(torch.equal(first.pairs[k], again.pairs[k]) for k in first.pairs)
    assert all(torch.equal(first.triplets[k], again.triplets[k]) for k in first.triplets)

    collection, seed = first.collection, dm.val_seed
    pairs = BalancedPairSampler(collection.labels, collection.class_groups, dm.same_group_prob)
    triplets = TripletSampler(collection.labels, collection.class_groups, dm.same_group_prob)
    expected_pairs = pairs.sample(16, seed_stream(seed, "pairs"))
    expected_triplets = triplets.sample(16, seed_stream(seed, "triplets"))
    assert all(np.array_equal(first.pairs[k].numpy(), v) for k, v in expected_pairs.items())
    assert all(np.array_equal(first.triplets[k].numpy(), v) for k, v in expected_triplets.items())
    # Not the episodes' stream (default_rng(seed)): pairs no longer replay the episodes' draws.
    reused = pairs.sample(16, np.random.default_rng(seed))
    assert not all(np.array_equal(first.pairs[k].numpy(), v) for k, v in reused.items())
