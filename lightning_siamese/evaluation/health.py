"""Training health: the statistics behind ``health/`` and the warnings they raise.

Plain functions and a plain class, no Lightning: :class:`~lightning_siamese.health.TrainingHealth`
(the callback) feeds them the training batches and each validation's embeddings and
accuracy, logs what :meth:`HealthMonitor.validation` returns and gives its warnings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


class TrainingHealthWarning(UserWarning):
    """A sign that training is going wrong (collapsed embeddings, chance accuracy, ...)."""


def embedding_spread(embeddings: torch.Tensor) -> tuple[float, float]:
    """Mean pairwise Euclidean distance of the rows, and the mean per-dimension standard deviation.

    Both are zero when every embedding is the same point (a collapsed model). The cost is
    quadratic in the rows: pass a sample (the callback uses a fixed few hundred images).
    """
    if embeddings.ndim != 2 or len(embeddings) < 2:
        raise ValueError(f"need at least two embeddings [N, D], got shape {tuple(embeddings.shape)}")
    embeddings = embeddings.detach().float()
    return float(torch.pdist(embeddings).double().mean()), float(embeddings.std(0).double().mean())


def batch_is_empty(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Whether a training batch gives a pair or triplet loss nothing to pull together, as a
    boolean tensor on the batch's device (reading it is left to the caller: on a GPU each
    read waits for the device).

    A batch of pairs (``same``) is empty when it holds no same-class pair; a class-balanced
    batch (``labels``) when no image has both a same-class and a different-class partner
    (no valid triplet); a batch of explicit triplets never is.
    """
    if "same" in batch:
        return ~batch["same"].bool().any()
    if "labels" in batch:
        labels = batch["labels"]
        same = labels[:, None] == labels[None, :]
        has_positive = same.sum(1) > 1  # the diagonal is the image itself
        return ~(has_positive & (~same).any(1)).any()
    return torch.tensor(False)


def binomial_ci95(accuracy: float, n: int) -> float:
    """Half-width, in percentage points, of the normal 95% interval of an accuracy (%) over ``n`` trials."""
    p = accuracy / 100.0
    return 196.0 * math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else float("nan")


def near_chance(accuracy: float, ci95: float, chance: float) -> bool:
    """Whether chance (%) lies inside the accuracy's 95% confidence interval."""
    return not math.isnan(ci95) and abs(accuracy - chance) <= ci95


@dataclass
class Accuracy:
    """A validation accuracy, its 95% CI half-width and the chance level, all in percent."""

    name: str  # e.g. "20-way one-shot accuracy" or "verification accuracy"
    value: float
    ci95: float
    chance: float


