"""Retrieval: a gallery of labelled embeddings, the k nearest for a query, and how good they are.

The search is scikit-learn's ``NearestNeighbors`` (Euclidean), as in the ekeany seed's
celebrity retrieval. The metrics follow Musgrave, Belongie and Lim (2020), "A Metric
Learning Reality Check":

- precision@k: the share of the k nearest gallery items that have the query's label;
- R-precision: with R the number of gallery items of the query's label, the share of the
  R nearest that have it;
- MAP@R: mean over i = 1..R of precision@i, counted only where the i-th nearest is
  correct (``sum_i P(i) * correct_i / R``), which also rewards the ranking within the R.

Queries whose label has no gallery item (R = 0) cannot be scored and are left out (and
counted). With ``leave_one_out`` the gallery queries itself, each item against the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from sklearn.neighbors import NearestNeighbors


@dataclass
class NeighbourIndex:
    """Embeddings of known items, their labels (identities) and where each came from."""

    embeddings: np.ndarray
    labels: list[str]
    paths: list[str]

    def __post_init__(self) -> None:
        if len(self.embeddings) == 0:
            raise ValueError("the gallery is empty: expected at least one embedded image of a known identity")
        if not (len(self.embeddings) == len(self.labels) == len(self.paths)):
            raise ValueError(
                f"gallery of {len(self.embeddings)} embeddings, {len(self.labels)} labels, {len(self.paths)} paths"
            )
        self._index = NearestNeighbors(metric="euclidean").fit(self.embeddings)

    def __len__(self) -> int:
        return len(self.labels)

    def nearest(self, queries: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances and gallery indices ``[Q, k]`` of the k nearest items, nearest first.

        ``queries=None`` is leave-one-out: each gallery item against all the others.
        """
        available = len(self) - (queries is None)
        if not 1 <= k <= available:
            raise ValueError(
                f"k={k}: expected 1 <= k <= {available} ({'the other ' if queries is None else ''}gallery items)"
            )
        return self._index.kneighbors(queries, n_neighbors=k)


@dataclass
class RetrievalResult:
    precision_at: dict[int, float]
    r_precision: float
    map_at_r: float
    queries: int
    unscored: int

    def as_dict(self) -> dict:
        return {
            **{f"precision@{k}": v for k, v in self.precision_at.items()},
            "r_precision": self.r_precision,
            "map@r": self.map_at_r,
            "queries": self.queries,
            "unscored_queries": self.unscored,
        }

    def __str__(self) -> str:
        parts = [f"precision@{k} {100 * v:.2f}%" for k, v in self.precision_at.items()]
        parts += [f"R-precision {100 * self.r_precision:.2f}%", f"MAP@R {100 * self.map_at_r:.2f}%"]
        text = ", ".join(parts) + f" over {self.queries} queries"
        return text + (f" ({self.unscored} with no gallery item of their label left out)" if self.unscored else "")


def ranked_metrics(correct: np.ndarray, relevant: np.ndarray, ks: Sequence[int]) -> RetrievalResult:
    """Metrics from each query's ranked hits ``correct [Q, K]`` (bool) and its R ``relevant [Q]``.

    ``K`` must reach ``max(ks)`` and every scored query's R.
    """
    scored = relevant > 0
    correct, relevant = correct[scored], relevant[scored]
    if not len(relevant):
        raise ValueError("no query has a gallery item of its label: nothing to score")
    width = correct.shape[1]
    if max(ks) > width or relevant.max() > width:
        raise ValueError(f"ranked lists of {width} items are too short for k={max(ks)} and R={relevant.max()}")
    position = np.arange(1, width + 1)
    within_r = position[None, :] <= relevant[:, None]
    hits = correct & within_r
    precision_at_i = np.cumsum(hits, axis=1) / position[None, :]
    return RetrievalResult(
        precision_at={k: float(correct[:, :k].mean()) for k in ks},
        r_precision=float((hits.sum(axis=1) / relevant).mean()),
        map_at_r=float(((precision_at_i * hits).sum(axis=1) / relevant).mean()),
        queries=len(relevant),
        unscored=int((~scored).sum()),
    )


def evaluate_retrieval(
    gallery: NeighbourIndex,
    query_embeddings: np.ndarray | None = None,
    query_labels: Sequence[str] | None = None,
    ks: Sequence[int] = (1, 5),
) -> RetrievalResult:
    """precision@k, R-precision and MAP@R of labelled queries against the gallery.

    Without queries, leave-one-out over the gallery (Musgrave et al.'s protocol).
    """
    leave_one_out = query_embeddings is None
    # Labelled queries: query_labels comes with query_embeddings (two Optionals cannot say so).
    labels = np.asarray(gallery.labels if leave_one_out else list(cast(Sequence[str], query_labels)))
    names, gallery_ids = np.unique(np.asarray(gallery.labels), return_inverse=True)
    counts = np.bincount(gallery_ids, minlength=len(names))
    position = np.searchsorted(names, labels).clip(max=len(names) - 1)
    known = names[position] == labels
    relevant = np.where(known, counts[position], 0) - leave_one_out
    relevant = relevant.clip(min=0)
    depth = int(max(max(ks), relevant.max(initial=0)))
    _, index = gallery.nearest(query_embeddings, depth)  # R never exceeds the items a query can retrieve
    correct = np.asarray(gallery.labels)[index] == labels[:, None]
    return ranked_metrics(correct, relevant, ks)
