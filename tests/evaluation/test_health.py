"""Training-health statistics and warning rules, on synthetic inputs."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_siamese.evaluation.health import (
    Accuracy,
    HealthMonitor,
    batch_is_empty,
    binomial_ci95,
    embedding_spread,
    near_chance,
)


def test_spread_is_the_mean_pairwise_distance_and_mean_dimension_std() -> None:
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])
    distance, std = embedding_spread(points)
    brute = [math.dist(a, b) for i, a in enumerate(points.tolist()) for b in points.tolist()[i + 1 :]]
    assert distance == pytest.approx(sum(brute) / 3)  # (5 + 8 + 5) / 3
    assert std == pytest.approx((points[:, 0].std() + points[:, 1].std()).item() / 2)
    assert embedding_spread(torch.ones(10, 4)) == (0.0, 0.0)  # collapsed: one point


def test_spread_needs_two_embeddings() -> None:
    with pytest.raises(ValueError, match=r"at least two embeddings \[N, D\], got shape \(1, 3\)"):
        embedding_spread(torch.zeros(1, 3))


@pytest.mark.parametrize(
    ("batch", "empty"),
    [
        ({"same": torch.tensor([0, 0, 0])}, True),
        ({"same": torch.tensor([0, 1, 0])}, False),
        ({"labels": torch.tensor([0, 1, 2, 3])}, True),  # no positive pair
        ({"labels": torch.tensor([5, 5, 5])}, True),  # no negative: no valid triplet
        ({"labels": torch.tensor([0, 0, 1])}, False),
        ({"anchor": torch.zeros(2, 1), "positive": torch.zeros(2, 1), "negative": torch.zeros(2, 1)}, False),
    ],
)
def test_empty_batches(batch: dict, empty: bool) -> None:
    assert bool(batch_is_empty(batch)) is empty


def test_binomial_interval_and_chance() -> None:
    assert binomial_ci95(50.0, 100) == pytest.approx(9.8)  # 1.96 * sqrt(.25 / 100) * 100
    assert near_chance(52.0, binomial_ci95(52.0, 100), 50.0)
    assert not near_chance(70.0, binomial_ci95(70.0, 100), 50.0)
    assert not near_chance(5.0, float("nan"), 5.0)  # one task: no interval, no verdict


def test_collapse_warns_once_relative_to_the_first_spread() -> None:
    monitor = HealthMonitor(collapse_ratio=0.1)
    monitor.reference_spread = 2.0
    assert monitor.validation(1.0)[1] == []
    scalars, messages = monitor.validation(0.1)
    assert scalars["health/spread_ratio"] == pytest.approx(0.05)
    assert (
        len(messages) == 1 and "embeddings have collapsed" in messages[0] and "learning rate 10x lower" in messages[0]
    )
    assert monitor.validation(0.0)[1] == []  # still collapsed: not again


def test_the_first_validation_is_the_reference_when_none_was_taken() -> None:
    monitor = HealthMonitor()
    assert monitor.validation(3.0)[0]["health/spread_ratio"] == 1.0
    assert monitor.reference_spread == 3.0


def test_triplet_at_the_margin_warns_after_k_validations_in_a_row_once() -> None:
    monitor = HealthMonitor(margin_patience=3, margin_tolerance=0.02)
    monitor.reference_spread = 1.0
    at, off = 0.2, 0.15
    results = [
        monitor.validation(1.0, triplet_loss=loss, margin=0.2)[1] for loss in (at, at, off, at, at, 0.201, at, at)
    ]
    fired = [i for i, messages in enumerate(results) if messages]
    assert fired == [5]  # the run of three after the reset at index 2
    assert "sat at the margin (0.201 vs margin 0.2) for 3 validations" in results[5][0]
    assert "semihard" in results[5][0]


def test_chance_accuracy_warns_only_after_warmup_and_once() -> None:
    monitor = HealthMonitor(warmup=2)
    monitor.reference_spread = 1.0
    chance = Accuracy("20-way 1-shot accuracy", 5.5, 1.0, 5.0)
    fired = [monitor.validation(1.0, accuracy=chance)[1] for _ in range(4)]
    assert [len(m) for m in fired] == [0, 0, 1, 0]
    assert (
        "20-way 1-shot accuracy (5.50% +- 1.00) is still within its 95% confidence interval of chance (5.00%)"
        in fired[2][0]
    )
    learned = HealthMonitor(warmup=0)
    learned.reference_spread = 1.0
    assert learned.validation(1.0, accuracy=Accuracy("verification accuracy", 80.0, 2.0, 50.0))[1] == []


def test_empty_batches_are_counted_per_validation_and_warn_once() -> None:
    monitor = HealthMonitor(max_empty_fraction=0.1)
    monitor.reference_spread = 1.0
    for i in range(10):
        monitor.training_batch(empty=i == 0, active_fraction=0.5)
    scalars, messages = monitor.validation(1.0)
    assert scalars["health/empty_batches"] == pytest.approx(0.1) and messages == []  # not more than 10%
    assert scalars["health/active_fraction"] == pytest.approx(0.5)
    for i in range(4):
        monitor.training_batch(empty=i < 3, active_fraction=float("nan"))
    scalars, messages = monitor.validation(1.0)
    assert scalars["health/empty_batches"] == pytest.approx(0.75)
    assert "health/active_fraction" not in scalars  # a loss without margin terms reports none
    assert (
        len(messages) == 1 and "75% of the training batches" in messages[0] and "pair_sampling: balanced" in messages[0]
    )
    monitor.training_batch(empty=True, active_fraction=0.0)
    assert monitor.validation(1.0)[1] == []


def test_state_survives_a_resume_so_nothing_warns_twice() -> None:
    monitor = HealthMonitor()
    monitor.reference_spread = 1.0
    assert monitor.validation(0.01)[1]
    resumed = HealthMonitor()
    resumed.load_state_dict(monitor.state_dict())
    assert resumed.reference_spread == 1.0 and resumed.validations == 1
    assert resumed.validation(0.01)[1] == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"collapse_ratio": 1.5}, r"collapse_ratio must be in \(0, 1\), got 1.5"),
        ({"margin_patience": 0}, r"margin_patience >= 1 and warmup >= 0, got 0 and 3"),
        ({"max_empty_fraction": 1.0}, r"max_empty_fraction must be in \[0, 1\), got 1.0"),
        ({"margin_tolerance": 0.0}, r"margin_tolerance must be in \(0, 1\), got 0.0"),
    ],
)
def test_bad_thresholds_are_named(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HealthMonitor(**options)
