"""Baselines scored by the same N-way K-shot code as the networks: MHD, pixel distance, kNN, chance.

A baseline is an ``embed`` that turns uint8 images ``[N, C, H, W]`` (strokes bright, as the
Omniglot loaders give them) into one row per image, and a ``similarity`` over such rows
that broadcasts like a head's, so
:func:`~lightning_siamese.evaluation.oneshot.episode_accuracies` scores a baseline on the
very episodes, and by the very rule, that it scores a network. The kNN baseline instead
fits scikit-learn's ``KNeighborsClassifier`` on each episode's support set, so with K shots
a query takes the way of its nearest shot (or the vote of its ``n_neighbors`` nearest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.evaluation.oneshot import Similarity, episode_accuracies

BASELINES = ("mhd", "pixel", "knn", "chance")
# Padding points sit this far away, so no real point ever takes one as its nearest neighbour.
_FAR = 1e4


def ink_points(images: torch.Tensor, threshold: int = 128) -> torch.Tensor:
    """Each image's inked pixels as centred (row, column) points, padded: ``[N, P, 3]``.

    Channel 2 is 1 for a point and 0 for padding; points come first. A pixel is ink when
    its value (mean over channels) is at least ``threshold``: strokes are bright, so on
    Omniglot's 1-bit images at 105 px these are exactly the black pixels of Lake's
    ``LoadImgAsPoints``. As there, each set is centred on its own mean.
    """
    ink = images.float().mean(1) >= threshold
    found = ink.nonzero()  # [M, 3]: image, row, column; grouped by image
    counts = torch.bincount(found[:, 0], minlength=len(images))
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(found)) - starts[found[:, 0]]
    coords = found[:, 1:].float()
    means = torch.zeros(len(images), 2).index_add_(0, found[:, 0], coords) / counts.clamp_min(1)[:, None]
    points = torch.zeros(len(images), max(int(counts.max()), 1), 3)
    points[found[:, 0], slot, :2] = coords - means[found[:, 0]]
    points[found[:, 0], slot, 2] = 1.0
    return points


def _mhd_chunk(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    valid_a, valid_b = first[..., 2] > 0, second[..., 2] > 0
    a = first[..., :2].masked_fill(~valid_a[..., None], _FAR)
    b = second[..., :2].masked_fill(~valid_b[..., None], _FAR)
    # Direct differences, not the |a|^2 + |b|^2 - 2ab expansion: exact for coincident points.
    d = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
    a_to_b = (d.amin(2) * valid_a).sum(1) / valid_a.sum(1).clamp_min(1)
    b_to_a = (d.amin(1) * valid_b).sum(1) / valid_b.sum(1).clamp_min(1)
    return torch.maximum(a_to_b, b_to_a)


def pairwise_mhd(
    first: torch.Tensor,
    second: torch.Tensor,
    first_index: torch.Tensor,
    second_index: torch.Tensor,
    budget: int = 1 << 20,
) -> torch.Tensor:
    """MHD of ``first[first_index[m]]`` and ``second[second_index[m]]`` for every m, ``[M]``.

    Pairs are taken largest first, in chunks of about ``budget`` distances, each cut to its
    own largest point sets, so padding costs little and a chunk stays in cache.
    """
    sizes_a, sizes_b = first[..., 2].sum(-1).long(), second[..., 2].sum(-1).long()
    n_a, n_b = sizes_a[first_index], sizes_b[second_index]
    largest = torch.maximum(n_a, n_b).clamp_min(1)
    order = torch.argsort(largest, descending=True)
    cost = torch.empty(len(order))
    start = 0
    while start < len(order):
        size = int(largest[order[start]])
        chunk = order[start : start + max(1, budget // (size * size))]
        p, q = max(int(n_a[chunk].max()), 1), max(int(n_b[chunk].max()), 1)
        cost[chunk] = _mhd_chunk(first[first_index[chunk], :p], second[second_index[chunk], :q])
        start += len(chunk)
    return cost


def modified_hausdorff(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Lake et al.'s (2015) modified Hausdorff distance between paired point sets, ``[M]``.

    ``first`` and ``second`` are padded point sets ``[M, P, 3]`` as :func:`ink_points` makes
    them. The cost (Dubuisson and Jain 1994) is the larger of the two mean nearest-neighbour
    distances, A to B and B to A. A set without points is at distance 0 from another empty
    one and very far from any other.
    """
    index = torch.arange(len(first))
    return pairwise_mhd(first, second, index, index)


