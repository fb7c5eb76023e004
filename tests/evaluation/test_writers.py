"""Per-writer thresholds from each writer's references, against brute force."""

from __future__ import annotations

import itertools

import pytest
import torch

from lightning_siamese.evaluation.writers import (
    error_rates,
    fit_writer_k,
    reference_normalized_scores,
    writer_metrics,
)


def negative_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return -(a - b).norm(dim=-1)


def test_normalised_scores_use_each_writers_reference_spread() -> None:
    table = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    references = [torch.tensor([0, 1, 2]), torch.tensor([5, 6, 7, 8])]
    first, second, writer = torch.tensor([0, 5, 6]), torch.tensor([3, 9, 4]), torch.tensor([0, 1, 1])
    scores = negative_distance(table[first], table[second])
    got = reference_normalized_scores(scores, writer, table, references, negative_distance)
    for p in range(3):
        refs = references[int(writer[p])].tolist()
        mutual = torch.stack([negative_distance(table[i], table[j]) for i, j in itertools.combinations(refs, 2)])
        expected = (scores[p] - mutual.mean()) / mutual.std(unbiased=False)
        assert float(got[p]) == pytest.approx(float(expected), rel=1e-5)


def test_k_is_fitted_on_validation_and_applied_as_given() -> None:
    normalized = torch.tensor([0.5, -0.2, -1.0, -3.0, -4.0])
    same = torch.tensor([1, 1, 1, 0, 0])
    k = fit_writer_k(normalized, same)
    assert 1.0 < k < 3.0  # accept down to mean - k std: the three genuine, not the two forged
    assert writer_metrics("val", normalized, same, k)["val/writer_acc"] == 100.0
    tight = writer_metrics("test", normalized, same, 0.0)  # accept only above the references' mean
    assert tight["test/writer_acc"] == 60.0 and tight["test/writer_k"] == 0.0 and tight["test/writer_auc"] == 1.0
    assert tight["test/writer_far"] == 0.0 and tight["test/writer_frr"] == pytest.approx(
        200 / 3
    )  # 2 of 3 genuine rejected


def test_error_rates_count_accepted_forgeries_and_rejected_genuine_pairs() -> None:
    scores, same = torch.tensor([0.9, 0.2, 0.6, 0.4, 0.1]), torch.tensor([1, 1, 0, 0, 0])
    assert error_rates(scores, same, 0.5) == (pytest.approx(100 / 3), 50.0)
