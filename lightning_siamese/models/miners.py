"""Online miners: choose the triplets or pairs of a batch that a loss averages over.

A miner takes a batch's distance matrix ``[B, B]`` (it never needs gradients) and labels ``[B]``
and returns indices, as pytorch-metric-learning's miners do; a loss composes with any miner of
its kind (:class:`~lightning_siamese.models.losses.MinedTripletLoss`,
:class:`~lightning_siamese.models.losses.MinedContrastiveLoss`). Keeping the choice apart from
the loss lets each rule be read, tested against brute-force loops and combined on its own:

- triplet miners: :class:`BatchAllMiner`, :class:`BatchHardMiner`, :class:`SemiHardMiner`,
  and :class:`TripletCap`, which keeps a seeded random subset of what any of them returns;
- pair miners: :class:`AllPairsMiner`, :class:`HardPairsMiner` and :class:`TripletPairsMiner`
  (the pairs of a triplet miner's triplets, e.g. semi-hard pairs).

Batch-all returns its triplets as per-pair counts (:class:`ActiveTriplets`) rather than index
tensors: a batch of B images holds about ``B^2 (K - 1)`` valid triplets, and everything here
stays in ``[B, B]`` memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

MINING = ("all", "hard", "semihard")
PAIR_MINING = ("all", "hard", "semihard")

# Spawn key of the stream an unseeded cap derives from the run's seed, so that its draws are
# not the numbers torch's global generator gives for the same seed.
_CAP_STREAM = 0x6D696E65  # "mine"


def label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``positive[a, p]``: same class and ``a != p``; ``negative[a, n]``: different classes."""
    same = labels[:, None] == labels[None, :]
    not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & not_self, ~same


# --- what triplet miners return ---------------------------------------------------------


@dataclass(frozen=True, eq=False)  # tensors have no truth value to compare by
class Triplets:
    """Triplets ``(anchor[i], positive[i], negative[i])`` of a batch, as index tensors ``[T]``."""

    anchor: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor

    def __len__(self) -> int:
        return len(self.anchor)

    def select(self, positions: torch.Tensor) -> Triplets:
        return Triplets(self.anchor[positions], self.positive[positions], self.negative[positions])


@dataclass(frozen=True, eq=False)
class ActiveTriplets:
    """Every valid triplet with ``d(a, n) < d(a, p) + margin``, held as counts over pairs.

    ``positive_counts[a, p]`` is how many such triplets the positive pair (a, p) is in (they
    are a's nearest negatives), ``negative_counts[a, n]`` how many the negative pair (a, n) is
    in; ``nearest[a]`` lists a's negatives nearest first (its other columns come after them).
    Sums over the triplets are sums over ``[B, B]`` tensors (:meth:`sum_of_differences`), and
    a triplet's rank decodes to its indices (:meth:`decode`).
    """

    positive_counts: torch.Tensor
    negative_counts: torch.Tensor
    nearest: torch.Tensor
    valid: int  # valid triplets of the batch, active or not
    margin: float

    def __len__(self) -> int:
        return int(self.positive_counts.sum())

    def sum_of_differences(self, distances: torch.Tensor) -> torch.Tensor:
        """``sum over the triplets of d(a, p) - d(a, n)``, with its gradient, from ``[B, B]`` products."""
        return (self.positive_counts * distances).sum() - (self.negative_counts * distances).sum()

    def decode(self, ranks: torch.Tensor) -> Triplets:
        """The triplets of the given ranks, ranked by (a, p) and then by a's negatives nearest first."""
        counts = self.positive_counts.flatten()
        ends = counts.cumsum(0)
        pair = torch.searchsorted(ends, ranks, right=True)
        size = len(self.positive_counts)
        anchor, positive = pair // size, pair % size
        return Triplets(anchor, positive, self.nearest[anchor, ranks - (ends[pair] - counts[pair])])


@dataclass(frozen=True, eq=False)
class CappedTriplets:
    """A uniform random ``sample`` of the ``mined`` triplets: the loss averages over the sample,
    and reports the active fraction of all that was mined."""

    mined: Triplets | ActiveTriplets
    sample: Triplets


MinedTriplets = Triplets | ActiveTriplets | CappedTriplets


# --- triplet miners -----------------------------------------------------------------------


class TripletMiner(ABC):
    """Chooses triplets from a batch's distances ``[B, B]`` and labels ``[B]``."""

    @abstractmethod
    def __call__(self, distances: torch.Tensor, labels: torch.Tensor) -> MinedTriplets: ...


