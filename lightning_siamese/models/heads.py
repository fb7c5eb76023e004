"""Heads: turn a pair of embeddings into a training loss and a similarity score.

A head is built from the encoder's ``embedding_dim`` (so configs name the head class
and its options, never the width). Pair labels are 1 for "same class", 0 otherwise.
``similarity`` broadcasts over leading dimensions, so ``similarity(q[:, None], s[None])``
scores every query against every support embedding; higher means more alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_siamese.models.distances import (
    euclidean,
    pairwise_cosine,
    pairwise_euclidean,
)
from lightning_siamese.models.losses import (
    ContrastiveLoss,
    MinedContrastiveLoss,
    MinedTripletLoss,
    PrototypicalLoss,
    TripletLoss,
)
from lightning_siamese.models.miners import TripletCap, pair_miner, triplet_miner


class PairHead(nn.Module):
    """Base class of heads that score pairs of embeddings.

    A head trains on some of three batch kinds: pairs (``loss``), triplets
    (``triplet_loss``) and class-balanced batches mined online (``batch_loss``).
    """

    # The batch kinds ("pairs", "triplets", "classes") this head has a loss for.
    trains_on: tuple[str, ...] = ()
    # True when ``similarity`` is a probability of "same", so 0.5 is a natural threshold.
    probability: bool = False
    # Whether a class-balanced batch must hold two images of a class (a positive pair).
    needs_positives: bool = True

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        # Of a margin loss, the fraction of its terms that were non-zero at the last training
        # step (read by the training-health callback); NaN for losses without a margin.
        self.last_active_fraction: torch.Tensor | float = float("nan")

    def _margin_loss(
        self, loss: ContrastiveLoss | MinedContrastiveLoss | TripletLoss | MinedTripletLoss, *inputs: torch.Tensor
    ) -> torch.Tensor:
        value = loss(*inputs)
        self.last_active_fraction = loss.last_active_fraction
        return value

    def prepare(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The embeddings as this head compares them (e.g. L2-normalised)."""
        return embeddings

    def _unsupported(self, kind: str) -> TypeError:
        return TypeError(
            f"{type(self).__name__} does not train on {kind}; choose a data module whose "
            f"batch_kind this head supports, or another head"
        )

    def check_batches(self, batch_kind: str | None, images_per_class: int) -> None:
        """Refuse, before training, batches this head cannot learn from (named by the data module's settings)."""
        if batch_kind is not None and batch_kind not in self.trains_on:
            raise ValueError(
                f"{type(self).__name__} trains on {' or '.join(self.trains_on)}, but the data "
                f"module's batch_kind is {batch_kind!r}: set data batch_kind to one of {list(self.trains_on)}"
            )
        if batch_kind == "classes" and images_per_class < 2 and self.needs_positives:
            raise ValueError(
                f"{type(self).__name__} needs two images of a class in a batch (a positive pair), "
                f"but the data module's images_per_class is {images_per_class}: set it to 2 or more"
            )

    def mining_state(self) -> dict | None:
        """State the head keeps between steps (a mining subset's random generators), for checkpoints; None: none."""
        return None

    def load_mining_state(self, state: dict) -> None:
        """Restore :meth:`mining_state`; a head that keeps none has nothing to restore."""

    def loss(self, first: torch.Tensor, second: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        raise self._unsupported("pairs")

    def triplet_loss(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        raise self._unsupported("triplets")

    def batch_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise self._unsupported("class-balanced batches")

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pairwise_similarity(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Similarity of every query ``[..., Q, D]`` to every key ``[..., C, D]``: ``[..., Q, C]``.

        The broadcast ``similarity``, which holds ``[..., Q, C, D]`` tensors; heads whose score is a
        distance or a cosine override it with a matrix product, giving the same scores faster.
        Leading dimensions broadcast (test-time alignment scores a batch of view sets at once).
        """
        return self.similarity(queries[..., :, None, :], keys[..., None, :, :])


class KochHead(PairHead):
    """Koch et al.'s weighted L1 head: p = sigmoid(sum_j alpha_j |h1_j - h2_j| + b).

    Trained with binary cross-entropy on pairs; ``similarity`` is the probability p of "same".

    Args:
        embedding_dim: width of the encoder output.
        init: ``"koch"`` draws alpha from N(0, 0.2) and b from N(0.5, 1e-2) as the paper
            does for fully connected layers; ``"glorot"`` (Glorot-uniform weights, zero
            bias: Keras's Dense default, which the LFW seed keeps); ``"default"`` keeps PyTorch's.
        dropout: dropout on the L1 distance vector while training (the LFW seed: 0.4).
    """

    trains_on = ("pairs",)
    probability = True

    def __init__(self, embedding_dim: int, init: str = "koch", dropout: float = 0.0) -> None:
        super().__init__(embedding_dim)
        if init not in ("koch", "glorot", "default"):
            raise ValueError(f"init must be 'koch', 'glorot' or 'default', got {init!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout)
        self.alpha = nn.Linear(embedding_dim, 1)
        if init == "koch":
            nn.init.normal_(self.alpha.weight, 0.0, 2e-1)
            nn.init.normal_(self.alpha.bias, 0.5, 1e-2)
        elif init == "glorot":
            nn.init.xavier_uniform_(self.alpha.weight)
            nn.init.zeros_(self.alpha.bias)

    def logits(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.alpha(self.dropout((first - second).abs())).squeeze(-1)

    def loss(self, first: torch.Tensor, second: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.logits(first, second), same.to(first.dtype))

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(first, second))


class DistanceHead(PairHead):
    """Heads that compare embeddings by Euclidean distance; similarity is ``-d``."""

    def __init__(self, embedding_dim: int, normalize: bool = False, squared: bool = False) -> None:
        super().__init__(embedding_dim)
        self.normalize = normalize
        self.squared = squared

    def prepare(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(embeddings, dim=-1) if self.normalize else embeddings

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return -euclidean(self.prepare(first), self.prepare(second), self.squared)

    def pairwise_similarity(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return -pairwise_euclidean(self.prepare(queries), self.prepare(keys), self.squared)


class ContrastiveHead(DistanceHead):
    """Contrastive loss (Hadsell et al. 2006) on pairs, or on the pairs mined from a batch.

    Args:
        embedding_dim: width of the encoder output.
        margin: distance beyond which a different-class pair costs nothing.
        normalize: L2-normalise embeddings first.
        mining: for class-balanced batches (see :func:`~lightning_siamese.models.miners.pair_miner`):
            ``"all"`` pairs, the ``"hard"``est positive and negative per anchor, or ``"semihard"``:
            every positive pair and, per positive pair, its semi-hard negative.
    """

    trains_on = ("pairs", "classes")

    def __init__(self, embedding_dim: int, margin: float = 1.0, normalize: bool = False, mining: str = "all") -> None:
        super().__init__(embedding_dim, normalize)
        self.pair_loss = ContrastiveLoss(margin)
        self.mined_loss = MinedContrastiveLoss(margin, pair_miner(mining))

    def loss(self, first: torch.Tensor, second: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        return self._margin_loss(self.pair_loss, self.prepare(first), self.prepare(second), same)

    def batch_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._margin_loss(self.mined_loss, self.prepare(embeddings), labels)


class TripletHead(DistanceHead):
    """Triplet loss (Schroff et al. 2015) on given triplets, or mined from a batch.

    Args:
        embedding_dim: width of the encoder output.
        margin: the margin m of ``max(0, d(a, p) - d(a, n) + m)``.
        squared: use squared Euclidean distances.
        normalize: L2-normalise embeddings first (FaceNet).
        mining: for class-balanced batches: ``"all"``, ``"hard"`` or ``"semihard"`` (see
            :func:`~lightning_siamese.models.miners.triplet_miner`).
        max_triplets: cap on the mined triplets of a batch, a seeded random subset (see
            :class:`~lightning_siamese.models.miners.TripletCap`); ``None``: no cap.
        mining_seed: seed of that subset; ``None`` derives one, when the head is built, from
            the run's seed.
    """

    trains_on = ("triplets", "classes")

    def __init__(
        self,
        embedding_dim: int,
        margin: float = 0.2,
        squared: bool = False,
        normalize: bool = False,
        mining: str = "hard",
        max_triplets: int | None = None,
        mining_seed: int | None = None,
    ) -> None:
        super().__init__(embedding_dim, normalize, squared)
        self.triplet = TripletLoss(margin, squared)
        miner = triplet_miner(mining, margin)
        self.cap = None if max_triplets is None else TripletCap(miner, max_triplets, mining_seed)
        self.mined_loss = MinedTripletLoss(margin, miner if self.cap is None else self.cap, squared)

    def triplet_loss(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        return self._margin_loss(self.triplet, self.prepare(anchor), self.prepare(positive), self.prepare(negative))

    def batch_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._margin_loss(self.mined_loss, self.prepare(embeddings), labels)

    def mining_state(self) -> dict:
        """The triplet cap's random state, kept in checkpoints so a resumed run draws the same subsets."""
        return {"seed": None, "generators": {}} if self.cap is None else self.cap.state()

    def load_mining_state(self, state: dict) -> None:
        """Restore :meth:`mining_state` (also as older versions saved it); without a cap there is nothing to restore."""
        if self.cap is not None:
            self.cap.load_state(state)


class PrototypicalHead(DistanceHead):
    """Prototypical networks (Snell et al. 2017): episodes inside class-balanced batches.

    Trains on P x K batches as P-way ``shots``-shot episodes (see
    :class:`~lightning_siamese.models.losses.PrototypicalLoss`), or on triplets as 2-way
    1-shot episodes (the anchor is the query; softmax over -d^2 to positive and negative,
    the "softmax triplet" loss of Hoffer and Ailon 2015); similarity is the negative
    squared Euclidean distance, so with ``shot_reduction: prototype`` evaluation is exactly
    the prototypical classifier.

    Args:
        embedding_dim: width of the encoder output.
        shots: support images per class in a training episode; the rest are queries.
    """

    trains_on = ("triplets", "classes")

    def __init__(self, embedding_dim: int, shots: int = 1) -> None:
        super().__init__(embedding_dim, normalize=False, squared=True)
        self.prototypical = PrototypicalLoss(shots)

    def batch_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.prototypical(embeddings, labels)

    def triplet_loss(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([self.similarity(anchor, positive), self.similarity(anchor, negative)], -1)
        return F.cross_entropy(logits, anchor.new_zeros(len(anchor), dtype=torch.long))


def check_class_labels(head: CosFaceHead | ClassifierHead, labels: torch.Tensor) -> None:
    """Fail when a label is beyond the classes a classifying head was built for, saying what to set."""
    if int(labels.max()) >= head.num_classes:
        raise ValueError(
            f"label {int(labels.max())} is beyond {type(head).__name__}'s num_classes={head.num_classes}: "
            f"set num_classes to the number of training classes (at least {int(labels.max()) + 1})"
        )


class CosFaceHead(PairHead):
    """Large-margin cosine softmax (CosFace, Wang et al. 2018) over the training classes.

    Each training class has a learned unit-length proxy; the loss is cross-entropy over
    ``scale * (cos(e, w_j) - margin [j = y])``, which pulls an embedding towards its class's
    proxy by a margin. Unlike pair and triplet losses it compares every image with every
    class at each step, the usual choice for faces. Similarity is the cosine of two
    embeddings, so pairs of unseen people are scored without the proxies.

    Args:
        embedding_dim: width of the encoder output.
        num_classes: number of training classes (LFW: training people); a label at or
            above it is an error that says so.
        scale: the logit scale s.
        margin: the cosine margin m.
    """

    trains_on = ("classes",)
    needs_positives = False

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__(embedding_dim)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.scale, self.margin = scale, margin
        self.proxies = nn.Parameter(torch.randn(num_classes, embedding_dim) / embedding_dim**0.5)

    def batch_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_class_labels(self, labels)
        cosine = F.normalize(embeddings, dim=-1) @ F.normalize(self.proxies, dim=-1).T
        logits = self.scale * (cosine - self.margin * F.one_hot(labels, self.num_classes).to(cosine.dtype))
        return F.cross_entropy(logits, labels)

    def prepare(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(embeddings, dim=-1)  # compared by cosine

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(first, second, dim=-1)

    def pairwise_similarity(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return pairwise_cosine(queries, keys)


class ClassifierHead(PairHead):
    """A categorical CNN's softmax layer: cross-entropy over the training classes.

    The baseline of Koch et al. and the DarkShotLearning seed: the encoder and one linear
    layer are trained to name the training classes; the layer is then dropped and the
    encoder's output (the penultimate layer) compared between images of unseen classes by
    cosine similarity or (negative) Euclidean distance.

    Args:
        embedding_dim: width of the encoder output.
        num_classes: number of training classes (with ``class_rotations``, each rotation
            counts); a label at or above it is an error that says so.
        similarity: ``"cosine"`` or ``"euclidean"`` (similarity ``-d``).
        dropout: dropout on the embedding before the softmax layer, while training.
        label_smoothing: the cross-entropy's label smoothing.
    """

    trains_on = ("classes",)
    needs_positives = False

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        similarity: str = "cosine",
        dropout: float = 0.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(embedding_dim)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if similarity not in ("cosine", "euclidean"):
            raise ValueError(f"similarity must be 'cosine' or 'euclidean', got {similarity!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_classes = num_classes
        self.metric = similarity
        self.label_smoothing = label_smoothing
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embedding_dim, num_classes)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores ``[B, num_classes]``."""
        return self.classifier(self.dropout(embeddings))

    def batch_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_class_labels(self, labels)
        return F.cross_entropy(self.logits(embeddings), labels, label_smoothing=self.label_smoothing)

    def prepare(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(embeddings, dim=-1) if self.metric == "cosine" else embeddings

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        if self.metric == "cosine":
            return F.cosine_similarity(first, second, dim=-1)
        return -euclidean(first, second)

    def pairwise_similarity(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return pairwise_cosine(queries, keys) if self.metric == "cosine" else -pairwise_euclidean(queries, keys)
