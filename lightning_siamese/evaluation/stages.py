"""A validation or test stage's scoring, from its embedding table: the numbers a module logs.

Pure tensor code: the LightningModule gathers each image's embedding once, these functions
score the stage's episodes or pairs, and callbacks write the files (figures, JSON records).
What validation fits (the verification and open-set thresholds, the per-writer ``k``) is passed
in and returned explicitly, so the test stage applies exactly what validation chose.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lightning_siamese.data.samplers.episodes import Episodes, check_unknown_fraction
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.transforms.views import AlignmentViews
from lightning_siamese.evaluation.oneshot import (
    SHOT_REDUCTIONS,
    AlignedSimilarity,
    OneShotResult,
    Similarity,
    SupportHubness,
    episode_accuracies,
    summarize,
)
from lightning_siamese.evaluation.openset import (
    OpenSetResult,
    evaluate_openset,
    rejection_threshold,
    score_with_unknowns,
)
from lightning_siamese.evaluation.verification import (
    THRESHOLD_RULES,
    VerificationResult,
    check_far,
    fit_threshold,
    kfold_accuracy,
    verification_metrics,
)
from lightning_siamese.evaluation.writers import (
    fit_writer_k,
    writer_metrics,
    writer_scores,
)

Pairwise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StageScoring:
    """How a stage's episodes and pairs are scored (the module's evaluation settings, checked once).

    See :class:`~lightning_siamese.models.module.SiameseModule` for each setting.
    """

    shot_reduction: str = "mean"
    hubness: SupportHubness | None = None
    threshold_rule: str = "accuracy"
    target_far: float | None = None
    openset: bool = False
    openset_fraction: float = 0.2
    openset_far: float = 0.05

    def __post_init__(self) -> None:
        if self.shot_reduction not in SHOT_REDUCTIONS:
            raise ValueError(f"shot_reduction must be one of {SHOT_REDUCTIONS}, got {self.shot_reduction!r}")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise ValueError(f"threshold_rule must be one of {THRESHOLD_RULES}, got {self.threshold_rule!r}")
        if self.threshold_rule == "far" and self.target_far is None:
            raise ValueError("threshold_rule 'far' needs target_far, a false-accept rate in (0, 1), e.g. 0.01")
        if self.target_far is not None:
            check_far(self.target_far)
        check_unknown_fraction(self.openset_fraction)
        check_far(self.openset_far, "openset_far")

    @property
    def rule_name(self) -> str:
        """The threshold rule as checkpoints record it, e.g. ``"far 0.01"``."""
        return self.threshold_rule + (f" {self.target_far:g}" if self.threshold_rule == "far" else "")


@dataclass
class EpisodeScores:
    """A stage's episode accuracies: per task, summarised, and (when aligned) the plain ones beside."""

    per_task: torch.Tensor
    result: OneShotResult
    unaligned: OneShotResult | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def score_episodes(
    table: torch.Tensor,
    episodes: Episodes,
    similarity: Similarity,
    scoring: StageScoring,
    aligned: torch.Tensor | None = None,
    pairwise: Pairwise | None = None,
    views: AlignmentViews | None = None,
) -> EpisodeScores:
    """Accuracy of each episode from plain embeddings, or from every alignment view's (``aligned``,
    scored by the head's ``pairwise`` similarity averaged over ``views``' symmetries)."""
    per_task = episode_accuracies(table, episodes, similarity, scoring.shot_reduction, scoring.hubness)
    if aligned is None:
        return EpisodeScores(per_task, summarize(per_task, episodes))
    if pairwise is None or views is None:
        raise ValueError("aligned embeddings need the head's pairwise similarity and the views that made them")
    unaligned = summarize(per_task, episodes)
    per_task = episode_accuracies(
        aligned, episodes, AlignedSimilarity.of(pairwise, views), scoring.shot_reduction, scoring.hubness
    )
    return EpisodeScores(per_task, summarize(per_task, episodes), unaligned)


def episode_metrics(stage: str, name: str, scores: EpisodeScores) -> dict[str, float]:
    """``<stage>/<name>_ci95`` and, when aligned, the plain accuracy beside (the accuracy itself is logged apart)."""
    metrics = {f"{stage}/{name}_ci95": scores.result.ci95}
    if scores.unaligned is not None:
        metrics[f"{stage}/{name}_acc_unaligned"] = scores.unaligned.accuracy
        metrics[f"{stage}/{name}_ci95_unaligned"] = scores.unaligned.ci95
    return metrics


def score_openset(
    stage: str,
    collection: ImageCollection,
    episodes: Episodes,
    table: torch.Tensor,
    similarity: Similarity,
    scoring: StageScoring,
    within_group: bool,
    threshold: float | None,
) -> OpenSetResult:
    """Open-set scores of the stage's episodes; validation fits the rejection threshold, later stages apply
    ``threshold`` (the result's ``threshold`` is the one used)."""
    scores = score_with_unknowns(
        collection, episodes, table, similarity, scoring.shot_reduction, scoring.openset_fraction, within_group
    )
    if stage == "val":
        threshold = rejection_threshold(scores, scoring.openset_far)
    elif threshold is None:
        warnings.warn(
            f"no open-set rejection threshold (the model was never validated): {stage} fits one on its own "
            f"episodes at false-accept rate {scoring.openset_far:g}, which flatters the open-set accuracy",
            stacklevel=2,
        )
        threshold = rejection_threshold(scores, scoring.openset_far)
    return evaluate_openset(scores, threshold, episodes)


