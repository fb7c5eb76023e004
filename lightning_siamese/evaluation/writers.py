"""Per-writer verification thresholds, fitted on each writer's reference signatures.

At enrolment a signature system holds a few genuine references of the writer and no
forgeries. The spread of the references' scores against each other says how variable that
writer's genuine signatures are, so the writer's threshold is
``t_w = mean_w - k * std_w`` over the references' pairwise similarities: a questioned
signature is accepted when its similarity to a reference is at least ``t_w``. Equivalently
its reference-normalised score ``(s - mean_w) / std_w`` is at least ``-k``. The one global
number ``k`` is tuned on the validation writers (most accurate), stored in the checkpoint,
and applied to the test writers, each with their own ``mean_w`` and ``std_w``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lightning_siamese.evaluation.verification import (
    best_threshold,
    verification_metrics,
)


def reference_statistics(
    table: torch.Tensor, references: torch.Tensor, similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (population) of the similarities of every pair of references."""
    i, j = torch.triu_indices(len(references), len(references), offset=1)
    scores = similarity(table[references[i]], table[references[j]]).float()
    return scores.mean(), scores.std(unbiased=False)


def reference_normalized_scores(
    scores: torch.Tensor,
    writer: torch.Tensor,
    table: torch.Tensor,
    references: list[torch.Tensor],
    similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    min_std: float = 1e-6,
) -> torch.Tensor:
    """``(s - mean_w) / std_w`` for each pair's score ``s`` and writer ``w`` (std floored at ``min_std``)."""
    stats = [reference_statistics(table, r.to(table.device), similarity) for r in references]
    mean = torch.stack([m for m, _ in stats])[writer]
    std = torch.stack([s for _, s in stats]).clamp_min(min_std)[writer]
    return (scores.float() - mean) / std


def writer_scores(
    table: torch.Tensor,
    pairs: dict[str, torch.Tensor],
    references: list[torch.Tensor],
    similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Each pair's score normalised by its writer's reference signatures.

    ``pairs`` holds ``first``, ``second`` and ``writer`` (rows of ``table``, the embeddings);
    ``references[w]`` are the rows of writer ``w``'s references.
    """
    first, second, writer = (pairs[k].to(table.device) for k in ("first", "second", "writer"))
    return reference_normalized_scores(similarity(table[first], table[second]), writer, table, references, similarity)


def fit_writer_k(normalized: torch.Tensor, same: torch.Tensor) -> float:
    """The ``k`` whose per-writer thresholds are most accurate on these (validation) pairs."""
    return -best_threshold(normalized, same)


def error_rates(scores: torch.Tensor, same: torch.Tensor, threshold: float) -> tuple[float, float]:
    """FAR (forgeries accepted) and FRR (genuine signatures rejected) at ``threshold``, in percent."""
    accepted, same = scores >= threshold, same.bool()
    return float(accepted[~same].double().mean()) * 100.0, float((~accepted[same]).double().mean()) * 100.0


def writer_metrics(stage: str, normalized: torch.Tensor, same: torch.Tensor, k: float | None) -> dict[str, float]:
    """Accuracy, FAR and FRR at the per-writer thresholds (``k`` from validation), and the AUC and
    EER of the normalised scores, logged as ``<stage>/writer_*``."""
    result = verification_metrics(normalized, same, None if k is None else -k)
    far, frr = error_rates(normalized, same, result.threshold)
    return {
        f"{stage}/writer_acc": result.accuracy,
        f"{stage}/writer_far": far,
        f"{stage}/writer_frr": frr,
        f"{stage}/writer_k": -result.threshold,
        f"{stage}/writer_auc": result.auc,
        f"{stage}/writer_eer": result.eer,
    }
