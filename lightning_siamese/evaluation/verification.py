"""Face-verification metrics for scored pairs: accuracy, AUC, EER, TAR@FAR, 10-fold accuracy.

A pair has a label (1 = same person, 0 = different) and a score where higher means more
alike (a sigmoid probability, a cosine similarity, a negative distance). A pair is
predicted "same" when ``score >= threshold``. FAR is the fraction of different-person
pairs accepted, FRR the fraction of same-person pairs rejected, TAR = 1 - FRR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torchmetrics.functional.classification import binary_auroc, binary_roc


@dataclass
class VerificationResult:
    """Pair-verification metrics; accuracy, EER and TAR in percent."""

    accuracy: float
    threshold: float
    auc: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[float, float]
    n_pairs: int

    def __str__(self) -> str:
        tars = ", ".join(f"TAR@FAR={far:g} {tar:.2f}%" for far, tar in self.tar_at_far.items())
        return (
            f"verification accuracy {self.accuracy:.2f}% (threshold {self.threshold:.4g}), "
            f"AUC {self.auc:.4f}, EER {self.eer:.2f}%, {tars} ({self.n_pairs} pairs)"
        )

    def as_dict(self) -> dict:
        return asdict(self)


def _check_pairs(
    scores: torch.Tensor, labels: torch.Tensor, both_classes: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and flatten to float64 scores and int64 labels on the CPU."""
    scores = torch.as_tensor(scores).detach().cpu().reshape(-1).double()
    labels = torch.as_tensor(labels).detach().cpu().reshape(-1)
    if len(scores) != len(labels):
        raise ValueError(f"scores and labels must have the same length, got {len(scores)} and {len(labels)}")
    if len(scores) == 0:
        raise ValueError("no pairs to evaluate")
    if torch.isnan(scores).any():
        raise ValueError(f"scores contain {int(torch.isnan(scores).sum())} NaN value(s)")
    values = torch.unique(labels)
    if not bool(((values == 0) | (values == 1)).all()):
        raise ValueError(f"labels must be 0 (different) or 1 (same person), got values {values.tolist()}")
    labels = labels.long()
    if both_classes and len(values) < 2:
        raise ValueError(
            f"AUC and EER need both same-person (1) and different-person (0) pairs, but every label is {int(labels[0])}"
        )
    return scores, labels


