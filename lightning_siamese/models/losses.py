"""Metric-learning losses: plain ``nn.Module``s, testable against brute-force loops.

Call signatures (label 1 = same class, as everywhere in this project):

- ``ContrastiveLoss(margin)(first, second, same)`` on explicit pairs;
- ``TripletLoss(margin)(anchor, positive, negative)`` on explicit triplets;
- ``MinedContrastiveLoss(margin, mining)(embeddings, labels)`` and
  ``MinedTripletLoss(margin, mining)(embeddings, labels)`` mine the pairs or triplets
  of a batch online;
- ``PrototypicalLoss(shots)(embeddings, labels)`` classifies each class's remaining
  images against the class means of its first ``shots`` (Snell et al. 2017).

Distances carry a small epsilon inside the square root so gradients stay finite when two
embeddings coincide.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12

MINING = ("all", "hard", "semihard")


def euclidean(first: torch.Tensor, second: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Row-wise (broadcasting) Euclidean distance, or its square."""
    d2 = (first - second).pow(2).sum(-1)
    return d2 if squared else (d2 + EPS).sqrt()


def pairwise_distances(embeddings: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """All distances ``[B, B]`` within a batch (exact differences, not the Gram trick)."""
    return euclidean(embeddings[:, None, :], embeddings[None, :, :], squared)


def _check_margin(margin: float) -> None:
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")


class ContrastiveLoss(nn.Module):
    """Hadsell, Chopra and LeCun (2006): ``y d^2 + (1 - y) max(0, m - d)^2``, averaged.

    ``same`` is 1 for a same-class pair. (Some code, e.g. the SigNet blog, uses 1 for
    "dissimilar"; pass ``1 - label`` for such data.)
    """

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        _check_margin(margin)
        self.margin = margin

    def terms(self, distance: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        same = same.to(distance.dtype)
        return same * distance.pow(2) + (1 - same) * F.relu(self.margin - distance).pow(2)

    def forward(self, first: torch.Tensor, second: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        return self.terms(euclidean(first, second), same).mean()


class TripletLoss(nn.Module):
    """Schroff et al. (2015): ``max(0, d(a, p) - d(a, n) + m)``, averaged.

    Args:
        margin: m > 0.
        squared: use squared Euclidean distances (FaceNet, the MNIST seed).
    """

    def __init__(self, margin: float = 0.2, squared: bool = False) -> None:
        super().__init__()
        _check_margin(margin)
        self.margin = margin
        self.squared = squared

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        ap = euclidean(anchor, positive, self.squared)
        an = euclidean(anchor, negative, self.squared)
        return F.relu(ap - an + self.margin).mean()


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & not_self, ~same


class MinedTripletLoss(nn.Module):
    """Triplet loss over the triplets mined from a batch of ``(embeddings, labels)``.

    Mining:
        ``"all"``: every valid triplet (a, p, n); the loss is the mean over the triplets
            with a non-zero term (batch-all, Hermans et al. 2017).
        ``"hard"``: per anchor, its farthest positive and nearest negative (batch-hard).
        ``"semihard"``: per positive pair (a, p), the nearest negative farther than p;
            when there is none, the farthest negative (FaceNet's rule, as TensorFlow
            Addons implements it); mean over positive pairs.

    ``last_active_fraction`` holds the fraction of mined terms that were non-zero. A batch
    with no valid triplet gives a zero loss that still carries a gradient graph.
    """

    def __init__(self, margin: float = 0.2, mining: str = "hard", squared: bool = False) -> None:
        super().__init__()
        _check_margin(margin)
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}, got {mining!r}")
        self.margin = margin
        self.mining = mining
        self.squared = squared
        self.last_active_fraction = float("nan")

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d = pairwise_distances(embeddings, self.squared)
        positive, negative = _masks(labels)
        if self.mining == "all":
            # [a, p, n] terms; valid where (a, p) positive and (a, n) negative.
            terms = F.relu(d[:, :, None] - d[:, None, :] + self.margin)
            valid = positive[:, :, None] & negative[:, None, :]
            terms = terms[valid]
            active = terms > 1e-16
            self.last_active_fraction = float(active.float().mean()) if terms.numel() else float("nan")
            return terms[active].mean() if active.any() else d.sum() * 0.0
        if self.mining == "hard":
            anchors = positive.any(1) & negative.any(1)
            hardest_positive = d.masked_fill(~positive, float("-inf")).amax(1)
            hardest_negative = d.masked_fill(~negative, float("inf")).amin(1)
            terms = F.relu(hardest_positive - hardest_negative + self.margin)[anchors]
        else:
            a, p = positive.nonzero(as_tuple=True)
            keep = negative[a].any(1)
            a, p = a[keep], p[keep]
            ap = d[a, p]
            an = d[a]  # [pairs, B]
            neg = negative[a]
            farther = neg & (an > ap[:, None])
            semi = an.masked_fill(~farther, float("inf")).amin(1)
            fallback = an.masked_fill(~neg, float("-inf")).amax(1)
            chosen = torch.where(farther.any(1), semi, fallback)
            terms = F.relu(ap - chosen + self.margin)
        if terms.numel() == 0:
            self.last_active_fraction = float("nan")
            return d.sum() * 0.0
        self.last_active_fraction = float((terms > 0).float().mean())
        return terms.mean()


class MinedContrastiveLoss(nn.Module):
    """Contrastive loss over the pairs of a batch of ``(embeddings, labels)``.

    Mining:
        ``"all"``: every pair (i < j), positives and negatives averaged separately and
            summed, so the many negatives do not drown the few positives.
        ``"hard"``: per anchor, its farthest positive and its nearest negative.
    """

    def __init__(self, margin: float = 1.0, mining: str = "all") -> None:
        super().__init__()
        if mining not in ("all", "hard"):
            raise ValueError(f"mining must be 'all' or 'hard' for contrastive loss, got {mining!r}")
        self.contrastive = ContrastiveLoss(margin)
        self.mining = mining

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d = pairwise_distances(embeddings)
        positive, negative = _masks(labels)
        if self.mining == "all":
            upper = torch.ones_like(positive).triu(1)
            pos_d, neg_d = d[positive & upper], d[negative & upper]
        else:
            anchors_p, anchors_n = positive.any(1), negative.any(1)
            pos_d = d.masked_fill(~positive, float("-inf")).amax(1)[anchors_p]
            neg_d = d.masked_fill(~negative, float("inf")).amin(1)[anchors_n]
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
