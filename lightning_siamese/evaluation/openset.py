"""Open-set N-way evaluation: "none of these" for queries from classes outside the support set.

Each fixed episode gets ``U`` unknown queries (:func:`~lightning_siamese.data.samplers.sample_unknown_queries`)
beside its ``N * Q`` known ones. A query's best similarity to the ways decides: below the
rejection threshold the answer is "unknown", otherwise the best way. The threshold is fitted on
validation episodes at a target false-accept rate (the share of unknown queries accepted).

Per episode, then mean and 95% CI over episodes:

- closed-set accuracy: known queries whose best way is their own (no rejection);
- open-set accuracy: over all queries, a known query is right when accepted and given its own
  way, an unknown one when rejected;
- rejection AUC: how well the best score separates known (positive) from unknown queries
  within an episode; the pooled AUC does the same over all episodes' queries together, which
  is what one global threshold faces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torchmetrics.functional.classification import binary_auroc, multilabel_auroc

from lightning_siamese.data.samplers.episodes import Episodes, sample_unknown_queries
from lightning_siamese.evaluation.oneshot import Similarity, episode_scores, mean_ci95
from lightning_siamese.evaluation.verification import threshold_at_far


@dataclass
class OpenSetScores:
    """Best scores of the queries of fixed episodes: known ``[T, N * Q]``, unknown ``[T, U]``."""

    known_best: torch.Tensor
    known_right: torch.Tensor  # the best way is the query's own: closed-set correct
    unknown_best: torch.Tensor

    def pooled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every query's best score and whether it is known (1) or unknown (0), over all episodes."""
        best = torch.cat([self.known_best.flatten(), self.unknown_best.flatten()])
        known = torch.cat([torch.ones(self.known_best.numel()), torch.zeros(self.unknown_best.numel())]).long()
        return best, known


@torch.no_grad()
def openset_scores(
    embeddings: torch.Tensor,
    episodes: Episodes,
    unknown: torch.Tensor,
    similarity: Similarity,
    shot_reduction: str = "mean",
) -> OpenSetScores:
    """Score the known and the unknown queries of ``episodes`` against their ways (ties go to the first way)."""
    if unknown.ndim != 2 or unknown.shape[0] != len(episodes):
        raise ValueError(
            f"unknown queries must be [tasks={len(episodes)}, U] image indices, got shape {list(unknown.shape)}"
        )
    known = episode_scores(embeddings, episodes, similarity, shot_reduction).cpu()
    other = episode_scores(embeddings, episodes, similarity, shot_reduction, queries=unknown).cpu()
    target = torch.arange(episodes.n_way).repeat_interleave(episodes.query.shape[2])
    known_best, known_way = known.max(-1)
    return OpenSetScores(known_best.double(), known_way == target, other.amax(-1).double())


def score_with_unknowns(
    collection,
    episodes: Episodes,
    embeddings: torch.Tensor,
    similarity: Similarity,
    shot_reduction: str = "mean",
    fraction: float = 0.2,
    within_group: bool = True,
) -> OpenSetScores:
    """Add unknown queries (a ``fraction`` of all, seeded by the episodes) to ``episodes`` of ``collection`` and score them."""
    unknown = sample_unknown_queries(
        collection.labels, collection.class_groups, episodes, fraction, within_group=within_group
    )
    return openset_scores(embeddings, episodes, unknown, similarity, shot_reduction)


def rejection_threshold(scores: OpenSetScores, target_far: float) -> float:
    """The lowest threshold that accepts at most ``target_far`` of the unknown queries (pooled over episodes)."""
    return threshold_at_far(*scores.pooled(), target_far)


@dataclass
class OpenSetResult:
    """Open-set metrics over fixed episodes; accuracies and rates in percent, AUC in [0, 1]."""

    closed_acc: float
    closed_ci95: float
    open_acc: float
    open_ci95: float
    auc: float
    auc_ci95: float
    pooled_auc: float
    threshold: float
    false_accept: float
    false_reject: float
    unknown_fraction: float
    n_way: int
    k_shot: int
    tasks: int
    seed: int

    def __str__(self) -> str:
        return (
            f"{self.n_way}-way {self.k_shot}-shot open set ({self.unknown_fraction:.0%} unknown queries, "
            f"threshold {self.threshold:.4g}): closed-set accuracy {self.closed_acc:.2f}% +- {self.closed_ci95:.2f}, "
            f"open-set accuracy {self.open_acc:.2f}% +- {self.open_ci95:.2f}, rejection AUC {self.auc:.4f} "
            f"+- {self.auc_ci95:.4f}; unknowns accepted {self.false_accept:.2f}%, knowns rejected "
            f"{self.false_reject:.2f}% ({self.tasks} tasks, seed {self.seed})"
        )

    def as_dict(self) -> dict:
        return asdict(self)


def episode_aucs(scores: OpenSetScores) -> torch.Tensor:
    """Rejection AUC of each episode ``[T]``: known queries (positive) against unknown ones, by best score."""
    best = torch.cat([scores.known_best, scores.unknown_best], 1)
    known = torch.cat([torch.ones_like(scores.known_best), torch.zeros_like(scores.unknown_best)], 1).long()
    # One "label" per episode; float64 so torchmetrics' sigmoid of scores outside [0, 1] keeps their order.
    return multilabel_auroc(best.T.double(), known.T, num_labels=len(best), average=None)


def evaluate_openset(scores: OpenSetScores, threshold: float, episodes: Episodes) -> OpenSetResult:
    """Closed-set and open-set accuracy and rejection AUC at ``threshold``, each with a 95% CI over episodes."""
    known_accepted = scores.known_best >= threshold
    unknown_rejected = scores.unknown_best < threshold
    n_known, n_unknown = scores.known_best.shape[1], scores.unknown_best.shape[1]
    right = (known_accepted & scores.known_right).sum(1) + unknown_rejected.sum(1)
    closed, closed_ci = mean_ci95(scores.known_right.double().mean(1) * 100.0)
    open_acc, open_ci = mean_ci95(right.double() * 100.0 / (n_known + n_unknown))
    auc, auc_ci = mean_ci95(episode_aucs(scores))
    return OpenSetResult(
        closed_acc=closed,
        closed_ci95=closed_ci,
        open_acc=open_acc,
        open_ci95=open_ci,
        auc=auc,
        auc_ci95=auc_ci,
        pooled_auc=float(binary_auroc(*scores.pooled())),
        threshold=float(threshold),
        false_accept=float((~unknown_rejected).double().mean()) * 100.0,
        false_reject=float((~known_accepted).double().mean()) * 100.0,
        unknown_fraction=n_unknown / (n_known + n_unknown),
        n_way=episodes.n_way,
        k_shot=episodes.k_shot,
        tasks=len(episodes),
        seed=episodes.seed,
    )