class BatchAllMiner(TripletMiner):
    """Every valid triplet whose term is non-zero: batch-all (Hermans et al. 2017), whose loss is
    the mean over the active triplets; the rest add nothing to the loss and are left out.

    Without gradients, each anchor's negative distances are sorted once; a binary search then
    counts, for every positive pair (a, p), its active negatives (they are the nearest
    negatives of a), and likewise for every (a, n) its active positives: ``O(B^2)`` memory.
    """

    def __init__(self, margin: float) -> None:
        self.margin = margin

    @torch.no_grad()
    def __call__(self, distances: torch.Tensor, labels: torch.Tensor) -> ActiveTriplets:
        d = distances
        positive, negative = label_masks(labels)
        valid = int((positive.sum(1) * negative.sum(1)).sum())
        shifted = d + self.margin  # d(a, p) + m: the same floats on both sides of each comparison
        negatives, nearest = d.masked_fill(~negative, float("inf")).sort(1)
        positives = shifted.masked_fill(~positive, float("inf")).sort(1).values
        positive_counts = torch.searchsorted(negatives, shifted.contiguous()).masked_fill_(~positive, 0)
        below = torch.searchsorted(positives, d.contiguous(), right=True)  # positives with d(a, p) + m <= d(a, n)
        negative_counts = (positive.sum(1, keepdim=True) - below).masked_fill_(~negative, 0)
        return ActiveTriplets(positive_counts, negative_counts, nearest, valid, self.margin)


class BatchHardMiner(TripletMiner):
    """Per anchor with a positive and a negative: its farthest positive and nearest negative.

    Of candidates exactly tied for hardest, the first is taken (``argmax``), so the gradient
    goes to that one image; the values are those of ``amax``/``amin``, which split it evenly.
    """

    @torch.no_grad()
    def __call__(self, distances: torch.Tensor, labels: torch.Tensor) -> Triplets:
        positive, negative = label_masks(labels)
        anchor = (positive.any(1) & negative.any(1)).nonzero().flatten()
        hardest_positive = distances.masked_fill(~positive, float("-inf")).argmax(1)
        hardest_negative = distances.masked_fill(~negative, float("inf")).argmin(1)
        return Triplets(anchor, hardest_positive[anchor], hardest_negative[anchor])


class SemiHardMiner(TripletMiner):
    """Per positive pair (a, p) of an anchor with negatives: the nearest negative farther than p,
    or, when there is none, the farthest negative (FaceNet's rule, as TensorFlow Addons implements
    it). The negatives are chosen ``chunk_elements // B`` positive pairs (at least one) at a time,
    so the temporary ``[pairs, B]`` blocks stay small.
    """

    def __init__(self, chunk_elements: int = 1 << 22) -> None:
        self.chunk_elements = chunk_elements

    @torch.no_grad()
    def __call__(self, distances: torch.Tensor, labels: torch.Tensor) -> Triplets:
        d = distances
        positive, negative = label_masks(labels)
        a, p = positive.nonzero(as_tuple=True)
        keep = negative[a].any(1)
        a, p = a[keep], p[keep]
        chosen = torch.empty_like(a)
        step = max(1, self.chunk_elements // len(d))
        for start in range(0, len(a), step):
            rows = a[start : start + step]
            an, neg = d[rows], negative[rows]
            farther = neg & (an > d[rows, p[start : start + step]][:, None])
            semi = an.masked_fill(~farther, float("inf")).argmin(1)
            fallback = an.masked_fill(~neg, float("-inf")).argmax(1)
            chosen[start : start + step] = torch.where(farther.any(1), semi, fallback)
        return Triplets(a, p, chosen)


def run_seed() -> int:
    """A cap seed derived from the run's seed (``torch.initial_seed()``, which ``seed_everything``
    sets), on a stream of its own (``numpy.random.SeedSequence`` with a spawn key for mining)."""
    sequence = np.random.SeedSequence(torch.initial_seed(), spawn_key=(_CAP_STREAM,))
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


class TripletCap(TripletMiner):
    """Keeps at most ``max_triplets`` of what ``miner`` returns: a uniform random subset, drawn
    without replacement, that bounds the terms a loss (and its gradient) averages over.

    The subsets come from a ``torch.Generator`` per device seeded with ``seed``, never from the
    global RNG, so other random draws (dropout, augmentation) do not shift them. ``seed=None``
    derives one at construction from the run's seed (:func:`run_seed`): a model built after
    ``seed_everything(s)`` draws the same subsets for the same ``s``. :meth:`state` and
    :meth:`load_state` carry the stream through a checkpoint, so a resumed run continues it.
    """

    def __init__(self, miner: TripletMiner, max_triplets: int, seed: int | None = None) -> None:
        if max_triplets < 1:
            raise ValueError(f"max_triplets must be >= 1 (or None for no cap), got {max_triplets}")
        self.miner = miner
        self.max_triplets = max_triplets
        self.seed = run_seed() if seed is None else seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def state(self) -> dict:
        """The seed and each device's generator state."""
        return {"seed": self.seed, "generators": {str(d): g.get_state() for d, g in self._generators.items()}}

    def load_state(self, state: dict) -> None:
        """Continue the stream of ``state``; a state without a seed (a run that had not drawn yet,
        from before seeds were fixed at construction) keeps this cap's seed and starts afresh."""
        self._generators = {}
        if state.get("seed") is None:
            return
        self.seed = state["seed"]
        for name, generator_state in state.get("generators", {}).items():
            device = torch.device(name)
            if device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_available()):
                self.generator(device).set_state(generator_state)

    def __call__(self, distances: torch.Tensor, labels: torch.Tensor) -> MinedTriplets:
        mined = self.miner(distances, labels)
        pool = mined.sample if isinstance(mined, CappedTriplets) else mined  # a cap of a cap draws from the sample
        count = len(pool)
        if count <= self.max_triplets:
            return mined
        if isinstance(pool, ActiveTriplets):
            sample = pool.decode(self._distinct_ranks(count, distances.device))
        else:
            keys = torch.rand(count, generator=self.generator(distances.device), device=distances.device)
            sample = pool.select(keys.topk(self.max_triplets, largest=False).indices)
        return CappedTriplets(mined.mined if isinstance(mined, CappedTriplets) else mined, sample)

    def _distinct_ranks(self, count: int, device: torch.device) -> torch.Tensor:
        """``max_triplets`` distinct integers drawn uniformly from ``[0, count)``, in O(max_triplets) memory."""
        cap, generator = self.max_triplets, self.generator(device)
        if count <= 4 * cap:
            return torch.randperm(count, generator=generator, device=device)[:cap]
        ranks = torch.empty(0, dtype=torch.long, device=device)
        while len(ranks) < cap:  # draws with repeats; few repeat when count > 4 cap
            ranks = torch.cat([ranks, torch.randint(count, (cap,), generator=generator, device=device)]).unique()
        # A uniform subset of a uniformly drawn set is a uniform subset.
        return ranks[torch.randperm(len(ranks), generator=generator, device=device)[:cap]]


