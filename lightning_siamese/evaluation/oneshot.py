"""N-way K-shot evaluation from cached embeddings.

Each distinct image is embedded once; episodes are then scored with tensor ops, as
indices into the embedding table. Any pairwise ``similarity(first, second)`` that
broadcasts over leading dimensions (every head's does) can be plugged in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.transforms.views import AlignmentViews

Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SHOT_REDUCTIONS = ("mean", "max", "prototype")


@dataclass
class OneShotResult:
    """Accuracy over a fixed set of episodes, in percent, with a 95% confidence interval.

    ``ci95`` is the half-width of the normal interval over tasks, which treats the tasks as
    independent; tasks that reuse the same characters are not, so it overstates the precision.
    ``intervals`` (when computed, :func:`cluster_intervals`) holds 95% bootstrap intervals that
    resample whole characters and, where there are several, whole alphabets: the ones to quote.
    """

    accuracy: float
    ci95: float
    n_way: int
    k_shot: int
    n_query: int
    tasks: int
    seed: int
    intervals: dict[str, list[float]] | None = None

    def __str__(self) -> str:
        text = (
            f"{self.n_way}-way {self.k_shot}-shot accuracy {self.accuracy:.2f}% "
            f"+- {self.ci95:.2f} (95% CI, {self.tasks} tasks, seed {self.seed})"
        )
        if self.intervals:
            bootstrap = "; ".join(f"{k} [{lo:.2f}, {hi:.2f}]" for k, (lo, hi) in self.intervals.items())
            text += f"; resampling {bootstrap}"
        return text

    def as_dict(self) -> dict:
        record = asdict(self)
        if self.intervals is None:
            del record["intervals"]
        return record


@dataclass(frozen=True)
class SupportHubness:
    """Discount the ways whose supports resemble the task's other supports (hubs), as CSLS does for words.

    A support drawn in a generic hand is near many queries, right and wrong; how near it is to
    the other ways' supports tells how much. Each way's scores are lowered by ``weight`` x the
    mean of its ``k`` highest similarities to the other ways (Conneau et al. 2018, "Word
    translation without parallel data", CSLS; here only supports are looked at, never the
    other queries, so each query is still scored alone). ``weight`` is in the head's
    similarity units: chosen for unit-norm Euclidean scores on Omniglot (README, "Omniglot
    results").
    """

    weight: float = 0.2
    k: int = 5

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ValueError(f"hubness weight must be >= 0, got {self.weight}")
        if self.k < 1:
            raise ValueError(f"hubness k must be >= 1 (other ways to average over), got {self.k}")

    def correct(self, scores: torch.Tensor, way_scores: torch.Tensor) -> torch.Tensor:
        """``scores [T, M, N]`` lowered by each way's hubness, from the ways' similarities to each other ``[T, N, N]``."""
        n = way_scores.shape[-1]
        if self.k >= n:
            raise ValueError(f"hubness k ({self.k}) must be below the number of ways ({n})")
        others = way_scores.masked_fill(torch.eye(n, dtype=torch.bool, device=way_scores.device), -torch.inf)
        return scores - self.weight * others.topk(self.k, dim=-1).values.mean(-1).unsqueeze(-2)


def mean_ci95(values: torch.Tensor) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation 95% confidence interval."""
    values = values.double()
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), 1.96 * float(values.std(unbiased=True)) / math.sqrt(len(values))


