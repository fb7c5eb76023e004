"""Training and evaluation pairs and triplets, drawn from labels alone."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from lightning_siamese.data.samplers.classes import _class_members


class BalancedPairSampler:
    """Draws pairs of image indices, half from the same class and half from different ones.

    Args:
        labels: class index of each image ``[N]``.
        class_groups: group (alphabet) of each class ``[num_classes]``.
        same_group_prob: probability that a negative pair's second class comes from the
            first class's group (the within-alphabet task is the harder one).
    """

    def __init__(
        self,
        labels: torch.Tensor | np.ndarray,
        class_groups: torch.Tensor | np.ndarray,
        same_group_prob: float = 0.5,
    ) -> None:
        if not 0.0 <= same_group_prob <= 1.0:
            raise ValueError(f"same_group_prob must be in [0, 1], got {same_group_prob}")
        self.labels = np.asarray(labels)
        self.class_groups = np.asarray(class_groups)
        self.same_group_prob = same_group_prob
        num_classes = len(self.class_groups)
        self.members = _class_members(self.labels, num_classes)
        sizes = np.array([len(m) for m in self.members])
        self.positive_classes = np.flatnonzero(sizes >= 2)
        if len(self.positive_classes) == 0:
            raise ValueError("no class has two images: same-class pairs are impossible")
        if num_classes < 2:
            raise ValueError("need at least two classes for different-class pairs")
        self.group_classes = _class_members(self.class_groups, int(self.class_groups.max()) + 1)
        self.nonempty_classes = np.flatnonzero(sizes >= 1)

    def _pick(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.array([self.members[c][rng.integers(len(self.members[c]))] for c in classes])

    def _other_classes(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each class, another class: from its group with probability ``same_group_prob``."""
        within = rng.random(len(classes)) < self.same_group_prob
        others = np.empty_like(classes)
        for k, c in enumerate(classes):
            pool = self.group_classes[self.class_groups[c]] if within[k] else self.nonempty_classes
            if len(pool) < 2:  # a group of one class: fall back to any other class
                pool = self.nonempty_classes
            other = c
            while other == c:
                other = pool[rng.integers(len(pool))]
            others[k] = other
        return others

    def sample(self, n: int, rng: np.random.Generator, group: int | None = None) -> dict[str, np.ndarray]:
        """``first``, ``second`` and ``same`` for ``n`` pairs; the first ``n // 2`` are positives.

        ``same`` is 1 for a same-class pair and 0 otherwise. Positive pairs hold two
        distinct images of one class. With ``group``, every pair's first class is one of
        that group's classes.
        """
        n_pos = n // 2
        n_neg = n - n_pos
        positive, nonempty = self.positive_classes, self.nonempty_classes
        if group is not None:
            positive = positive[self.class_groups[positive] == group]
            nonempty = nonempty[self.class_groups[nonempty] == group]
        pos_classes = positive[rng.integers(len(positive), size=n_pos)]
        first_pos, second_pos = [], []
        for c in pos_classes:
            i, j = rng.choice(self.members[c], size=2, replace=False)
            first_pos.append(i)
            second_pos.append(j)

        a = nonempty[rng.integers(len(nonempty), size=n_neg)]
        b = self._other_classes(a, rng)
        first = np.concatenate([np.asarray(first_pos, dtype=np.int64), self._pick(a, rng)])
        second = np.concatenate([np.asarray(second_pos, dtype=np.int64), self._pick(b, rng)])
        same = np.concatenate([np.ones(n_pos, dtype=np.int64), np.zeros(n_neg, dtype=np.int64)])
        return {"first": first.astype(np.int64), "second": second.astype(np.int64), "same": same}

    def sample_per_group(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` pairs, the same number from every group: Koch et al.'s fixed training set.

        The paper fixes "a uniform number of training examples per alphabet". Each group
        that has a class of two images gets ``n // groups`` pairs (the remainder goes one pair
        each to randomly chosen groups), drawn by :meth:`sample` with that ``group``: half
        same-class, half different-class pairs whose first class is the group's and whose
        second stays in the group with probability ``same_group_prob``. Pairs come group by
        group, each group's positives first.
        """
        groups = np.unique(self.class_groups[self.positive_classes])
        if n < len(groups):
            raise ValueError(f"{n} pairs cannot be spread uniformly over {len(groups)} groups")
        counts = np.full(len(groups), n // len(groups))
        counts[rng.choice(len(groups), size=n % len(groups), replace=False)] += 1
        parts = [self.sample(int(k), rng, group=int(g)) for g, k in zip(groups, counts)]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


class ImagePairSampler:
    """The DarkShotLearning seed's pair generators, for parity runs (off by default).

    ``balanced``: each pair starts from an image drawn uniformly over images (not classes);
    it gets one positive, any image of its class *including itself*, and one negative.
    Unbalanced: both images uniform over all images, so nearly all pairs are negatives.
    Over an epoch each image is the anchor of ``pairs_per_epoch / (2 * images)`` pairs on
    average (the seed's N pairs per image, in expectation rather than exactly).
    """

    def __init__(self, labels: torch.Tensor | np.ndarray, balanced: bool = True) -> None:
        self.labels = np.asarray(labels)
        self.members = _class_members(self.labels, int(self.labels.max()) + 1)
        if sum(len(m) > 0 for m in self.members) < 2:
            raise ValueError("need at least two classes for different-class pairs")
        self.balanced = balanced

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        count = len(self.labels)
        if not self.balanced:
            first, second = rng.integers(count, size=n), rng.integers(count, size=n)
            return {
                "first": first,
                "second": second,
                "same": (self.labels[first] == self.labels[second]).astype(np.int64),
            }
        anchors = rng.integers(count, size=(n + 1) // 2)
        positives = np.array(
            [self.members[self.labels[a]][rng.integers(len(self.members[self.labels[a]]))] for a in anchors]
        )
        negatives = np.empty_like(anchors)
        for k, a in enumerate(anchors):
            other = a
            while self.labels[other] == self.labels[a]:
                other = rng.integers(count)
            negatives[k] = other
        n_pos = len(anchors)
        first = np.concatenate([anchors, anchors])[:n]
        second = np.concatenate([positives, negatives])[:n]
        same = np.concatenate([np.ones(n_pos, dtype=np.int64), np.zeros(n_pos, dtype=np.int64)])[:n]
        return {"first": first.astype(np.int64), "second": second.astype(np.int64), "same": same}


class TripletSampler:
    """Draws triplets (anchor, positive, negative) of image indices.

    The anchor class is uniform over classes with at least two images; the positive is
    another image of that class (never the anchor itself); the negative's class differs,
    and comes from the anchor's group with probability ``same_group_prob``.
    """

    def __init__(
        self,
        labels: torch.Tensor | np.ndarray,
        class_groups: torch.Tensor | np.ndarray,
        same_group_prob: float = 0.5,
    ) -> None:
        self.pairs = BalancedPairSampler(labels, class_groups, same_group_prob)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        pairs = self.pairs
        classes = pairs.positive_classes[rng.integers(len(pairs.positive_classes), size=n)]
        anchor, positive = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        for k, c in enumerate(classes):
            anchor[k], positive[k] = rng.choice(pairs.members[c], size=2, replace=False)
        negative = pairs._pick(pairs._other_classes(classes, rng), rng)
        return {"anchor": anchor, "positive": positive, "negative": negative.astype(np.int64)}


class SignaturePairSampler:
    """Training pairs of signatures: half genuine-genuine of one writer (``same`` 1), half a
    genuine signature with a skilled forgery of it (``same`` 0), or, with probability
    ``random_forgeries``, with another writer's genuine signature (a random forgery).

    Writers are drawn uniformly, so writers with many signatures do not dominate. ``writer`` and
    ``genuine`` give each image's writer and kind (see ``sources.signatures.writers_and_kinds``).
    """

    def __init__(self, writer: np.ndarray, genuine: np.ndarray, random_forgeries: float = 0.0) -> None:
        if not 0.0 <= random_forgeries <= 1.0:
            raise ValueError(f"random_forgeries must be in [0, 1], got {random_forgeries}")
        writers = int(writer.max()) + 1 if len(writer) else 0
        self.genuine = [np.flatnonzero(genuine & (writer == w)) for w in range(writers)]
        self.forged = [np.flatnonzero(~genuine & (writer == w)) for w in range(writers)]
        self.usable = np.array([w for w in range(writers) if len(self.genuine[w]) >= 2 and len(self.forged[w])])
        if len(self.usable) == 0:
            raise ValueError("no writer has two genuine signatures and a forgery: no training pairs can be drawn")
        if random_forgeries > 0 and writers < 2:
            raise ValueError("random forgeries need a second writer")
        self.random_forgeries = random_forgeries

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``first``, ``second`` and ``same`` for ``n`` pairs; the first ``n // 2`` are genuine pairs."""
        n_pos = n // 2
        first, second = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        for k, w in enumerate(rng.choice(self.usable, size=n)):
            if k < n_pos:
                first[k], second[k] = rng.choice(self.genuine[w], size=2, replace=False)
                continue
            first[k] = rng.choice(self.genuine[w])
            if rng.random() < self.random_forgeries:
                other = rng.choice(self.usable[self.usable != w])
                second[k] = rng.choice(self.genuine[other])
            else:
                second[k] = rng.choice(self.forged[w])
        same = np.r_[np.ones(n_pos, dtype=np.int64), np.zeros(n - n_pos, dtype=np.int64)]
        return {"first": first, "second": second, "same": same}


def evaluation_pairs(
    writer: np.ndarray,
    genuine: np.ndarray,
    writer_names: Sequence[str],
    references: int,
    pairs_per_writer: int,
    random_forgeries: float,
    seed: int,
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Fixed, balanced verification pairs, each a writer's reference against a questioned signature.

    Per writer, ``references`` genuine signatures (chosen with ``seed``) are the enrolled
    references; the others are questioned. Pairs are (reference, questioned genuine) with
    ``same`` 1 and (reference, forgery) with ``same`` 0, as many of each (at most
    ``pairs_per_writer / 2``); a ``random_forgeries`` share of the forgeries are another
    writer's genuine signatures instead. Returns the pairs (``first``, ``second``, ``same``,
    ``writer``) and each writer's reference images, from which a per-writer threshold is fitted.
    """
    columns: dict[str, list[np.ndarray]] = defaultdict(list)
    enrolled = []
    for w, name in enumerate(writer_names):
        rng = np.random.default_rng([seed, w])
        own = rng.permutation(np.flatnonzero(genuine & (writer == w)))
        if len(own) <= references:
            raise ValueError(
                f"writer {name} has {len(own)} genuine signatures: {references} references and at least one "
                f"questioned genuine signature are needed (lower references)"
            )
        refs, questioned = own[:references], own[references:]
        forged = np.flatnonzero(~genuine & (writer == w))
        positives = np.array([(r, q) for r in refs for q in questioned])
        negatives = np.array([(r, f) for r in refs for f in forged])
        k = min(len(positives), len(negatives), max(pairs_per_writer // 2, 1))
        chosen_neg = negatives[rng.choice(len(negatives), size=k, replace=False)]
        n_random = round(random_forgeries * k)
        others = np.flatnonzero(genuine & (writer != w))
        if n_random:
            chosen_neg[:n_random, 1] = rng.choice(others, size=n_random, replace=False)
        chosen = np.concatenate([positives[rng.choice(len(positives), size=k, replace=False)], chosen_neg])
        columns["first"].append(chosen[:, 0])
        columns["second"].append(chosen[:, 1])
        columns["same"].append(np.r_[np.ones(k), np.zeros(k)].astype(np.int64))
        columns["writer"].append(np.full(2 * k, w))
        enrolled.append(torch.from_numpy(np.sort(refs)))
    pairs = {key: torch.from_numpy(np.concatenate(parts)).long() for key, parts in columns.items()}
    return pairs, enrolled
