"""A linear probe on frozen embeddings, and the Gini out-of-distribution rule (ekeany's seed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

GINI_THRESHOLD = 0.87


def gini(probabilities: np.ndarray) -> np.ndarray:
    """Gini coefficient of each row of ``[N, C]`` non-negative values: ``0.5 * mean_ij |x_i - x_j| / mean(x)``.

    Computed from the sorted row in O(C log C): ``sum_ij |x_i - x_j| = 2 sum_k (2k - C - 1) x_(k)``.
    """
    values = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)
    count = values.shape[1]
    weights = 2 * np.arange(1, count + 1) - count - 1
    mean_abs_difference = 2 * (values * weights).sum(axis=1) / count**2
    return 0.5 * mean_abs_difference / values.mean(axis=1)


def fit_probe(embeddings: np.ndarray, labels: np.ndarray, seed: int = 0) -> Pipeline:
    """A softmax (multinomial logistic regression) classifier on standardised embeddings."""
    if len(np.unique(labels)) < 2:
        raise ValueError(f"a probe needs at least two classes, got {np.unique(labels).tolist()}")
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)).fit(embeddings, labels)


@dataclass
class OODResult:
    """How the Gini rule separates held-out in-distribution images from out-of-distribution ones."""

    threshold: float
    kept: float  # in-distribution images with G >= threshold
    caught: float  # out-of-distribution images with G < threshold
    auc: float  # ROC AUC of G, in-distribution positive
    roc: tuple[np.ndarray, np.ndarray, np.ndarray]  # false positive rate, true positive rate, thresholds
    in_scores: np.ndarray
    out_scores: np.ndarray

    def as_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "in_distribution_kept": self.kept,
            "out_of_distribution_caught": self.caught,
            "auc": self.auc,
            "in_distribution_images": len(self.in_scores),
            "out_of_distribution_images": len(self.out_scores),
        }

    def __str__(self) -> str:
        return (
            f"Gini >= {self.threshold:g} keeps {100 * self.kept:.1f}% of {len(self.in_scores)} in-distribution images "
            f"and catches {100 * self.caught:.1f}% of {len(self.out_scores)} out-of-distribution ones; ROC AUC {self.auc:.4f}"
        )


def gini_ood(
    in_probabilities: np.ndarray, out_probabilities: np.ndarray, threshold: float = GINI_THRESHOLD
) -> OODResult:
    """The Gini rule at ``threshold`` on softmax outputs of in- and out-of-distribution images."""
    if not len(in_probabilities) or not len(out_probabilities):
        raise ValueError(
            f"need in- and out-of-distribution images, got {len(in_probabilities)} and {len(out_probabilities)}"
        )
    in_scores, out_scores = gini(in_probabilities), gini(out_probabilities)
    truth = np.r_[np.ones(len(in_scores)), np.zeros(len(out_scores))]
    scores = np.r_[in_scores, out_scores]
    return OODResult(
        threshold=threshold,
        kept=float((in_scores >= threshold).mean()),
        caught=float((out_scores < threshold).mean()),
        auc=float(roc_auc_score(truth, scores)),
        roc=roc_curve(truth, scores),
        in_scores=in_scores,
        out_scores=out_scores,
    )