def _broadcast_rows(rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Row index (into ``rows.reshape(-1, D)``) of every element of the broadcast ``shape``."""
    return torch.arange(rows[..., 0].numel()).reshape(rows.shape[:-1]).expand(shape).reshape(-1)


def mhd_similarity(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``-MHD`` between rows of flattened :func:`ink_points`, broadcast like a head's similarity."""
    shape = torch.broadcast_shapes(first.shape[:-1], second.shape[:-1])
    a = first.reshape(-1, first.shape[-1] // 3, 3)
    b = second.reshape(-1, second.shape[-1] // 3, 3)
    cost = pairwise_mhd(a, b, _broadcast_rows(first, shape), _broadcast_rows(second, shape))
    return -cost.reshape(shape).to(first.device)


def pixel_similarity(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Negative Euclidean distance between raw pixel vectors."""
    return -(first - second).norm(dim=-1)


class ChanceSimilarity:
    """Uniform random scores from a seeded generator: accuracy 1/N in expectation, repeatable."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        shape = torch.broadcast_shapes(first.shape[:-1], second.shape[:-1])
        return torch.rand(shape, generator=self.generator).to(first.device)


@dataclass
class Baseline:
    """A fixed scorer: ``embed`` maps uint8 images to rows that ``similarity`` compares."""

    name: str
    embed: Callable[[torch.Tensor], torch.Tensor]
    similarity: Similarity

    def accuracies(self, images: torch.Tensor, episodes: Episodes) -> torch.Tensor:
        """Accuracy of each episode, in percent, exactly as a network is scored (K shots: mean score)."""
        return episode_accuracies(self.embed(images), episodes, self.similarity)


def knn_accuracies(
    features: torch.Tensor, episodes: Episodes, n_neighbors: int = 1, metric: str = "euclidean"
) -> torch.Tensor:
    """Accuracy of each episode in percent, ``[T]``, of a k-nearest-neighbour classifier.

    For each episode scikit-learn's ``KNeighborsClassifier`` is fitted on the N x K support
    rows of ``features`` (one row per image), labelled by way, and predicts every query's way.
    Only the episode's own support set is seen, so K-shot tasks get K shots and no more.
    """
    from sklearn.neighbors import KNeighborsClassifier
    from threadpoolctl import threadpool_limits

    t, n, k = episodes.support.shape
    q = episodes.query.shape[2]
    rows = features.detach().cpu().double().numpy()
    support, query = episodes.support.reshape(t, n * k).numpy(), episodes.query.reshape(t, n * q).numpy()
    ways, target = np.repeat(np.arange(n), k), np.repeat(np.arange(n), q)  # way-major, as the indices are
    classifier = KNeighborsClassifier(n_neighbors=min(n_neighbors, n * k), metric=metric, algorithm="brute")
    with threadpool_limits(1):  # tiny problems: thread start-up would cost more than the distances
        accuracy = [(classifier.fit(rows[support[i]], ways).predict(rows[query[i]]) == target).mean() for i in range(t)]
    return torch.tensor(accuracy, dtype=torch.float64) * 100.0


@dataclass
class KNNBaseline:
    """A kNN classifier over ``embed``'s rows, fitted anew on each episode's support set."""

    name: str
    embed: Callable[[torch.Tensor], torch.Tensor]
    n_neighbors: int = 1
    metric: str = "euclidean"

    def accuracies(self, images: torch.Tensor, episodes: Episodes) -> torch.Tensor:
        """Accuracy of each episode, in percent (see :func:`knn_accuracies`)."""
        return knn_accuracies(self.embed(images), episodes, self.n_neighbors, self.metric)


def pixels(images: torch.Tensor) -> torch.Tensor:
    """Raw pixels in [0, 1], one row per image."""
    return images.float().div(255.0).flatten(1)


def make_baseline(name: str, seed: int = 0) -> Baseline | KNNBaseline:
    """``"mhd"`` (Lake's modified Hausdorff distance), ``"pixel"`` (nearest neighbour in pixel
    space, K shots scored by their mean distance), ``"knn"`` (scikit-learn's 1-nearest-neighbour
    classifier on raw pixels, fitted on each episode's support set) or ``"chance"`` (random
    scores drawn from ``seed``)."""
    if name == "mhd":
        return Baseline(name, lambda images: ink_points(images).flatten(1), mhd_similarity)
    if name == "pixel":
        return Baseline(name, pixels, pixel_similarity)
    if name == "knn":
        return KNNBaseline(name, pixels)
    if name == "chance":
        return Baseline(name, lambda images: torch.zeros(len(images), 1), ChanceSimilarity(seed))
    raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
