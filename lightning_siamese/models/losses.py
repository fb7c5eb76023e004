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

from lightning_siamese.models.distances import euclidean, pairwise_distances

MINING = ("all", "hard", "semihard")


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

    Memory grows with the square of the batch, never its cube: the triplets are chosen
    without gradients (batch-all counts them with sorted distances and binary search,
    semi-hard picks its negatives a block of positive pairs at a time), and the loss is then
    built from the ``[B, B]`` distances alone.

    Args:
        margin: m >= 0.
        mining: ``"all"``, ``"hard"`` or ``"semihard"``.
        squared: use squared Euclidean distances.
        max_triplets: keep at most this many of the triplets the mean runs over (for
            ``"all"`` the active ones, otherwise the mined ones), a uniform random subset
            drawn without replacement; ``None`` keeps them all.
        seed: seeds the generator of that subset; ``None`` seeds it from torch's global RNG
            at first use (so ``seed_everything`` makes it repeatable).

    ``last_active_fraction`` holds the fraction of mined terms that were non-zero (before
    any cap). A batch with no valid triplet gives a zero loss that still carries a gradient graph.
    """

    # Elements of semi-hard mining's largest temporary ``[pairs, B]`` block (at least one row).
    chunk_elements = 1 << 22

    def __init__(
        self,
        margin: float = 0.2,
        mining: str = "hard",
        squared: bool = False,
        max_triplets: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _check_margin(margin, allow_zero=True)
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}, got {mining!r}")
        if max_triplets is not None and max_triplets < 1:
            raise ValueError(f"max_triplets must be >= 1 (or None for no cap), got {max_triplets}")
        self.margin = margin
        self.mining = mining
        self.squared = squared
        self.max_triplets = max_triplets
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        self.last_active_fraction = float("nan")

    def _generator(self, device: torch.device) -> torch.Generator:
        if self.seed is None:
            self.seed = int(torch.randint(2**62, ()))
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def subset_state(self) -> dict:
        """The seed and generator states of the ``max_triplets`` subsets, for checkpoints, so
        that a resumed run draws the subsets an uninterrupted one would have drawn."""
        return {"seed": self.seed, "generators": {str(d): g.get_state() for d, g in self._generators.items()}}

    def load_subset_state(self, state: dict) -> None:
        self.seed = state["seed"]
        self._generators = {}
        for name, generator_state in state["generators"].items():
            device = torch.device(name)
            if device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_available()):
                self._generator(device).set_state(generator_state)

    def _subsample(self, count: int, device: torch.device) -> torch.Tensor | None:
        """Positions of a uniform random subset of ``max_triplets`` of ``count`` terms, or ``None``."""
        if self.max_triplets is None or count <= self.max_triplets:
            return None
        keys = torch.rand(count, generator=self._generator(device), device=device)
        return keys.topk(self.max_triplets, largest=False).indices

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d = pairwise_distances(embeddings, self.squared)
        positive, negative = _masks(labels)
        if self.mining == "all":
            return self._batch_all(d, positive, negative)
        if self.mining == "hard":
            anchors = positive.any(1) & negative.any(1)
            hardest_positive = d.masked_fill(~positive, float("-inf")).amax(1)
            hardest_negative = d.masked_fill(~negative, float("inf")).amin(1)
            terms = F.relu(hardest_positive - hardest_negative + self.margin)[anchors]
        else:
            terms = self._semihard(d, positive, negative)
        if terms.numel() == 0:
            self.last_active_fraction = float("nan")
            return d.sum() * 0.0
        self.last_active_fraction = float((terms > 0).float().mean())
        keep = self._subsample(len(terms), terms.device)
        return (terms if keep is None else terms[keep]).mean()

    def _semihard(self, d: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """One term per positive pair with a negative; negatives chosen ``[pairs, B]`` rows at a time."""
        a, p = positive.nonzero(as_tuple=True)
        keep = negative[a].any(1)
        a, p = a[keep], p[keep]
        chosen = torch.empty_like(a)
        step = max(1, self.chunk_elements // len(d))
        with torch.no_grad():
            for start in range(0, len(a), step):
                rows = a[start : start + step]
                an, neg = d[rows], negative[rows]
                farther = neg & (an > d[rows, p[start : start + step]][:, None])
                semi = an.masked_fill(~farther, float("inf")).argmin(1)
                fallback = an.masked_fill(~neg, float("-inf")).argmax(1)
                chosen[start : start + step] = torch.where(farther.any(1), semi, fallback)
        return F.relu(d[a, p] - d[a, chosen] + self.margin)

    def _batch_all(self, d: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """Mean of the active terms ``d(a, p) - d(a, n) + m`` over all valid triplets, in O(B^2) memory.

        A triplet is active when ``d(a, n) < d(a, p) + m``. Without gradients, each anchor's
        negative distances are sorted once; a binary search then counts, for every positive
        pair (a, p), its active negatives ``w_ap`` (they are the ``w_ap`` nearest negatives of
        a), and likewise for every (a, n) its active positives ``w_an``. The mean of the active
        terms is ``(sum_ap w_ap d_ap - sum_an w_an d_an) / count + m``: the per-triplet sum's
        value and gradient from ``[B, B]`` tensors. Under a cap, ``max_triplets`` distinct
        active triplets are drawn uniformly by rank and decoded back to (a, p, n).
        """
        valid = int((positive.sum(1) * negative.sum(1)).sum())
        if valid == 0:
            self.last_active_fraction = float("nan")
            return d.sum() * 0.0
        with torch.no_grad():
            shifted = d + self.margin  # d(a, p) + m: the same floats on both sides of each comparison
            negatives, nearest = d.masked_fill(~negative, float("inf")).sort(1)
            positives = shifted.masked_fill(~positive, float("inf")).sort(1).values
            w_ap = torch.searchsorted(negatives, shifted.contiguous()).masked_fill_(~positive, 0)
            below = torch.searchsorted(positives, d.contiguous(), right=True)  # positives with d(a, p) + m <= d(a, n)
            w_an = (positive.sum(1, keepdim=True) - below).masked_fill_(~negative, 0)
        count = int(w_ap.sum())
        self.last_active_fraction = count / valid
        if count == 0:
            return d.sum() * 0.0
        if self.max_triplets is None or count <= self.max_triplets:
            return ((w_ap * d).sum() - (w_an * d).sum()) / count + self.margin
        # Rank r runs over active triplets (a, p) by (a, p), then the (a, p)'s active negatives nearest first.
        ranks = self._distinct_ranks(count, d.device)
        ends = w_ap.flatten().cumsum(0)
        pair = torch.searchsorted(ends, ranks, right=True)
        a, p = pair // len(d), pair % len(d)
        n = nearest[a, ranks - (ends[pair] - w_ap.flatten()[pair])]
        return (d[a, p] - d[a, n] + self.margin).mean()

    def _distinct_ranks(self, count: int, device: torch.device) -> torch.Tensor:
        """``max_triplets`` distinct integers drawn uniformly from ``[0, count)``, in O(max_triplets) memory."""
        cap, generator = self.max_triplets, self._generator(device)
        if count <= 4 * cap:
            return torch.randperm(count, generator=generator, device=device)[:cap]
        ranks = torch.empty(0, dtype=torch.long, device=device)
        while len(ranks) < cap:  # draws with repeats; few repeat when count > 4 cap
            ranks = torch.cat([ranks, torch.randint(count, (cap,), generator=generator, device=device)]).unique()
        # A uniform subset of a uniformly drawn set is a uniform subset.
        return ranks[torch.randperm(len(ranks), generator=generator, device=device)[:cap]]


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

    @property
    def last_active_fraction(self) -> torch.Tensor | float:
        """The fraction of the last call's mined negatives inside the margin."""
        return self.contrastive.last_active_fraction

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
