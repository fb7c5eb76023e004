"""The softmax probe, the Gini coefficient against its formula, and the out-of-distribution rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from lightning_siamese.callbacks.figures import plot_roc
from lightning_siamese.evaluation.probe import fit_probe, gini, gini_ood


def gini_by_formula(x: np.ndarray) -> float:
    """0.5 * mean over all (i, j) of |x_i - x_j|, over mean(x): the seed's definition, as loops."""
    n = len(x)
    return 0.5 * sum(abs(a - b) for a in x for b in x) / n**2 / x.mean()


def test_gini_equals_the_formula_and_its_ends() -> None:
    rows = np.random.default_rng(0).dirichlet(np.full(10, 0.3), size=50)
    assert gini(rows) == pytest.approx([gini_by_formula(r) for r in rows])
    assert gini(np.eye(10)[:1]) == pytest.approx([0.9])  # one-hot over ten classes: (n - 1) / n
    assert gini(np.full((1, 10), 0.1)) == pytest.approx([0.0])  # uniform
    assert gini(np.array([[3.0, 1.0, 0.0]])) == pytest.approx([gini_by_formula(np.array([3.0, 1.0, 0.0]))])


def test_probe_and_gini_rule() -> None:
    rng = np.random.default_rng(1)
    centres = 4 * rng.normal(size=(5, 6))
    labels = rng.integers(0, 5, size=400)
    points = centres[labels] + rng.normal(size=(400, 6))
    probe = fit_probe(points[:300], labels[:300])
    assert (probe.predict(points[300:]) == labels[300:]).mean() > 0.9
    inside = probe.predict_proba(points[300:])
    outside = probe.predict_proba(rng.normal(size=(80, 6)) * 0.5)  # between the clusters: unsure outputs
    result = gini_ood(inside, outside, threshold=0.7)
    assert result.kept == pytest.approx((gini(inside) >= 0.7).mean())
    assert result.caught == pytest.approx((gini(outside) < 0.7).mean())
    truth = np.r_[np.ones(len(inside)), np.zeros(len(outside))]
    assert result.auc == pytest.approx(roc_auc_score(truth, np.r_[gini(inside), gini(outside)])) and result.auc > 0.8
    assert result.as_dict()["in_distribution_images"] == 100 and "ROC AUC" in str(result)
    with pytest.raises(ValueError, match="need in- and out-of-distribution images, got 100 and 0"):
        gini_ood(inside, outside[:0])
    with pytest.raises(ValueError, match="a probe needs at least two classes"):
        fit_probe(points[:5], np.zeros(5))


def test_roc_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    result = gini_ood(rng.dirichlet(np.full(10, 0.1), size=50), rng.dirichlet(np.full(10, 5.0), size=50))
    plot_roc(result, str(tmp_path / "roc.png"), "test")
    assert Image.open(tmp_path / "roc.png").size[0] > 300