def triplet_miner(mining: str, margin: float) -> TripletMiner:
    """The miner a head's ``mining`` option names (``margin`` is batch-all's)."""
    if mining == "all":
        return BatchAllMiner(margin)
    if mining == "hard":
        return BatchHardMiner()
    if mining == "semihard":
        return SemiHardMiner()
    raise ValueError(f"mining must be one of {MINING}, got {mining!r}")


# --- pair miners --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Pairs:
    """Positive pairs ``(positive_anchor[i], positive[i])`` and negative pairs
    ``(negative_anchor[j], negative[j])`` of a batch, as index tensors."""

    positive_anchor: torch.Tensor
    positive: torch.Tensor
    negative_anchor: torch.Tensor
    negative: torch.Tensor


class PairMiner(ABC):
    """Chooses positive and negative pairs from a batch's distances ``[B, B]`` and labels ``[B]``."""

    @abstractmethod
    def __call__(self, distances: torch.Tensor, labels: torch.Tensor) -> Pairs: ...


class AllPairsMiner(PairMiner):
    """Every pair (i, j) with i < j, positive or negative."""

    def __call__(self, distances: torch.Tensor, labels: torch.Tensor) -> Pairs:
        positive, negative = label_masks(labels)
        upper = torch.ones_like(positive).triu(1)
        return Pairs(*(positive & upper).nonzero(as_tuple=True), *(negative & upper).nonzero(as_tuple=True))


class HardPairsMiner(PairMiner):
    """Per anchor: its farthest positive (if it has one) and its nearest negative (if it has one);
    exact ties go to the first, as in :class:`BatchHardMiner`."""

    @torch.no_grad()
    def __call__(self, distances: torch.Tensor, labels: torch.Tensor) -> Pairs:
        positive, negative = label_masks(labels)
        with_positive, with_negative = positive.any(1).nonzero().flatten(), negative.any(1).nonzero().flatten()
        hardest_positive = distances.masked_fill(~positive, float("-inf")).argmax(1)
        hardest_negative = distances.masked_fill(~negative, float("inf")).argmin(1)
        return Pairs(with_positive, hardest_positive[with_positive], with_negative, hardest_negative[with_negative])


class TripletPairsMiner(PairMiner):
    """The pairs of a triplet miner's triplets: (a, p) positive and (a, n) negative, one of each
    per triplet (as pytorch-metric-learning feeds triplets to a pair loss); of a capped miner,
    those of its sample; of batch-all, those of every active triplet. With :class:`SemiHardMiner`: every positive pair, and per positive pair
    its semi-hard negative."""

    def __init__(self, miner: TripletMiner) -> None:
        self.miner = miner

    def __call__(self, distances: torch.Tensor, labels: torch.Tensor) -> Pairs:
        mined = self.miner(distances, labels)
        triplets = mined.sample if isinstance(mined, CappedTriplets) else mined
        if isinstance(triplets, ActiveTriplets):  # spelled out: B^2 (K - 1) index triplets
            triplets = triplets.decode(torch.arange(len(triplets), device=distances.device))
        return Pairs(triplets.anchor, triplets.positive, triplets.anchor, triplets.negative)


def pair_miner(mining: str) -> PairMiner:
    """The miner a contrastive head's ``mining`` option names."""
    if mining == "all":
        return AllPairsMiner()
    if mining == "hard":
        return HardPairsMiner()
    if mining == "semihard":
        return TripletPairsMiner(SemiHardMiner())
    raise ValueError(f"mining must be one of {PAIR_MINING} for contrastive loss, got {mining!r}")
