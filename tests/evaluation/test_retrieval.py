"""Retrieval metrics (Musgrave et al. 2020) against brute-force loops, and the gallery's errors."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_siamese.evaluation.retrieval import (
    NeighbourIndex,
    evaluate_retrieval,
    ranked_metrics,
)


def brute_force(
    gallery: np.ndarray, gallery_labels: list[str], queries: np.ndarray | None, query_labels: list[str] | None, k: int
) -> dict:
    """Each query's full ranking by a sort of all distances, then the definitions term by term."""
    leave_one_out = queries is None
    queries, query_labels = (gallery, gallery_labels) if leave_one_out else (queries, query_labels)
    p_at_k, r_prec, map_r = [], [], []
    for q, (x, label) in enumerate(zip(queries, query_labels)):
        order = [
            j for j in np.argsort(((gallery - x) ** 2).sum(axis=1), kind="stable") if not (leave_one_out and j == q)
        ]
        ranked = [gallery_labels[j] == label for j in order]
        r = sum(ranked)
        if r == 0:
            continue
        p_at_k.append(sum(ranked[:k]) / k)
        r_prec.append(sum(ranked[:r]) / r)
        map_r.append(sum(sum(ranked[: i + 1]) / (i + 1) for i in range(r) if ranked[i]) / r)
    return {"p": np.mean(p_at_k), "r": np.mean(r_prec), "map": np.mean(map_r), "n": len(p_at_k)}


@pytest.mark.parametrize("leave_one_out", [True, False])
def test_metrics_equal_brute_force(leave_one_out: bool) -> None:
    rng = np.random.default_rng(0)
    labels = [f"id{c}" for c in rng.integers(0, 6, size=60)]
    centres = rng.normal(size=(6, 8))
    embeddings = centres[[int(x[2:]) for x in labels]] + rng.normal(scale=1.5, size=(60, 8))
    gallery = NeighbourIndex(embeddings, labels, [f"{i}.png" for i in range(60)])
    if leave_one_out:
        queries, query_labels = None, None
    else:
        query_labels = [f"id{c}" for c in rng.integers(0, 7, size=25)]  # id6 has no gallery item
        queries = np.r_[centres, np.zeros((1, 8))][[int(x[2:]) for x in query_labels]] + rng.normal(
            scale=1.5, size=(25, 8)
        )
    result = evaluate_retrieval(gallery, queries, query_labels, ks=(1, 5))
    for k in (1, 5):
        expected = brute_force(embeddings, labels, queries, query_labels, k)
        assert result.precision_at[k] == pytest.approx(expected["p"])
    assert result.r_precision == pytest.approx(expected["r"]) and result.map_at_r == pytest.approx(expected["map"])
    assert result.queries == expected["n"] and result.queries + result.unscored == (60 if leave_one_out else 25)
    assert 0 < result.map_at_r < 1 and 0 < result.precision_at[1] < 1  # a hard case: no metric saturates
    if not leave_one_out:
        assert result.unscored == query_labels.count("id6") > 0


def test_map_at_r_by_hand() -> None:
    # One query with R = 3 relevant items, ranked hits at 1, 3 and 4 (the third lies outside R).
    result = ranked_metrics(np.array([[True, False, True, True, False]]), np.array([3]), ks=(1, 5))
    assert result.map_at_r == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert result.r_precision == pytest.approx(2 / 3) and result.precision_at == {1: 1.0, 5: 0.6}


def test_bad_galleries_and_k() -> None:
    with pytest.raises(ValueError, match="the gallery is empty"):
        NeighbourIndex(np.zeros((0, 4)), [], [])
    gallery = NeighbourIndex(np.eye(3), ["a", "a", "b"], ["1", "2", "3"])
    with pytest.raises(ValueError, match=r"k=3: expected 1 <= k <= 2 \(the other gallery items\)"):
        evaluate_retrieval(gallery, ks=(3,))
    with pytest.raises(ValueError, match=r"k=4: expected 1 <= k <= 3 \(gallery items\)"):
        gallery.nearest(np.zeros((1, 3)), 4)
    with pytest.raises(ValueError, match="no query has a gallery item of its label"):
        evaluate_retrieval(gallery, np.zeros((2, 3)), ["c", "d"], ks=(1,))
