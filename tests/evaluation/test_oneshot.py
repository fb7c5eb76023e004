import math

import numpy as np
import pytest
import torch

from lightning_siamese.data.samplers import Episodes, sample_episodes
from lightning_siamese.evaluation.oneshot import evaluate_episodes, mean_ci95


def negative_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return -(a - b).norm(dim=-1)


def test_separable_embeddings_score_100_and_shuffled_ones_score_chance() -> None:
    labels = np.repeat(np.arange(30), 6)
    groups = np.zeros(30, dtype=int)
    episodes = sample_episodes(labels, groups, n_way=5, k_shot=1, n_query=2, num_tasks=300, seed=0)
    centres = torch.randn(30, 16) * 10
    embeddings = centres[labels] + 0.1 * torch.randn(len(labels), 16)
    result = evaluate_episodes(embeddings, episodes, negative_distance)
    assert result.accuracy == 100.0 and result.ci95 == 0.0
    assert (result.n_way, result.k_shot, result.n_query, result.tasks, result.seed) == (5, 1, 2, 300, 0)

    noise = evaluate_episodes(torch.randn(len(labels), 16), episodes, negative_distance)
    assert abs(noise.accuracy - 20.0) < 3 * noise.ci95


def test_known_answer_on_a_hand_built_episode() -> None:
    # 1-d embeddings; way 0 shot at 0.0, way 1 shot at 10.0.
    embeddings = torch.tensor([[0.0], [10.0], [1.0], [6.0], [9.0], [4.0]])
    episodes = Episodes(
        support=torch.tensor([[[0], [1]]]),
        query=torch.tensor([[[2, 3], [4, 5]]]),  # way 0: 1.0 right, 6.0 wrong; way 1: 9.0 right, 4.0 wrong
        classes=torch.tensor([[0, 1]]),
        seed=0,
    )
    assert evaluate_episodes(embeddings, episodes, negative_distance).accuracy == 50.0


def test_k_shot_mean_versus_nearest_shot() -> None:
    # way 0 shots at 0 and 10; way 1 shots at 6 and 6; the query (way 0) sits at 9.
    embeddings = torch.tensor([[0.0], [10.0], [6.0], [6.0], [9.0], [5.0]])
    episodes = Episodes(
        support=torch.tensor([[[0, 1], [2, 3]]]),
        query=torch.tensor([[[4], [5]]]),
        classes=torch.tensor([[0, 1]]),
        seed=0,
    )
    mean = evaluate_episodes(embeddings, episodes, negative_distance, shot_reduction="mean")
    nearest = evaluate_episodes(embeddings, episodes, negative_distance, shot_reduction="max")
    assert mean.accuracy == 50.0  # mean distance to way 0 is 5, to way 1 is 3: wrong
    assert nearest.accuracy == 100.0  # nearest shot of way 0 is 1 away: right


def test_chunked_scoring_matches_one_pass() -> None:
    labels = np.repeat(np.arange(12), 4)
    episodes = sample_episodes(labels, np.zeros(12, dtype=int), 4, 2, 2, 50, seed=1)
    embeddings = torch.randn(len(labels), 8)
    from lightning_siamese.evaluation.oneshot import episode_scores

    full = episode_scores(embeddings, episodes, negative_distance)
    chunked = episode_scores(embeddings, episodes, negative_distance, max_elements=1)
    torch.testing.assert_close(full, chunked)


def test_confidence_interval() -> None:
    values = torch.tensor([50.0, 100.0, 0.0, 50.0])
    mean, ci = mean_ci95(values)
    assert mean == 50.0
    assert ci == pytest.approx(1.96 * values.std().item() / 2)
    assert math.isnan(mean_ci95(torch.tensor([1.0]))[1])


def test_prototype_scores_against_the_mean_shot() -> None:
    # way 0 shots at 0 and 10 (prototype 5); way 1 shots at 6 and 6; the query (way 0) at 4.5.
    embeddings = torch.tensor([[0.0], [10.0], [6.0], [6.0], [4.5], [7.0]])
    episodes = Episodes(
        support=torch.tensor([[[0, 1], [2, 3]]]),
        query=torch.tensor([[[4], [5]]]),
        classes=torch.tensor([[0, 1]]),
        seed=0,
    )
    assert evaluate_episodes(embeddings, episodes, negative_distance, "prototype").accuracy == 100.0
    assert evaluate_episodes(embeddings, episodes, negative_distance, "mean").accuracy == 50.0
    with pytest.raises(ValueError, match="shot_reduction"):
        evaluate_episodes(embeddings, episodes, negative_distance, "median")
