"""Metric-learning losses: plain ``nn.Module``s, testable against brute-force loops.

Call signatures (label 1 = same class, as everywhere in this project):

- ``ContrastiveLoss(margin)(first, second, same)`` on explicit pairs;
- ``TripletLoss(margin)(anchor, positive, negative)`` on explicit triplets;
- ``MinedContrastiveLoss(margin, miner)(embeddings, labels)`` and
  ``MinedTripletLoss(margin, miner)(embeddings, labels)`` average over the pairs or
  triplets a miner (:mod:`lightning_siamese.models.miners`) picks from a batch;
- ``PrototypicalLoss(shots)(embeddings, labels)`` classifies each class's remaining
  images against the class means of its first ``shots`` (Snell et al. 2017).

Distances carry a small epsilon inside the square root so gradients stay finite when two
embeddings coincide.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_siamese.models.distances import euclidean, pairwise_distances
from lightning_siamese.models.miners import (
    ActiveTriplets,
    AllPairsMiner,
    BatchHardMiner,
    CappedTriplets,
    PairMiner,
    TripletMiner,
    Triplets,
)


def _check_margin(margin: float, allow_zero: bool = False) -> None:
    # A triplet margin may be 0 (the loss still orders d(a, p) below d(a, n)): the trivial-solution
    # end of the MNIST seed's margin sweep. A contrastive margin of 0 never pushes negatives apart.
    if margin < 0 or (margin == 0 and not allow_zero):
        raise ValueError(f"margin must be {'>= 0' if allow_zero else '> 0'}, got {margin}")


class ContrastiveLoss(nn.Module):
    """Hadsell, Chopra and LeCun (2006): ``y d^2 + (1 - y) max(0, m - d)^2``, averaged.

    ``same`` is 1 for a same-class pair. (Some code, e.g. the SigNet blog, uses 1 for
    "dissimilar"; pass ``1 - label`` for such data.)
    """

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        _check_margin(margin)
        self.margin = margin
        self.last_active_fraction: torch.Tensor | float = float("nan")

    def terms(self, distance: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        same = same.to(distance.dtype)
        return same * distance.pow(2) + (1 - same) * F.relu(self.margin - distance).pow(2)

    def note_active(self, negative_distance: torch.Tensor) -> None:
        """Keep, as ``last_active_fraction``, the fraction of different-class pairs inside the
        margin: the margin terms that are non-zero (a 0-d tensor, read without a device sync;
        NaN when there are no such pairs)."""
        self.last_active_fraction = (negative_distance.detach() < self.margin).float().mean()

    def forward(self, first: torch.Tensor, second: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        distance = euclidean(first, second)
        self.note_active(distance[same == 0])
        return self.terms(distance, same).mean()


class TripletLoss(nn.Module):
    """Schroff et al. (2015): ``max(0, d(a, p) - d(a, n) + m)``, averaged.

    Args:
        margin: m >= 0.
        squared: use squared Euclidean distances (FaceNet, the MNIST seed).
    """

    def __init__(self, margin: float = 0.2, squared: bool = False) -> None:
        super().__init__()
        _check_margin(margin, allow_zero=True)
        self.margin = margin
        self.squared = squared
        # The fraction of non-zero terms of the last call (a 0-d tensor, read without a device sync).
        self.last_active_fraction: torch.Tensor | float = float("nan")

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        ap = euclidean(anchor, positive, self.squared)
        an = euclidean(anchor, negative, self.squared)
        terms = F.relu(ap - an + self.margin)
        self.last_active_fraction = (terms.detach() > 0).float().mean()
        return terms.mean()


class MinedTripletLoss(nn.Module):
    """Triplet loss ``max(0, d(a, p) - d(a, n) + m)`` averaged over the triplets ``miner`` picks
    from a batch of ``(embeddings, labels)``.

    The miner sees the ``[B, B]`` distances without gradients; the loss is then built from those
    distances alone, so memory grows with the square of the batch. Batch-all's triplets
    (:class:`~lightning_siamese.models.miners.ActiveTriplets`) are the active ones, so their mean
    is ``sum (d(a, p) - d(a, n)) / count + m`` with no hinge to apply, from ``[B, B]`` products;
    a capped sample of them is averaged the same way, so it estimates that mean without bias.

    Args:
        margin: m >= 0 (a batch-all miner must use the same margin).
        miner: a :class:`~lightning_siamese.models.miners.TripletMiner`; ``None``: batch-hard.
        squared: use squared Euclidean distances.

    ``last_active_fraction`` holds the fraction of non-zero terms among the triplets considered
    (batch-all: the active share of all valid triplets), before any cap. A batch with no triplet
    gives a zero loss that still carries a gradient graph.
    """

    def __init__(self, margin: float = 0.2, miner: TripletMiner | None = None, squared: bool = False) -> None:
        super().__init__()
        _check_margin(margin, allow_zero=True)
        self.margin = margin
        self.miner = BatchHardMiner() if miner is None else miner
        self.squared = squared
        self.last_active_fraction = float("nan")

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d = pairwise_distances(embeddings, self.squared)
        mined = self.miner(d.detach(), labels)
        sample = mined.sample if isinstance(mined, CappedTriplets) else None
        if isinstance(mined, CappedTriplets):
            mined = mined.mined
        if isinstance(mined, ActiveTriplets):
            return self._active(d, mined, sample)
        terms = self._hinge(d, mined)
        if terms.numel() == 0:
            self.last_active_fraction = float("nan")
            return d.sum() * 0.0
        self.last_active_fraction = float((terms > 0).float().mean())
        return (terms if sample is None else self._hinge(d, sample)).mean()

    def _hinge(self, d: torch.Tensor, triplets: Triplets) -> torch.Tensor:
        return F.relu(d[triplets.anchor, triplets.positive] - d[triplets.anchor, triplets.negative] + self.margin)

    def _active(self, d: torch.Tensor, active: ActiveTriplets, sample: Triplets | None) -> torch.Tensor:
        if active.margin != self.margin:
            raise ValueError(f"the batch-all miner's margin {active.margin} differs from the loss's {self.margin}")
        count = len(active)
        self.last_active_fraction = count / active.valid if active.valid else float("nan")
        if count == 0:
            return d.sum() * 0.0
        if sample is None:
            return active.sum_of_differences(d) / count + self.margin
        return (d[sample.anchor, sample.positive] - d[sample.anchor, sample.negative] + self.margin).mean()


class MinedContrastiveLoss(nn.Module):
    """Contrastive loss over the pairs ``miner`` picks from a batch of ``(embeddings, labels)``:
    the positive pairs' mean and the negative pairs' mean, summed, so that the many negatives
    of a batch do not drown its few positives.

    Args:
        margin: distance beyond which a negative pair costs nothing.
        miner: a :class:`~lightning_siamese.models.miners.PairMiner`; ``None``: all pairs.
    """

    def __init__(self, margin: float = 1.0, miner: PairMiner | None = None) -> None:
        super().__init__()
        self.contrastive = ContrastiveLoss(margin)
        self.miner = AllPairsMiner() if miner is None else miner

    @property
    def last_active_fraction(self) -> torch.Tensor | float:
        """The fraction of the last call's mined negatives inside the margin."""
        return self.contrastive.last_active_fraction

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d = pairwise_distances(embeddings)
        pairs = self.miner(d.detach(), labels)
        pos_d, neg_d = d[pairs.positive_anchor, pairs.positive], d[pairs.negative_anchor, pairs.negative]
        self.contrastive.note_active(neg_d)
        loss = d.sum() * 0.0
        if pos_d.numel():
            loss = loss + self.contrastive.terms(pos_d, torch.ones_like(pos_d)).mean()
        if neg_d.numel():
            loss = loss + self.contrastive.terms(neg_d, torch.zeros_like(neg_d)).mean()
        return loss


