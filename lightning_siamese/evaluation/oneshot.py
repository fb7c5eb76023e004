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

from lightning_siamese.data.samplers import Episodes

Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SHOT_REDUCTIONS = ("mean", "max", "prototype")


@dataclass
class OneShotResult:
    """Accuracy over a fixed set of episodes, in percent, with a 95% confidence interval."""

    accuracy: float
    ci95: float
    n_way: int
    k_shot: int
    n_query: int
    tasks: int
    seed: int

    def __str__(self) -> str:
        return (
            f"{self.n_way}-way {self.k_shot}-shot accuracy {self.accuracy:.2f}% "
            f"+- {self.ci95:.2f} (95% CI, {self.tasks} tasks, seed {self.seed})"
        )

    def as_dict(self) -> dict:
        return asdict(self)


def mean_ci95(values: torch.Tensor) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation 95% confidence interval."""
    values = values.double()
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), 1.96 * float(values.std(unbiased=True)) / math.sqrt(len(values))


@torch.no_grad()
def episode_scores(
    embeddings: torch.Tensor,
    episodes: Episodes,
    similarity: Similarity,
    shot_reduction: str = "mean",
    max_elements: int = 1 << 25,
) -> torch.Tensor:
    """Similarity of every query to every way: ``[T, N * Q, N]``.

    Queries are ordered way by way (``N`` blocks of ``Q``). With K > 1 shots the scores
    of a query against the K shots of a way are averaged (``"mean"``), the best one is
    kept (``"max"``, nearest shot), or the K shot embeddings are averaged into one
    prototype first (``"prototype"``, Snell et al. 2017).
    """
    if shot_reduction not in SHOT_REDUCTIONS:
        raise ValueError(f"shot_reduction must be one of {SHOT_REDUCTIONS}, got {shot_reduction!r}")
    t_all, n, k = episodes.support.shape
    q = episodes.query.shape[2]
    dim = embeddings.shape[-1]
    chunk = max(1, max_elements // (n * q * n * k * dim))
    out = []
    for start in range(0, t_all, chunk):
        support = embeddings[episodes.support[start : start + chunk].to(embeddings.device)]
        query = embeddings[episodes.query[start : start + chunk].to(embeddings.device)]
        t = support.shape[0]
        query = query.reshape(t, n * q, 1, dim)
        if shot_reduction == "prototype":
            out.append(similarity(query, support.mean(2).reshape(t, 1, n, dim)).float())
            continue
        scores = similarity(query, support.reshape(t, 1, n * k, dim)).reshape(t, n * q, n, k).float()
        out.append(scores.mean(-1) if shot_reduction == "mean" else scores.amax(-1))
    return torch.cat(out)


def evaluate_episodes(
    embeddings: torch.Tensor,
    episodes: Episodes,
    similarity: Similarity,
    shot_reduction: str = "mean",
) -> OneShotResult:
    """Score episodes: a query is right when its most similar way is its own."""
    scores = episode_scores(embeddings, episodes, similarity, shot_reduction)
    n, q = episodes.n_way, episodes.query.shape[2]
    target = torch.arange(n, device=scores.device).repeat_interleave(q)
    per_task = (scores.argmax(-1) == target).float().mean(-1) * 100.0
    accuracy, ci = mean_ci95(per_task.cpu())
    return OneShotResult(
        accuracy=accuracy,
        ci95=ci,
        n_way=n,
        k_shot=episodes.k_shot,
        n_query=q,
        tasks=len(episodes),
        seed=episodes.seed,
    )