def _accuracy(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> float:
    return float(((scores >= threshold).long() == labels).double().mean()) * 100.0


def _ranks(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique scores, and each score's rank among them scaled to [0, 1].

    torchmetrics squashes scores outside [0, 1] through a sigmoid, which would merge large
    distinct scores in float32; ranks keep the order, which is all ROC and AUC depend on.
    """
    unique, rank = torch.unique(scores, return_inverse=True)
    return unique, rank.double() / max(len(unique) - 1, 1)


def _roc(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FAR, TAR and the threshold of each ROC point, thresholds decreasing from ``+inf``.

    torchmetrics gives a leading "accept nobody" point, then one point per unique score,
    descending. Its rates are float32: they are rounded back to exact counts (exact below
    2**24 pairs) so that e.g. 1 false accept in 1000 compares equal to FAR 1e-3.
    """
    unique, ranks = _ranks(scores)
    fpr, tpr, _ = binary_roc(ranks, labels)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    far = (fpr.double() * n_neg).round() / n_neg
    tar = (tpr.double() * n_pos).round() / n_pos
    thresholds = torch.cat([torch.tensor([math.inf], dtype=torch.float64), unique.flip(0)])
    return far, tar, thresholds


def _eer(far: torch.Tensor, tar: torch.Tensor, thresholds: torch.Tensor) -> tuple[float, float]:
    frr = 1.0 - tar
    gap = far - frr  # -1 at the "accept nobody" point, +1 at "accept everybody", non-decreasing
    i = int(torch.nonzero(gap >= 0)[0])  # i >= 1 since gap[0] = -1
    j = i - 1
    alpha = float(-gap[j] / (gap[i] - gap[j]))
    eer = float(far[j] + alpha * (far[i] - far[j])) * 100.0
    nearest = i if gap[i] <= -gap[j] else j
    return eer, float(thresholds[nearest])


def roc_curve(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FAR, TAR and threshold of each ROC point (float64), thresholds decreasing from ``+inf``."""
    scores, labels = _check_pairs(scores, labels, both_classes=True)
    return _roc(scores, labels)


def confident_pairs(
    scores: torch.Tensor, labels: torch.Tensor, threshold: float, per_kind: int = 2
) -> list[tuple[str, int]]:
    """The most confidently right and wrong pairs of each class, like the LFW seed's report.

    Returns up to ``per_kind`` pairs for each of right/wrong x same/different, as
    ``(kind, index)`` with kinds such as ``"right same"``; confidence is the score's distance
    from ``threshold``. Kinds with no pair (a perfect model makes no mistakes) are left out.
    """
    scores, labels = _check_pairs(scores, labels)
    margin = (scores - threshold).abs()
    right = (scores >= threshold).long() == labels
    chosen = []
    for correct in (True, False):
        for same in (1, 0):
            kind = f"{'right' if correct else 'wrong'} {'same' if same else 'different'}"
            members = torch.nonzero((right == correct) & (labels == same)).flatten()
            order = members[torch.argsort(margin[members], descending=True, stable=True)]
            chosen += [(kind, int(i)) for i in order[:per_kind]]
    return chosen


def best_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The threshold that maximises accuracy on these pairs.

    Candidates are ``-inf`` (everyone "same"), the midpoints between consecutive unique
    scores, and ``+inf`` (everyone "different"), so every distinct split of the sorted
    scores is tried once, and a midpoint leaves a margin on both sides for unseen pairs.
    Ties go to the smallest threshold, which makes the choice deterministic.
    """
    scores, labels = _check_pairs(scores, labels)
    unique, index = torch.unique(scores, return_inverse=True)
    positives = torch.zeros(len(unique), dtype=torch.long).index_add_(0, index, labels)
    negatives = torch.bincount(index, minlength=len(unique)) - positives
    zero = torch.zeros(1, dtype=torch.long)
    # Candidate k puts the k smallest unique scores below the threshold.
    below_pos = torch.cat([zero, positives.cumsum(0)])
    below_neg = torch.cat([zero, negatives.cumsum(0)])
    correct = int(positives.sum()) - below_pos + below_neg
    k = int(torch.argmax(correct))  # first maximum: the smallest threshold
    if k == 0:
        return -math.inf
    if k == len(unique):
        return math.inf
    return float(unique[k - 1] + (unique[k] - unique[k - 1]) / 2)


def equal_error_rate(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Equal error rate in percent and a threshold near it.

    FAR and FRR are read off the ROC; between the two consecutive ROC points where
    FAR - FRR changes sign they are interpolated linearly, and the EER is the rate where
    they meet. No single threshold need reach it, so the threshold returned is that of the
    bracketing point where FAR and FRR are closer (the lower threshold on a tie).
    """
    scores, labels = _check_pairs(scores, labels, both_classes=True)
    return _eer(*_roc(scores, labels))


def verification_metrics(
    scores: torch.Tensor,
    labels: torch.Tensor,
    threshold: float | None = None,
    fars: Sequence[float] = (1e-2, 1e-3),
) -> VerificationResult:
    """Accuracy at ``threshold``, AUC, EER and TAR at each FAR in ``fars``.

    With ``threshold=None`` it is :func:`best_threshold` on these same pairs, which flatters
    the accuracy: for an honest test number choose the threshold on validation pairs and
    pass it in (or use :func:`kfold_accuracy`). TAR@FAR is the highest TAR among operating
    points whose FAR is at most the target; with fewer than ``1 / far`` different-person
    pairs only FAR = 0 qualifies.
    """
    scores, labels = _check_pairs(scores, labels, both_classes=True)
    if any(not 0.0 < far < 1.0 for far in fars):
        raise ValueError(f"fars must lie strictly between 0 and 1, got {list(fars)}")
    if threshold is None:
        threshold = best_threshold(scores, labels)
    far, tar, thresholds = _roc(scores, labels)
    eer, eer_threshold = _eer(far, tar, thresholds)
    auc = float(binary_auroc(_ranks(scores)[1], labels))
    return VerificationResult(
        accuracy=_accuracy(scores, labels, threshold),
        threshold=float(threshold),
        auc=auc,
        eer=eer,
        eer_threshold=eer_threshold,
        tar_at_far={float(f): float(tar[far <= f].max()) * 100.0 for f in fars},
        n_pairs=len(scores),
    )


def kfold_accuracy(scores: torch.Tensor, labels: torch.Tensor, folds: torch.Tensor) -> tuple[float, float, list[float]]:
    """LFW View 2 protocol: mean accuracy (%), its standard error (%) and each fold's accuracy.

    For each fold the threshold is :func:`best_threshold` on the other folds, and accuracy
    is measured on the held-out fold, so no pair helps choose its own threshold. The
    standard error is ``std(ddof=1) / sqrt(k)`` over the ``k`` folds (folds in id order).
    """
    scores, labels = _check_pairs(scores, labels)
    folds = torch.as_tensor(folds).detach().cpu().reshape(-1)
    if len(folds) != len(scores):
        raise ValueError(f"folds must give one fold id per pair, got {len(folds)} for {len(scores)} pairs")
    fold_ids = torch.unique(folds)
    if len(fold_ids) < 2:
        raise ValueError(f"k-fold accuracy needs at least 2 folds, got {len(fold_ids)}")
    per_fold = []
    for fold in fold_ids:
        test = folds == fold
        threshold = best_threshold(scores[~test], labels[~test])
        per_fold.append(_accuracy(scores[test], labels[test], threshold))
    accuracies = torch.tensor(per_fold, dtype=torch.float64)
    return float(accuracies.mean()), float(accuracies.std(unbiased=True)) / math.sqrt(len(per_fold)), per_fold


THRESHOLD_RULES = ("accuracy", "eer", "far")


def check_far(target_far: float, name: str = "target_far") -> float:
    """``target_far`` as a float, or a ValueError when it is not strictly between 0 and 1."""
    if isinstance(target_far, bool) or not isinstance(target_far, (int, float)) or not 0.0 < target_far < 1.0:
        raise ValueError(f"{name} must be a false-accept rate strictly between 0 and 1 (e.g. 0.01), got {target_far!r}")
    return float(target_far)


def threshold_at_far(scores: torch.Tensor, labels: torch.Tensor, target_far: float) -> float:
    """The lowest threshold whose false-accept rate on these pairs is at most ``target_far``.

    Of the ROC points with FAR <= target it takes the one that accepts the most (highest
    TAR); the threshold is the midpoint between the lowest accepted score and the next
    lower one (``-inf`` when everyone is accepted, ``+inf`` when even the top score must be
    rejected), a margin on both sides for unseen pairs, as :func:`best_threshold` does.
    """
    target_far = check_far(target_far)
    scores, labels = _check_pairs(scores, labels, both_classes=True)
    far, _, thresholds = _roc(scores, labels)
    i = int(torch.nonzero(far <= target_far).max())  # far is non-decreasing; far[0] = 0
    if i == 0:
        return math.inf
    if i == len(thresholds) - 1:
        return -math.inf
    return float(thresholds[i] + (thresholds[i + 1] - thresholds[i]) / 2)


def fit_threshold(
    scores: torch.Tensor, labels: torch.Tensor, rule: str = "accuracy", target_far: float | None = None
) -> float:
    """The decision threshold by ``rule``: ``"accuracy"`` (:func:`best_threshold`), ``"eer"``
    (the threshold of :func:`equal_error_rate`) or ``"far"`` (:func:`threshold_at_far` at ``target_far``)."""
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    if rule == "accuracy":
        return best_threshold(scores, labels)
    if rule == "eer":
        return equal_error_rate(scores, labels)[1]
    if target_far is None:
        raise ValueError("the 'far' threshold rule needs target_far, a false-accept rate in (0, 1)")
    return threshold_at_far(scores, labels, target_far)
