import math

import numpy as np
import pytest
import torch

from lightning_siamese.data.samplers.episodes import Episodes, sample_episodes
from lightning_siamese.evaluation.oneshot import (
    SupportHubness,
    episode_scores,
    evaluate_episodes,
    mean_ci95,
)


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


def hub_episode(query: float) -> tuple[torch.Tensor, Episodes]:
    # 1-d supports: a hub A at 0 between B at -3 and C at 3, and D far off at 10; one query of way C.
    embeddings = torch.tensor([[0.0], [-3.0], [3.0], [10.0], [query]])
    episodes = Episodes(
        support=torch.tensor([[[0], [1], [2], [3]]]),
        query=torch.tensor([[[4], [4], [4], [4]]]),  # the same image under each way: only way C's is scored below
        classes=torch.tensor([[0, 1, 2, 3]]),
        seed=0,
    )
    return embeddings, episodes


def test_support_hubness_discounts_the_way_nearest_the_others() -> None:
    embeddings, episodes = hub_episode(1.4)  # 1.4 from the hub A, 1.6 from its own C
    hubness = SupportHubness(weight=0.2, k=2)
    plain = episode_scores(embeddings, episodes, negative_distance)
    corrected = episode_scores(embeddings, episodes, negative_distance, hubness=hubness)
    # Mean of each way's 2 nearest other supports: A -3 (B, C), B -4.5 (A, C), C -4.5 (A, B), D -8.5 (C, A).
    expected = plain - 0.2 * torch.tensor([-3.0, -4.5, -4.5, -8.5])
    torch.testing.assert_close(corrected, expected)
    assert plain[0, 2].argmax() == 0 and corrected[0, 2].argmax() == 2  # the C query: A before, C after
    assert SupportHubness(weight=0.0, k=2).correct(plain, plain[:, :4]).equal(plain)


def test_support_hubness_averages_a_ways_shots_and_never_looks_at_other_queries() -> None:
    labels = np.repeat(np.arange(10), 5)
    episodes = sample_episodes(labels, np.zeros(10, dtype=int), n_way=5, k_shot=2, n_query=2, num_tasks=20, seed=3)
    embeddings = torch.randn(len(labels), 6)
    hubness = SupportHubness(weight=0.5, k=3)
    corrected = episode_scores(embeddings, episodes, negative_distance, hubness=hubness)
    plain = episode_scores(embeddings, episodes, negative_distance)
    for t in range(len(episodes)):
        shots = embeddings[episodes.support[t]]  # [N, K, D]
        ways = negative_distance(shots[:, :, None, None], shots[None, None]).mean((1, 3))  # [N, N]: shot pairs averaged
        hub = torch.stack([ways[i][torch.arange(5) != i].topk(3).values.mean() for i in range(5)])
        torch.testing.assert_close(corrected[t], plain[t] - 0.5 * hub, rtol=1e-5, atol=1e-5)
    moved = embeddings.clone()
    moved[episodes.query.flatten()] += 5.0  # other queries moving changes nothing but their own rows
    shifted = episode_scores(moved, episodes, negative_distance, hubness=hubness) - episode_scores(
        moved, episodes, negative_distance
    )
    torch.testing.assert_close(shifted, corrected - plain)


def test_support_hubness_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match=r"weight must be >= 0, got -0.1"):
        SupportHubness(weight=-0.1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        SupportHubness(k=0)
    embeddings, episodes = hub_episode(1.4)
    with pytest.raises(ValueError, match=r"hubness k \(4\) must be below the number of ways \(4\)"):
        episode_scores(embeddings, episodes, negative_distance, hubness=SupportHubness(k=4))


def test_a_cluster_interval_resamples_whole_characters() -> None:
    from lightning_siamese.evaluation.oneshot import cluster_interval

    # 50 tasks x 20 queries, all right: nothing to resample away.
    assert cluster_interval(torch.ones(50, 20, dtype=torch.bool), torch.arange(20).repeat(50, 1)) == [100.0, 100.0]
    # Two characters, one always recognised and one never, 500 queries each: a per-task interval over 1,000
    # tasks would be narrow, but a draw of two characters gives 0, 50 or 100% with chances 1/4, 1/2, 1/4.
    correct = torch.tensor([[True, False]]).repeat(500, 1)
    characters = torch.tensor([[7, 9]]).repeat(500, 1)
    assert cluster_interval(correct, characters, resamples=4000) == [0.0, 100.0]
    # Many characters, each right with probability 0.8: the interval holds the mean, narrows with more
    # characters, and a seed fixes it.
    g = torch.Generator().manual_seed(0)
    outcome = torch.rand(1000, 20, generator=g) < 0.8
    few, many = torch.randint(10, (1000, 20), generator=g), torch.randint(1000, (1000, 20), generator=g)
    low_few, high_few = cluster_interval(outcome, few, seed=1)
    low_many, high_many = cluster_interval(outcome, many, seed=1)
    mean = float(outcome.double().mean()) * 100
    assert low_few <= mean <= high_few and low_many <= mean <= high_many
    assert high_many - low_many < high_few - low_few
    assert cluster_interval(outcome, few, seed=1) == [low_few, high_few]


def test_cluster_intervals_name_characters_and_alphabets_by_the_queries_classes() -> None:
    from lightning_siamese.evaluation.oneshot import cluster_intervals

    # 2 tasks of 2 ways, 1 query each; image i shows class i // 2; classes 0-1 in alphabet 0, 2-3 in alphabet 1.
    episodes = Episodes(
        support=torch.tensor([[[0], [2]], [[4], [6]]]),
        query=torch.tensor([[[1], [3]], [[5], [7]]]),
        classes=torch.tensor([[0, 1], [2, 3]]),
        seed=0,
    )
    labels, class_groups = torch.arange(8) // 2, torch.tensor([0, 0, 1, 1])
    correct = torch.tensor([[True, True], [False, False]])  # task 1 (alphabet 0's classes) right, task 2 wrong
    intervals = cluster_intervals(correct, episodes, labels, class_groups, resamples=4000)
    assert intervals["characters"][0] < 50 < intervals["characters"][1]
    assert intervals["alphabets"] == [0.0, 100.0]  # two alphabets, one all right, one all wrong
    one_alphabet = cluster_intervals(correct, episodes, labels, torch.zeros(4, dtype=torch.long))
    assert set(one_alphabet) == {"characters"}