class AlignedSimilarity:
    """Test-time alignment's score, for rows that hold ``symmetries`` x ``views`` embeddings side by side.

    Rows ``[..., S * V * D]`` (one image under each view of each symmetry, as
    :func:`~lightning_siamese.callbacks.embed_aligned` makes them) broadcast like any head's
    similarity. Two images score, for each symmetry, the best similarity over all V x V pairs
    of their views, averaged over the symmetries. ``pairwise`` is a head's
    ``pairwise_similarity`` (``[..., P, D], [..., R, D] -> [..., P, R]``); the rows are broadcast
    to each other first (episode scoring hands them over in bounded chunks), then scored in
    blocks of pairs whose ``[block, S, V, V, D]`` broadcast, a broadcasting head's largest
    tensor, holds at most ``max_elements`` elements.
    """

    def __init__(self, pairwise: Similarity, views: int, symmetries: int = 1, max_elements: int = 1 << 25) -> None:
        self.pairwise = pairwise
        self.views = views
        self.symmetries = symmetries
        self.max_elements = max_elements

    @classmethod
    def of(cls, pairwise: Similarity, views: AlignmentViews) -> AlignedSimilarity:
        """The score of embeddings made under ``views``."""
        return cls(pairwise, views.views, views.symmetries)

    def __call__(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        shape = torch.broadcast_shapes(first.shape[:-1], second.shape[:-1])
        split = (self.symmetries, self.views, first.shape[-1] // (self.symmetries * self.views))
        a = first.expand(*shape, -1).reshape(-1, *split)
        b = second.expand(*shape, -1).reshape(-1, *split)
        block = max(1, self.max_elements // (self.symmetries * self.views**2 * split[-1]))
        best = [self.pairwise(a[i : i + block], b[i : i + block]).amax((-2, -1)) for i in range(0, len(a), block)]
        return torch.cat(best).mean(-1).reshape(shape)


@torch.no_grad()
def episode_scores(
    embeddings: torch.Tensor,
    episodes: Episodes,
    similarity: Similarity,
    shot_reduction: str = "mean",
    max_elements: int = 1 << 25,
    queries: torch.Tensor | None = None,
    hubness: SupportHubness | None = None,
) -> torch.Tensor:
    """Similarity of every query to every way: ``[T, N * Q, N]``.

    Queries are ordered way by way (``N`` blocks of ``Q``); ``queries`` (image indices
    ``[T, M]``, e.g. open-set unknowns) are scored against the ways instead, ``[T, M, N]``. With K > 1 shots the scores
    of a query against the K shots of a way are averaged (``"mean"``), the best one is
    kept (``"max"``, nearest shot), or the K shot embeddings are averaged into one
    prototype first (``"prototype"``, Snell et al. 2017). ``hubness`` then lowers each way's
    scores by how like the other ways its supports are (:class:`SupportHubness`).
    """
    if shot_reduction not in SHOT_REDUCTIONS:
        raise ValueError(f"shot_reduction must be one of {SHOT_REDUCTIONS}, got {shot_reduction!r}")
    t_all, n, k = episodes.support.shape
    queries = episodes.query.flatten(1) if queries is None else queries
    m = queries.shape[1]
    dim = embeddings.shape[-1]
    chunk = max(1, max_elements // (m * n * k * dim))
    out = []
    for start in range(0, t_all, chunk):
        support = embeddings[episodes.support[start : start + chunk].to(embeddings.device)]
        query = embeddings[queries[start : start + chunk].to(embeddings.device)]
        t = support.shape[0]
        query = query.reshape(t, m, 1, dim)
        if shot_reduction == "prototype":
            out.append(similarity(query, support.mean(2).reshape(t, 1, n, dim)).float())
            continue
        scores = similarity(query, support.reshape(t, 1, n * k, dim)).reshape(t, m, n, k).float()
        out.append(scores.mean(-1) if shot_reduction == "mean" else scores.amax(-1))
    if hubness is None:
        return torch.cat(out)
    return hubness.correct(torch.cat(out), way_scores(embeddings, episodes, similarity, shot_reduction, max_elements))


def way_scores(
    embeddings: torch.Tensor,
    episodes: Episodes,
    similarity: Similarity,
    shot_reduction: str = "mean",
    max_elements: int = 1 << 25,
) -> torch.Tensor:
    """Similarity of every way to every way, ``[T, N, N]``: each way's supports scored as queries, their K rows averaged."""
    scores = episode_scores(embeddings, episodes, similarity, shot_reduction, max_elements, episodes.support.flatten(1))
    return scores.unflatten(1, episodes.support.shape[1:]).mean(2)


def episode_accuracies(
    embeddings: torch.Tensor,
    episodes: Episodes,
    similarity: Similarity,
    shot_reduction: str = "mean",
    hubness: SupportHubness | None = None,
) -> torch.Tensor:
    """Accuracy of each episode in percent, ``[T]``: a query is right when its most similar way is its own.

    Ties go to the first way, as in Lake et al.'s ``demo_classification.py``.
    """
    return score_accuracies(episode_scores(embeddings, episodes, similarity, shot_reduction, hubness=hubness), episodes)


def query_correct(scores: torch.Tensor, episodes: Episodes) -> torch.Tensor:
    """Whether each query's most similar way is its own, ``[T, N * Q]``, from :func:`episode_scores` (ties to the first way)."""
    n, q = episodes.n_way, episodes.query.shape[2]
    target = torch.arange(n, device=scores.device).repeat_interleave(q)
    return (scores.argmax(-1) == target).cpu()


def score_accuracies(scores: torch.Tensor, episodes: Episodes) -> torch.Tensor:
    """Accuracy of each episode in percent, ``[T]``, from :func:`episode_scores` (ties to the first way)."""
    n, q = episodes.n_way, episodes.query.shape[2]
    return query_correct(scores, episodes).sum(-1).double() * 100.0 / (n * q)  # 3 of 5: exactly 60.0


def cluster_interval(
    correct: torch.Tensor, clusters: torch.Tensor, resamples: int = 2000, seed: int = 0
) -> list[float]:
    """95% percentile bootstrap interval of the accuracy (percent) when whole clusters are resampled.

    ``correct`` and ``clusters`` give each query's outcome and its cluster (e.g. the character it
    shows). Each resample draws as many clusters as there are, with replacement, each bringing
    all its queries from every task, so queries of one character count as one draw: the interval
    covers what another draw of characters would give, which a per-task interval ignores.
    """
    ids, inverse = torch.unique(clusters.flatten(), return_inverse=True)
    hits = torch.zeros(len(ids), dtype=torch.float64).index_add_(0, inverse, correct.flatten().double())
    counts = torch.bincount(inverse, minlength=len(ids)).double()
    draws = torch.randint(len(ids), (resamples, len(ids)), generator=torch.Generator().manual_seed(seed))
    accuracy = hits[draws].sum(1) / counts[draws].sum(1) * 100.0
    low, high = torch.quantile(accuracy, torch.tensor([0.025, 0.975], dtype=torch.float64))
    return [float(low), float(high)]


def cluster_intervals(
    correct: torch.Tensor,
    episodes: Episodes,
    labels: torch.Tensor,
    class_groups: torch.Tensor,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Bootstrap intervals resampling the queries' classes (``"characters"``) and, when the episodes
    span several groups, their groups (``"alphabets"``). ``labels`` are the images' classes and
    ``class_groups`` each class's group (an :class:`~lightning_siamese.data.sources.collection.ImageCollection`'s)."""
    classes = labels[episodes.query.flatten(1)]
    intervals = {"characters": cluster_interval(correct, classes, resamples, seed)}
    groups = class_groups[classes]
    if len(torch.unique(groups)) > 1:
        intervals["alphabets"] = cluster_interval(correct, groups, resamples, seed)
    return intervals


def summarize(per_task: torch.Tensor, episodes: Episodes) -> OneShotResult:
    """Mean accuracy and 95% CI over episodes, from :func:`episode_accuracies`."""
    accuracy, ci = mean_ci95(per_task)
    return OneShotResult(
        accuracy=accuracy,
        ci95=ci,
        n_way=episodes.n_way,
        k_shot=episodes.k_shot,
        n_query=episodes.query.shape[2],
        tasks=len(episodes),
        seed=episodes.seed,
    )


def evaluate_episodes(
    embeddings: torch.Tensor,
    episodes: Episodes,
    similarity: Similarity,
    shot_reduction: str = "mean",
    hubness: SupportHubness | None = None,
    collection: ImageCollection | None = None,
    interval_seed: int = 0,
) -> OneShotResult:
    """Score episodes: a query is right when its most similar way is its own. With the images'
    ``collection``, the result also holds :func:`cluster_intervals` (seeded by ``interval_seed``)."""
    scores = episode_scores(embeddings, episodes, similarity, shot_reduction, hubness=hubness)
    result = summarize(score_accuracies(scores, episodes), episodes)
    if collection is not None:
        correct = query_correct(scores, episodes)
        result.intervals = cluster_intervals(
            correct, episodes, collection.labels, collection.class_groups, seed=interval_seed
        )
    return result


def named_task_record(per_task: torch.Tensor, task_names: list[str], episodes: Episodes) -> dict:
    """The JSON record of a benchmark of named tasks (Lake's 20 runs): mean, error, CI and each task."""
    result = summarize(per_task, episodes)
    return {
        "accuracy": result.accuracy,
        "error": 100.0 - result.accuracy,
        "ci95": result.ci95,
        "n_way": result.n_way,
        "k_shot": result.k_shot,
        "tasks": result.tasks,
        "per_task": {name: float(a) for name, a in zip(task_names, per_task)},
    }


def format_named_tasks(title: str, record: dict) -> str:
    """One line for the mean, one for the tasks: ``run01 95.0, run02 90.0, ...``."""
    tasks = ", ".join(f"{name} {a:.1f}" for name, a in record["per_task"].items())
    return (
        f"{title}: {record['n_way']}-way {record['k_shot']}-shot accuracy {record['accuracy']:.2f}% "
        f"(error {record['error']:.2f}%) +- {record['ci95']:.2f} (95% CI over {record['tasks']} runs)\n"
        f"  per run: {tasks}"
    )
