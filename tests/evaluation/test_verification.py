import itertools
import json
import math

import pytest
import torch

from lightning_siamese.evaluation.verification import (
    best_threshold,
    equal_error_rate,
    kfold_accuracy,
    verification_metrics,
)


def overlapping_pairs(
    n_pos: int, n_neg: int, seed: int, decimals: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-person scores ~ N(1, 1), different-person ~ N(-1, 1); rounding makes ties."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.cat([torch.randn(n_pos, generator=generator) + 1, torch.randn(n_neg, generator=generator) - 1])
    if decimals is not None:
        scores = scores.round(decimals=decimals)
    labels = torch.cat([torch.ones(n_pos, dtype=torch.long), torch.zeros(n_neg, dtype=torch.long)])
    order = torch.randperm(n_pos + n_neg, generator=generator)
    return scores[order], labels[order]


def accuracy_loop(scores: list[float], labels: list[int], threshold: float) -> float:
    return 100.0 * sum((s >= threshold) == bool(y) for s, y in zip(scores, labels)) / len(scores)


def best_threshold_loop(scores: list[float], labels: list[int]) -> float:
    unique = sorted(set(scores))
    candidates = [-math.inf] + [(a + b) / 2 for a, b in itertools.pairwise(unique)] + [math.inf]
    best, best_accuracy = None, -1.0
    for t in candidates:  # ascending, strict >: ties keep the smallest
        accuracy = accuracy_loop(scores, labels, t)
        if accuracy > best_accuracy:
            best, best_accuracy = t, accuracy
    return best


def far_tar_loop(scores: list[float], labels: list[int], threshold: float) -> tuple[float, float]:
    accepted = [s >= threshold for s in scores]
    n_pos = sum(labels)
    far = sum(a for a, y in zip(accepted, labels) if not y) / (len(labels) - n_pos)
    tar = sum(a for a, y in zip(accepted, labels) if y) / n_pos
    return far, tar


def test_perfectly_separable_pairs() -> None:
    scores = torch.tensor([0.9, 0.8, 0.95, 0.7, 0.1, 0.2, 0.3, 0.05])
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    result = verification_metrics(scores, labels)
    assert result.accuracy == 100.0
    assert result.threshold == pytest.approx(0.5)  # midpoint of the gap 0.3 .. 0.7
    assert result.auc == 1.0
    assert result.eer == 0.0
    assert result.eer_threshold == pytest.approx(0.7)
    assert result.tar_at_far == {1e-2: 100.0, 1e-3: 100.0}
    assert result.n_pairs == 8
    assert json.loads(json.dumps(result.as_dict()))["tar_at_far"] == {"0.01": 100.0, "0.001": 100.0}


def test_reversed_scores_give_auc_0() -> None:
    scores = torch.tensor([0.9, 0.8, 0.95, 0.7, 0.1, 0.2, 0.3, 0.05])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    result = verification_metrics(scores, labels)
    assert result.auc == 0.0
    assert result.eer == 100.0
    assert result.tar_at_far == {1e-2: 0.0, 1e-3: 0.0}


def test_hand_worked_example_with_exact_eer() -> None:
    # sorted scores 0.1 0.2 0.3 0.4 0.5 0.6 with labels 0 0 1 0 1 1.
    # Correct decisions per split: 3 4 5 4 5 4 3 -> best 5/6, first at the split 0.2 | 0.3.
    # At threshold 0.4: accepted 0.4 (neg), 0.5, 0.6; rejected 0.3 (pos) -> FAR = FRR = 1/3.
    # AUC: the positive 0.3 beats 2 of 3 negatives, 0.5 and 0.6 beat all 3 -> 8/9.
    scores = torch.tensor([0.4, 0.1, 0.6, 0.3, 0.2, 0.5])
    labels = torch.tensor([0, 0, 1, 1, 0, 1])
    assert best_threshold(scores, labels) == pytest.approx(0.25)
    result = verification_metrics(scores, labels)
    assert result.threshold == pytest.approx(0.25)
    assert result.accuracy == pytest.approx(500 / 6)
    assert result.eer == pytest.approx(100 / 3)
    assert result.eer_threshold == pytest.approx(0.4)
    assert result.auc == pytest.approx(8 / 9)
    # Only FAR 0 qualifies (3 negatives): at threshold 0.5 two of three positives pass.
    assert result.tar_at_far[1e-2] == pytest.approx(200 / 3)
    # A given threshold is used as is: 0.35 accepts the negative 0.4 and rejects the positive 0.3.
    assert verification_metrics(scores, labels, threshold=0.35).accuracy == pytest.approx(400 / 6)


def test_hand_worked_example_with_interpolated_eer() -> None:
    # Sorted scores 1..5 with labels 0 1 0 0 1. ROC points (FAR, FRR) from the top:
    # >5: (0, 1); 5: (0, 1/2); 4: (1/3, 1/2); 3: (2/3, 1/2); 2: (2/3, 0); 1: (1, 0).
    # FAR - FRR goes -1/6 at 4 to +1/6 at 3: halfway FAR = 1/2 = FRR -> EER 50%.
    # Both points are 1/6 away; the tie goes to the lower threshold, 3.
    # Accuracy per split: 2 3 2 3 4 3 -> best 4/5 at the split 4 | 5.
    scores = torch.tensor([3.0, 1.0, 5.0, 2.0, 4.0])
    labels = torch.tensor([0, 0, 1, 1, 0])
    assert equal_error_rate(scores, labels) == pytest.approx((50.0, 3.0))
    assert best_threshold(scores, labels) == 4.5
    assert verification_metrics(scores, labels).accuracy == pytest.approx(80.0)


def test_scores_outside_unit_interval_keep_their_order() -> None:
    # Negative distances, and large scores that a sigmoid would merge in float32
    # (sigmoid(20) == sigmoid(30) == sigmoid(40) == 1.0): merged, the AUC would be 4/6.
    scores = torch.tensor([-30.0, -20.0, 20.0, 30.0, 40.0])
    labels = torch.tensor([0, 1, 0, 1, 1])
    result = verification_metrics(scores, labels)
    assert result.auc == pytest.approx(5 / 6)
    assert result.eer_threshold in scores.tolist()
    assert result.threshold == -25.0  # accuracy per split 3 4 3 4 3 2: first best at -30 | -20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_threshold_matches_brute_force(seed: int) -> None:
    scores, labels = overlapping_pairs(60, 90, seed, decimals=1)  # ties included
    expected = best_threshold_loop(scores.tolist(), labels.tolist())
    assert best_threshold(scores, labels) == pytest.approx(expected)
    assert verification_metrics(scores, labels).accuracy == pytest.approx(
        accuracy_loop(scores.tolist(), labels.tolist(), expected)
    )


def test_best_threshold_extremes() -> None:
    assert best_threshold(torch.tensor([0.2, 0.7]), torch.tensor([1, 1])) == -math.inf
    assert best_threshold(torch.tensor([0.2, 0.7]), torch.tensor([0, 0])) == math.inf


def test_eer_matches_a_brute_force_sweep() -> None:
    scores, labels = overlapping_pairs(2000, 3000, seed=3)
    eer, threshold = equal_error_rate(scores, labels)
    s, y = scores.tolist(), labels.tolist()
    rates = [far_tar_loop(s, y, t) for t in sorted(set(s))[::5]]
    far, tar = min(rates, key=lambda r: abs(r[0] - (1 - r[1])))
    assert eer == pytest.approx(100 * (far + 1 - tar) / 2, abs=1.0)
    assert eer == pytest.approx(100 * 0.1587, abs=1.0)  # Phi(-1) for N(+-1, 1)
    far, tar = far_tar_loop(s, y, threshold)
    assert abs(far - (1 - tar)) < 0.01


def test_tar_at_far_matches_brute_force() -> None:
    scores, labels = overlapping_pairs(500, 1000, seed=4)
    s, y = scores.tolist(), labels.tolist()
    result = verification_metrics(scores, labels, fars=(1e-1, 1e-2, 1e-3))
    for target, tar in result.tar_at_far.items():
        rates = [far_tar_loop(s, y, t) for t in set(s) | {math.inf}]
        expected = max(t for f, t in rates if f <= target)
        assert tar == pytest.approx(100 * expected), target
    assert 0 < result.tar_at_far[1e-3] < result.tar_at_far[1e-2] < result.tar_at_far[1e-1] < 100


def test_kfold_accuracy_matches_a_python_loop() -> None:
    scores, labels = overlapping_pairs(300, 300, seed=5, decimals=2)
    folds = torch.arange(600) % 10
    mean, stderr, per_fold = kfold_accuracy(scores, labels, folds)
    s, y, f = scores.tolist(), labels.tolist(), folds.tolist()
    expected = []
    for k in range(10):
        train = [i for i in range(600) if f[i] != k]
        test = [i for i in range(600) if f[i] == k]
        t = best_threshold_loop([s[i] for i in train], [y[i] for i in train])
        expected.append(accuracy_loop([s[i] for i in test], [y[i] for i in test], t))
    assert per_fold == pytest.approx(expected)
    expected_mean = sum(expected) / 10
    assert mean == pytest.approx(expected_mean)
    variance = sum((a - expected_mean) ** 2 for a in expected) / 9
    assert stderr == pytest.approx(math.sqrt(variance / 10))
    assert 80 < mean < 90  # Bayes accuracy Phi(1) = 84.1%


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2, 0.3], [0, 1], "same length, got 3 and 2"),
        ([], [], "no pairs"),
        ([0.1, float("nan")], [0, 1], "1 NaN"),
        ([0.1, 0.2], [0, 2], r"labels must be 0 \(different\) or 1 \(same person\), got values \[0, 2\]"),
        ([0.1, 0.2], [1, 1], "AUC and EER need both .* every label is 1"),
        ([0.1, 0.2], [0, 0], "every label is 0"),
    ],
)
def test_invalid_pairs_raise(scores: list, labels: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        verification_metrics(torch.tensor(scores), torch.tensor(labels))
    if "AUC" in message or "every label" in message:
        with pytest.raises(ValueError, match=message):
            equal_error_rate(torch.tensor(scores), torch.tensor(labels))
    else:
        with pytest.raises(ValueError, match=message):
            best_threshold(torch.tensor(scores), torch.tensor(labels))


def test_invalid_fars_and_folds_raise() -> None:
    scores, labels = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="fars must lie strictly between 0 and 1"):
        verification_metrics(scores, labels, fars=(0.0,))
    with pytest.raises(ValueError, match="one fold id per pair, got 3 for 4 pairs"):
        kfold_accuracy(scores, labels, torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="at least 2 folds, got 1"):
        kfold_accuracy(scores, labels, torch.zeros(4, dtype=torch.long))


def test_confident_pairs_pick_the_most_confident_right_and_wrong_of_each_class() -> None:
    from lightning_siamese.evaluation.verification import confident_pairs

    scores = torch.tensor([0.9, 0.6, 0.2, 0.45, 0.1, 0.7, 0.95])
    labels = torch.tensor([1, 1, 1, 0, 0, 0, 0])
    chosen = confident_pairs(scores, labels, threshold=0.5, per_kind=1)
    assert chosen == [("right same", 0), ("right different", 4), ("wrong same", 2), ("wrong different", 6)]
    perfect = confident_pairs(torch.tensor([0.9, 0.1]), torch.tensor([1, 0]), 0.5, per_kind=3)
    assert [kind for kind, _ in perfect] == ["right same", "right different"]


def test_roc_curve_runs_from_accept_nobody_to_accept_everybody() -> None:
    from lightning_siamese.evaluation.verification import roc_curve

    far, tar, thresholds = roc_curve(torch.tensor([0.9, 0.8, 0.3, 0.1]), torch.tensor([1, 0, 1, 0]))
    assert far.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0] and tar.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert math.isinf(thresholds[0]) and thresholds[1:].tolist() == pytest.approx([0.9, 0.8, 0.3, 0.1])
