"""Threshold rules (accuracy, EER, false-accept target) against brute force, and bad targets."""

import math

import pytest
import torch

from lightning_siamese.evaluation.verification import (
    best_threshold,
    check_far,
    equal_error_rate,
    fit_threshold,
    threshold_at_far,
)


def rates(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> tuple[float, float]:
    accepted = scores >= threshold
    return float(accepted[labels == 0].double().mean()), float(accepted[labels == 1].double().mean())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target", [0.01, 0.1, 0.25, 0.5])
def test_far_threshold_is_the_most_accepting_one_within_the_target(seed: int, target: float) -> None:
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(200, generator=g) < 0.5).long()
    scores = torch.randn(200, generator=g) + labels * 1.5
    scores[:20] = scores[20:40]  # ties
    threshold = threshold_at_far(scores, labels, target)
    far, tar = rates(scores, labels, threshold)
    assert far <= target
    # Brute force: every split of the sorted scores; none within the target accepts more same pairs.
    candidates = torch.cat([torch.unique(scores), torch.tensor([math.inf])])
    best_tar = max(
        rates(scores, labels, float(t))[1] for t in candidates if rates(scores, labels, float(t))[0] <= target
    )
    assert tar == best_tar
    # A midpoint: strictly between two scores, so unseen scores near either side keep their side.
    assert not bool((scores == threshold).any())


def test_far_threshold_extremes() -> None:
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1])
    assert threshold_at_far(scores, torch.tensor([0, 1, 1, 1]), 0.5) == math.inf  # the top score is a different pair
    assert threshold_at_far(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([1, 1, 0, 0]), 0.4) == pytest.approx(0.5)
    assert threshold_at_far(torch.tensor([0.9, 0.1]), torch.tensor([0, 1]), 0.99) == math.inf
    assert threshold_at_far(torch.tensor([0.9, 0.1, 0.5]), torch.tensor([1, 0, 1]), 0.99) == pytest.approx(0.3)


def test_fit_threshold_dispatches_to_each_rule() -> None:
    g = torch.Generator().manual_seed(7)
    labels = (torch.rand(100, generator=g) < 0.4).long()
    scores = torch.rand(100, generator=g) + 0.3 * labels
    assert fit_threshold(scores, labels) == best_threshold(scores, labels)
    assert fit_threshold(scores, labels, "eer") == equal_error_rate(scores, labels)[1]
    assert fit_threshold(scores, labels, "far", 0.05) == threshold_at_far(scores, labels, 0.05)


@pytest.mark.parametrize("bad", [0, 0.0, 1, 1.0, -0.1, 1.5, float("nan"), "0.1", True, None])
def test_a_false_accept_target_outside_zero_one_is_refused(bad) -> None:
    with pytest.raises(ValueError, match=r"target_far must be a false-accept rate strictly between 0 and 1.*got"):
        check_far(bad)
    with pytest.raises(ValueError, match="between 0 and 1"):
        threshold_at_far(torch.tensor([0.2, 0.8]), torch.tensor([0, 1]), bad)


def test_unknown_rules_and_a_far_rule_without_target_are_refused() -> None:
    scores, labels = torch.tensor([0.2, 0.8]), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"threshold rule must be one of .*'median'"):
        fit_threshold(scores, labels, "median")
    with pytest.raises(ValueError, match="'far' threshold rule needs target_far"):
        fit_threshold(scores, labels, "far")
