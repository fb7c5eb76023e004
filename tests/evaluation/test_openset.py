"""Open-set evaluation against loops over queries, sklearn's AUC and the closed-set scorer."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lightning_siamese.data.samplers.episodes import (
    sample_episodes,
    sample_unknown_queries,
)
from lightning_siamese.evaluation.oneshot import episode_accuracies, mean_ci95
from lightning_siamese.evaluation.openset import (
    evaluate_openset,
    openset_scores,
    rejection_threshold,
)
from lightning_siamese.models.heads import TripletHead

GROUPS = np.array([0] * 8 + [1] * 8)
LABELS = np.repeat(np.arange(16), 6)


def setup(k_shot: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(16, 6, generator=g)
    embeddings = centres[torch.from_numpy(LABELS)] + 0.8 * torch.randn(len(LABELS), 6, generator=g)
    episodes = sample_episodes(LABELS, GROUPS, n_way=5, k_shot=k_shot, n_query=2, num_tasks=30, seed=seed)
    unknown = sample_unknown_queries(LABELS, GROUPS, episodes, fraction=0.2)
    return embeddings, episodes, unknown, TripletHead(6).similarity


def loop_best(embeddings, support, queries, similarity):
    """For each query: (best score, best way), mean over shots, first way on ties."""
    out = []
    for q in queries:
        per_way = [float(similarity(embeddings[q][None], embeddings[s]).mean()) for s in support]
        way = int(np.argmax(per_way))
        out.append((per_way[way], way))
    return out


@pytest.mark.parametrize("k_shot", [1, 2])
def test_metrics_match_loops_and_sklearn(k_shot: int) -> None:
    embeddings, episodes, unknown, similarity = setup(k_shot)
    scores = openset_scores(embeddings, episodes, unknown, similarity)
    threshold = float(scores.known_best.median())
    result = evaluate_openset(scores, threshold, episodes)
    closed, opened, aucs = [], [], []
    for t in range(len(episodes)):
        support = episodes.support[t]
        known = loop_best(embeddings, support, episodes.query[t].flatten().tolist(), similarity)
        own = torch.arange(5).repeat_interleave(2).tolist()
        other = loop_best(embeddings, support, unknown[t].tolist(), similarity)
        closed.append(100.0 * np.mean([way == o for (_, way), o in zip(known, own)]))
        right = [s >= threshold and way == o for (s, way), o in zip(known, own)] + [s < threshold for s, _ in other]
        opened.append(100.0 * np.mean(right))
        aucs.append(roc_auc_score([1] * len(known) + [0] * len(other), [s for s, _ in known + other]))
    assert result.closed_acc == pytest.approx(np.mean(closed))
    assert result.open_acc == pytest.approx(np.mean(opened))
    assert result.open_ci95 == pytest.approx(mean_ci95(torch.tensor(opened))[1])
    assert result.auc == pytest.approx(np.mean(aucs), abs=1e-6)
    assert result.auc_ci95 == pytest.approx(mean_ci95(torch.tensor(aucs))[1], abs=1e-6)
    pooled = roc_auc_score(
        [1] * scores.known_best.numel() + [0] * scores.unknown_best.numel(),
        torch.cat([scores.known_best.flatten(), scores.unknown_best.flatten()]).numpy(),
    )
    assert result.pooled_auc == pytest.approx(pooled, abs=1e-6)
    # The closed-set part is exactly the plain N-way evaluation of the same episodes.
    assert result.closed_acc == pytest.approx(float(episode_accuracies(embeddings, episodes, similarity).mean()))
    assert result.unknown_fraction == pytest.approx(
        3 / 13
    )  # 10 known queries, 10 * 0.2 / 0.8 = 2.5 rounded half up: 3 unknown


@pytest.mark.parametrize("target", [0.01, 0.1, 0.3])
def test_rejection_threshold_holds_the_false_accept_target(target: float) -> None:
    embeddings, episodes, unknown, similarity = setup()
    scores = openset_scores(embeddings, episodes, unknown, similarity)
    threshold = rejection_threshold(scores, target)
    result = evaluate_openset(scores, threshold, episodes)
    assert result.false_accept <= 100 * target
    # Any lower cut among the scores would accept more unknowns than the target allows.
    lower = scores.known_best[scores.known_best < threshold]
    if len(lower):
        assert float((scores.unknown_best >= lower.max()).double().mean()) > target


def test_no_rejection_threshold_is_closed_set_plus_all_unknowns_wrong() -> None:
    embeddings, episodes, unknown, similarity = setup()
    scores = openset_scores(embeddings, episodes, unknown, similarity)
    result = evaluate_openset(scores, float("-inf"), episodes)
    assert result.false_accept == 100.0 and result.false_reject == 0.0
    assert result.open_acc == pytest.approx(result.closed_acc * 10 / 13)


def test_unknowns_of_the_wrong_shape_are_refused() -> None:
    embeddings, episodes, unknown, similarity = setup()
    with pytest.raises(ValueError, match=r"unknown queries must be \[tasks=30, U\] image indices, got shape \[29, 3\]"):
        openset_scores(embeddings, episodes, unknown[:-1], similarity)
