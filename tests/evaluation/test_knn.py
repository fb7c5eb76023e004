"""The kNN baseline: scikit-learn's classifier per episode, against brute-force nearest neighbours."""

from __future__ import annotations

import torch

from lightning_siamese.data.samplers.episodes import sample_episodes
from lightning_siamese.evaluation.baselines import knn_accuracies, make_baseline


def episodes_over(labels: torch.Tensor, n_way: int, k_shot: int, tasks: int = 25):
    groups = torch.zeros(int(labels.max()) + 1, dtype=torch.long)
    return sample_episodes(labels, groups, n_way=n_way, k_shot=k_shot, n_query=2, num_tasks=tasks, seed=3)


def brute_force(features: torch.Tensor, episodes, n_neighbors: int) -> torch.Tensor:
    """Per episode: each query's n nearest support rows vote (ties to the lowest way), by plain loops."""
    out = []
    for support, query in zip(episodes.support, episodes.query):
        rows = [(int(i), way) for way in range(support.shape[0]) for i in support[way]]
        right = total = 0
        for way, queries in enumerate(query):
            for q in queries:
                ranked = sorted(rows, key=lambda r: float((features[q] - features[r[0]]).norm()))
                votes = torch.bincount(torch.tensor([w for _, w in ranked[:n_neighbors]]), minlength=support.shape[0])
                right += int(int(votes.argmax()) == way)
                total += 1
        out.append(100.0 * right / total)
    return torch.tensor(out, dtype=torch.float64)


def test_knn_equals_brute_force_nearest_neighbours() -> None:
    torch.manual_seed(0)
    labels = torch.arange(12).repeat_interleave(6)
    centres = torch.randn(12, 10)
    features = centres[labels] + 0.9 * torch.randn(len(labels), 10)  # overlapping classes: some queries wrong
    for k_shot, n_neighbors in ((1, 1), (3, 1), (3, 3)):
        episodes = episodes_over(labels, n_way=5, k_shot=k_shot)
        got = knn_accuracies(features, episodes, n_neighbors)
        expected = brute_force(features, episodes, n_neighbors)
        assert torch.equal(got, expected), (k_shot, n_neighbors)
        assert 0.0 < float(got.mean()) < 100.0


def test_knn_baseline_reads_raw_pixels_and_is_one_nearest_neighbour() -> None:
    torch.manual_seed(1)
    labels = torch.arange(8).repeat_interleave(5)
    images = torch.randint(0, 256, (len(labels), 1, 6, 6), dtype=torch.uint8)
    one_shot = episodes_over(labels, n_way=4, k_shot=1)
    knn = make_baseline("knn")
    assert torch.equal(knn.accuracies(images, one_shot), knn_accuracies(images.flatten(1).float() / 255.0, one_shot))
    # With one shot, the nearest shot is the nearest way: exactly the pixel-distance baseline.
    assert torch.equal(knn.accuracies(images, one_shot), make_baseline("pixel").accuracies(images, one_shot))
    three_shot = episodes_over(labels, n_way=4, k_shot=3)
    assert torch.equal(
        knn.accuracies(images, three_shot), brute_force(images.flatten(1).float() / 255.0, three_shot, 1)
    )