class PrototypicalLoss(nn.Module):
    """Prototypical networks' loss (Snell et al. 2017) on a class-balanced batch.

    Every class of the batch has the same K images; its first ``shots`` (in batch order)
    form the prototype (their mean embedding) and the other K - shots are queries,
    classified by softmax over negative squared distances to all prototypes of the batch.
    A P x K batch is thus one P-way ``shots``-shot episode with K - shots queries per way.
    ``last_accuracy`` holds the fraction of queries classified correctly.
    """

    def __init__(self, shots: int = 1) -> None:
        super().__init__()
        if shots < 1:
            raise ValueError(f"shots must be >= 1, got {shots}")
        self.shots = shots
        self.last_accuracy = float("nan")

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        classes, counts = labels.unique(return_counts=True)
        if len(classes) < 2 or (counts != counts[0]).any() or int(counts[0]) <= self.shots:
            raise ValueError(
                f"a prototypical batch needs at least 2 classes with the same number of images, "
                f"more than shots={self.shots} each; got counts {counts.tolist()} for {len(classes)} classes"
            )
        order = torch.sort(labels, stable=True).indices  # grouped by class, batch order kept
        grouped = embeddings[order].view(len(classes), int(counts[0]), -1)
        prototypes = grouped[:, : self.shots].mean(1)  # [P, D]
        queries = grouped[:, self.shots :]  # [P, Q, D]
        logits = -euclidean(queries[:, :, None, :], prototypes[None, None], squared=True)  # [P, Q, P]
        target = torch.arange(len(classes), device=labels.device)[:, None].expand(-1, queries.shape[1])
        self.last_accuracy = float((logits.argmax(-1) == target).float().mean())
        return F.cross_entropy(logits.flatten(0, 1), target.flatten())