def openset_metrics(stage: str, result: OpenSetResult) -> dict[str, float]:
    return {
        f"{stage}/openset_acc": result.open_acc,
        f"{stage}/openset_acc_ci95": result.open_ci95,
        f"{stage}/openset_auc": result.auc,
        f"{stage}/openset_auc_ci95": result.auc_ci95,
        f"{stage}/openset_closed_acc": result.closed_acc,
        f"{stage}/openset_threshold": result.threshold,
        f"{stage}/openset_false_accept": result.false_accept,
        f"{stage}/openset_false_reject": result.false_reject,
    }


@dataclass
class PairScores:
    """A stage's verification: each pair's score and label, the metrics, and what validation fitted."""

    scores: torch.Tensor
    same: torch.Tensor
    result: VerificationResult
    metrics: dict[str, torch.Tensor | float] = field(default_factory=dict)  # the module adds the stage's loss
    threshold: float | None = None  # the verification threshold applied (fitted, for validation)
    writer_k: float | None = None  # signatures: the per-writer k applied (fitted, for validation)


def score_pairs(
    stage: str,
    table: torch.Tensor,
    pairs: dict[str, torch.Tensor],
    similarity: Similarity,
    scoring: StageScoring,
    probability: bool,
    threshold: float | None,
    writer_k: float | None = None,
    references: list[torch.Tensor] | None = None,
) -> PairScores:
    """Verification metrics of a pair list: accuracy, AUC, EER, TAR at FAR, and the official k folds if any.

    Validation fits the threshold by ``scoring.threshold_rule``; the test stage applies
    ``threshold``, so its accuracy is not tuned on test pairs (with none, it warns and uses the
    best threshold on the test pairs themselves). Pairs with a ``writer`` (signatures) are also
    scored with each writer's own threshold from their ``references``. ``probability`` heads also
    report the accuracy at 0.5.
    """
    first, second, same = (pairs[k].to(table.device) for k in ("first", "second", "same"))
    scores = similarity(table[first], table[second]).float().cpu()
    same = same.cpu()
    if stage == "val":
        threshold = fit_threshold(scores, same, scoring.threshold_rule, scoring.target_far)
    elif threshold is None:
        warnings.warn(
            f"no validation threshold (the model was never validated): {stage} accuracy uses the threshold "
            f"that is best on these {stage} pairs themselves, which flatters it",
            stacklevel=2,
        )
    result = verification_metrics(scores, same, threshold)
    metrics: dict[str, torch.Tensor | float] = {}
    if "writer" in pairs:
        normalized = writer_scores(table, pairs, references or [], similarity).cpu()
        if stage == "val":
            writer_k = fit_writer_k(normalized, same)
        metrics |= writer_metrics(stage, normalized, same, writer_k)
    metrics |= {
        f"{stage}/acc": result.accuracy,
        f"{stage}/threshold": result.threshold,
        f"{stage}/auc": result.auc,
        f"{stage}/eer": result.eer,
        **{f"{stage}/tar_at_far_{far:g}": tar for far, tar in result.tar_at_far.items()},
    }
    if probability:
        metrics[f"{stage}/acc_at_0.5"] = verification_metrics(scores, same, 0.5).accuracy
    folds = pairs.get("folds")
    if folds is not None and len(torch.unique(folds)) > 1:  # LFW View 2: the official 10-fold protocol
        mean, se, _ = kfold_accuracy(scores, same, folds)
        metrics |= {f"{stage}/kfold_acc": mean, f"{stage}/kfold_se": se}
    return PairScores(scores, same, result, metrics, threshold, writer_k)


@dataclass
class StageRecord:
    """What a stage scored, for the callbacks that write files: its data set and its scores."""

    dataset: Any  # the stage's EvaluationSet
    episodes: EpisodeScores | None = None
    pairs: PairScores | None = None
    views: AlignmentViews | None = None


def score_episode_stage(
    stage: str,
    dataset: Any,
    table: torch.Tensor,
    head: Any,
    scoring: StageScoring,
    within_group: bool,
    openset_threshold: float | None,
    aligned: torch.Tensor | None = None,
    views: AlignmentViews | None = None,
) -> tuple[EpisodeScores, OpenSetResult | None]:
    """A stage's N-way K-shot scores (plain or aligned) and, with ``scoring.openset``, its open-set result.

    ``dataset`` is the stage's evaluation set (episodes, and ``task_names`` for Lake's runs, which hold only
    their own 20 characters and so are scored closed-set); ``head`` gives ``similarity`` and
    ``pairwise_similarity``. The scores' ``metrics`` hold every ``<stage>/...`` value but the accuracy itself
    and, for validation, ``hp_metric``. The open-set result's ``threshold`` is the one fitted (validation) or applied.
    """
    scores = score_episodes(table, dataset.episodes, head.similarity, scoring, aligned, head.pairwise_similarity, views)
    scores.metrics = episode_metrics(stage, dataset.name, scores)
    openset = None
    if scoring.openset and dataset.task_names is None:
        openset = score_openset(
            stage,
            dataset.collection,
            dataset.episodes,
            table,
            head.similarity,
            scoring,
            within_group,
            openset_threshold,
        )
        scores.metrics |= openset_metrics(stage, openset)
    elif scoring.openset:
        warnings.warn(
            f"openset: {stage} scores Lake's runs closed-set (a run holds only its own 20 characters)", stacklevel=2
        )
    if stage == "val":
        scores.metrics["hp_metric"] = scores.result.accuracy  # the HPARAMS tab's metric column
    return scores, openset