@dataclass
class HealthMonitor:
    """Which warnings a run has earned; each condition warns at most once per run.

    Args:
        collapse_ratio: warn when the embedding spread falls below this fraction of its
            first value (the untrained network's).
        margin_patience: warn when the triplet validation loss has sat at the margin for
            this many validations in a row.
        margin_tolerance: "at the margin" means within this fraction of the margin.
        warmup: check accuracy against chance only from this many validations on.
        max_empty_fraction: warn when more than this fraction of the training batches
            since the last validation held no positive pair or no valid triplet.
    """

    collapse_ratio: float = 0.1
    margin_patience: int = 3
    margin_tolerance: float = 0.02
    warmup: int = 3
    max_empty_fraction: float = 0.1
    reference_spread: float | None = None
    validations: int = 0
    at_margin: int = 0
    warned: list[str] = field(default_factory=list)
    batches: int = 0
    empty_batches: int = 0
    active: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.collapse_ratio < 1:
            raise ValueError(f"collapse_ratio must be in (0, 1), got {self.collapse_ratio}")
        if self.margin_patience < 1 or self.warmup < 0:
            raise ValueError(f"need margin_patience >= 1 and warmup >= 0, got {self.margin_patience} and {self.warmup}")
        if not 0 <= self.max_empty_fraction < 1:
            raise ValueError(f"max_empty_fraction must be in [0, 1), got {self.max_empty_fraction}")
        if not 0 < self.margin_tolerance < 1:
            raise ValueError(f"margin_tolerance must be in (0, 1), got {self.margin_tolerance}")

    def training_batch(self, empty: bool, active_fraction: float) -> None:
        """Count one training batch: whether it was empty, and its loss's active fraction (NaN: none)."""
        self.batches += 1
        self.empty_batches += int(empty)
        if not math.isnan(active_fraction):
            self.active.append(active_fraction)

    def validation(
        self,
        spread: float,
        accuracy: Accuracy | None = None,
        triplet_loss: float | None = None,
        margin: float | None = None,
    ) -> tuple[dict[str, float], list[str]]:
        """One validation: the ``health/`` scalars, and the warnings given for the first time.

        The training-batch counts start afresh afterwards.
        """
        self.validations += 1
        if self.reference_spread is None:
            self.reference_spread = spread
        scalars = {"health/embedding_spread": spread, "health/spread_ratio": spread / max(self.reference_spread, 1e-12)}
        if self.active:
            scalars["health/active_fraction"] = sum(self.active) / len(self.active)
        empty_fraction = self.empty_batches / self.batches if self.batches else float("nan")
        if self.batches:
            scalars["health/empty_batches"] = empty_fraction
        messages = []
        if scalars["health/spread_ratio"] < self.collapse_ratio:
            messages += self._once("collapse", self._collapse_message(spread, self.reference_spread))
        if triplet_loss is not None and margin is not None:
            self.at_margin = self.at_margin + 1 if abs(triplet_loss - margin) <= self.margin_tolerance * margin else 0
            if self.at_margin >= self.margin_patience:
                messages += self._once("margin", self._margin_message(triplet_loss, margin))
        if (
            accuracy is not None
            and self.validations > self.warmup
            and near_chance(accuracy.value, accuracy.ci95, accuracy.chance)
        ):
            messages += self._once("chance", self._chance_message(accuracy))
        if self.batches and empty_fraction > self.max_empty_fraction:
            messages += self._once("empty", self._empty_message(empty_fraction))
        self.batches = self.empty_batches = 0
        self.active = []
        return scalars, messages

    def _once(self, condition: str, message: str) -> list[str]:
        if condition in self.warned:
            return []
        self.warned.append(condition)
        return [message]

    def _collapse_message(self, spread: float, reference: float) -> str:
        return (
            f"training health: the embeddings have collapsed: their spread (mean pairwise distance {spread:.3g}) "
            f"is {spread / max(reference, 1e-12):.1%} of its first value ({reference:.3g}), "
            f"below {self.collapse_ratio:.0%}, so every image gets nearly the same embedding. Likely cause: a learning "
            f"rate far too high (dead ReLUs), or batch-hard triplet mining from the first step (mapping every image "
            f"to one point is its easy way out). Usual fixes: a learning rate 10x lower; semihard or all-triplet "
            f"mining instead of hard (head mining: semihard); L2-normalised embeddings (head normalize: true); "
            f"batch norm in the encoder."
        )

    def _margin_message(self, loss: float, margin: float) -> str:
        return (
            f"training health: the triplet validation loss has sat at the margin ({loss:.4g} vs margin {margin:g}) "
            f"for {self.at_margin} validations: d(anchor, positive) and d(anchor, negative) are equal, the mark of "
            f"embeddings collapsed to one point. Likely cause: batch-hard mining from the start, or a learning rate "
            f"too high. Usual fixes: semihard or all-triplet mining (head mining: semihard), a learning rate 10x "
            f"lower, L2-normalised embeddings (normalize: true), more images per class in a batch."
        )

    def _chance_message(self, accuracy: Accuracy) -> str:
        return (
            f"training health: after {self.validations} validations the {accuracy.name} ({accuracy.value:.2f}% "
            f"+- {accuracy.ci95:.2f}) is still within its 95% confidence interval of chance ({accuracy.chance:.2f}%): "
            f"the model has learned nothing that tells the classes apart. Likely cause: collapsed embeddings (see "
            f"health/embedding_spread), a learning rate far too high or too low, or training labels that do not "
            f"match the images. Usual fixes: a learning rate 10x lower (or higher); check that one batch can be "
            f"memorised (trainer.overfit_batches: 1, see the README); look at the training pairs (val/pairs in "
            f"TensorBoard)."
        )

    def _empty_message(self, fraction: float) -> str:
        return (
            f"training health: {fraction:.0%} of the training batches since the last validation held no positive "
            f"pair (or no valid triplet), more than {self.max_empty_fraction:.0%}: the loss mostly sees different-class "
            f"pairs and learns to push everything apart. Likely cause: pairs drawn uniformly over many classes "
            f"(pair_sampling: darkshot_unbalanced), or class-balanced batches with one image per class. Usual fixes: "
            f"balanced pairs (pair_sampling: balanced), or batch_kind: classes with images_per_class >= 2."
        )

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs, so that it neither forgets its first spread nor warns again."""
        return {k: getattr(self, k) for k in ("reference_spread", "validations", "at_margin", "warned")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, list(value) if key == "warned" else value)
