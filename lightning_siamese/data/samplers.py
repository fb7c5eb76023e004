"""Samplers: pairs and N-way K-shot episodes drawn from labels alone, never from pixels.

Every sampler takes a NumPy ``Generator`` (or a seed), so a run is repeatable and
evaluation episodes are fixed by their own seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def _class_members(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(num_classes)]


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
            return {"first": first, "second": second, "same": (self.labels[first] == self.labels[second]).astype(np.int64)}
        anchors = rng.integers(count, size=(n + 1) // 2)
        positives = np.array([self.members[self.labels[a]][rng.integers(len(self.members[self.labels[a]]))] for a in anchors])
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


class ClassBalancedSampler:
    """P x K batches: ``classes_per_batch`` classes, ``images_per_class`` distinct images each.

    The batch for online mining and prototypical episodes, and with K = 1 for heads that
    classify (CosFace: every class, even one of a single image, takes part). Only classes
    with at least K images take part. With probability ``same_group_prob`` a batch draws its classes from
    one group (alphabet), topped up from the others when the group has fewer than P: the
    hard negatives of within-alphabet one-shot tasks.
    """

    def __init__(
        self,
        labels: torch.Tensor | np.ndarray,
        classes_per_batch: int,
        images_per_class: int,
        class_groups: torch.Tensor | np.ndarray | None = None,
        same_group_prob: float = 0.0,
    ) -> None:
        if images_per_class < 1:
            raise ValueError(f"images_per_class must be >= 1, got {images_per_class}")
        if classes_per_batch < 2:
            raise ValueError(f"classes_per_batch must be >= 2 (a negative needs two classes), got {classes_per_batch}")
        if not 0.0 <= same_group_prob <= 1.0:
            raise ValueError(f"same_group_prob must be in [0, 1], got {same_group_prob}")
        if same_group_prob > 0 and class_groups is None:
            raise ValueError("same_group_prob > 0 needs class_groups")
        self.labels = np.asarray(labels)
        self.members = _class_members(self.labels, int(self.labels.max()) + 1)
        self.eligible = np.array([c for c, m in enumerate(self.members) if len(m) >= images_per_class])
        if len(self.eligible) < classes_per_batch:
            raise ValueError(
                f"a batch of {classes_per_batch} x {images_per_class} (classes x images) needs "
                f"{classes_per_batch} classes with at least {images_per_class} images; the data has "
                f"{len(self.eligible)} such classes of {len(self.members)}"
            )
        self.classes_per_batch = classes_per_batch
        self.images_per_class = images_per_class
        self.same_group_prob = same_group_prob
        if class_groups is not None:
            groups = np.asarray(class_groups)[self.eligible]
            self.group_classes = [self.eligible[groups == g] for g in np.unique(groups)]

    def _classes(self, rng: np.random.Generator) -> np.ndarray:
        p = self.classes_per_batch
        if self.same_group_prob == 0 or rng.random() >= self.same_group_prob:
            return rng.choice(self.eligible, size=p, replace=False)
        group = self.group_classes[rng.integers(len(self.group_classes))]
        chosen = rng.choice(group, size=min(p, len(group)), replace=False)
        if len(chosen) < p:
            rest = np.setdiff1d(self.eligible, chosen)
            chosen = np.concatenate([chosen, rng.choice(rest, size=p - len(chosen), replace=False)])
        return chosen

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        p, k = self.classes_per_batch, self.images_per_class
        if n != p * k:
            raise ValueError(f"batch_size must equal classes_per_batch x images_per_class = {p * k}, got {n}")
        classes = self._classes(rng)
        images = np.concatenate([rng.choice(self.members[c], size=k, replace=False) for c in classes])
        return {"images": images.astype(np.int64), "labels": np.repeat(classes, k).astype(np.int64)}


@dataclass
class Episodes:
    """A fixed set of N-way K-shot tasks, as indices into one image collection.

    Attributes:
        support: ``[T, N, K]`` image indices; ``support[t, n]`` are the K shots of way n.
        query: ``[T, N, Q]`` image indices; ``query[t, n]`` belong to way n.
        classes: ``[T, N]`` class label of each way.
        seed: the seed that drew them.
    """

    support: torch.Tensor
    query: torch.Tensor
    classes: torch.Tensor
    seed: int

    @property
    def n_way(self) -> int:
        return self.support.shape[1]

    @property
    def k_shot(self) -> int:
        return self.support.shape[2]

    def __len__(self) -> int:
        return self.support.shape[0]


def sample_episodes(
    labels: torch.Tensor | np.ndarray,
    class_groups: torch.Tensor | np.ndarray,
    n_way: int,
    k_shot: int,
    n_query: int,
    num_tasks: int,
    seed: int,
    within_group: bool = True,
    instances: torch.Tensor | np.ndarray | None = None,
    group_names: list[str] | None = None,
) -> Episodes:
    """Draw ``num_tasks`` N-way K-shot episodes with ``n_query`` queries per way.

    With ``within_group`` all N classes of a task come from one group (Omniglot's
    within-alphabet task); the group is drawn uniformly among those that can supply
    a task. With ``instances`` (Omniglot's drawers) each task draws K + Q distinct
    instances shared by all of its classes: shots from the first K, queries from the
    rest. For K = Q = 1 that is Koch's form: one alphabet, 20 characters, two drawers,
    each of drawer A's 20 images matched against drawer B's 20.

    Raises:
        ValueError: when the labels cannot supply such tasks, naming what is short.
    """
    if n_way < 2 or k_shot < 1 or n_query < 1 or num_tasks < 1:
        raise ValueError(
            f"need n_way >= 2, k_shot >= 1, n_query >= 1 and num_tasks >= 1; "
            f"got n_way={n_way}, k_shot={k_shot}, n_query={n_query}, num_tasks={num_tasks}"
        )
    labels = np.asarray(labels)
    class_groups = np.asarray(class_groups)
    num_classes = len(class_groups)
    per_task = k_shot + n_query
    members = _class_members(labels, num_classes)
    inst = None if instances is None else np.asarray(instances)

    # Per class: the images of each instance (drawer), or all images when no instances.
    if inst is None:
        eligible = np.array([len(m) >= per_task for m in members])
    else:
        instance_ids = np.unique(inst)
        by_class_inst = [
            {int(i): m[inst[m] == i] for i in np.unique(inst[m])} for m in members
        ]
        eligible = np.array([len(d) >= per_task for d in by_class_inst])
    if within_group:
        groups = _class_members(class_groups, int(class_groups.max()) + 1 if num_classes else 0)
        pools = [g[eligible[g]] for g in groups]
        usable = [i for i, p in enumerate(pools) if len(p) >= n_way]
        if not usable:
            name = (lambda g: group_names[g]) if group_names else str
            counts = ", ".join(f"{name(g)}: {len(p)}" for g, p in enumerate(pools))
            raise ValueError(
                f"no group can supply a {n_way}-way {k_shot}-shot task with {n_query} "
                f"quer{'y' if n_query == 1 else 'ies'} per class: each needs {n_way} classes "
                f"with at least {per_task} images{' from distinct instances' if inst is not None else ''}. "
                f"Eligible classes per group: {counts}"
            )
    else:
        pools = [np.flatnonzero(eligible)]
        usable = [0]
        if len(pools[0]) < n_way:
            raise ValueError(
                f"cannot draw {n_way}-way tasks: only {len(pools[0])} of {num_classes} classes "
                f"have at least {per_task} images (k_shot={k_shot} + n_query={n_query})"
            )

    rng = np.random.default_rng(seed)
    support = np.empty((num_tasks, n_way, k_shot), dtype=np.int64)
    query = np.empty((num_tasks, n_way, n_query), dtype=np.int64)
    classes = np.empty((num_tasks, n_way), dtype=np.int64)
    for t in range(num_tasks):
        pool = pools[usable[rng.integers(len(usable))]]
        chosen = rng.choice(pool, size=n_way, replace=False)
        classes[t] = chosen
        if inst is None:
            for w, c in enumerate(chosen):
                picks = rng.choice(members[c], size=per_task, replace=False)
                support[t, w], query[t, w] = picks[:k_shot], picks[k_shot:]
        else:
            common = set(instance_ids.tolist())
            for c in chosen:
                common &= set(by_class_inst[c])
            if len(common) >= per_task:
                drawers = rng.choice(sorted(common), size=per_task, replace=False)
                for w, c in enumerate(chosen):
                    picks = [by_class_inst[c][int(d)][0] for d in drawers]
                    support[t, w], query[t, w] = picks[:k_shot], picks[k_shot:]
            else:  # the classes share too few drawers: distinct drawers per class
                for w, c in enumerate(chosen):
                    drawers = rng.choice(sorted(by_class_inst[c]), size=per_task, replace=False)
                    picks = [by_class_inst[c][int(d)][0] for d in drawers]
                    support[t, w], query[t, w] = picks[:k_shot], picks[k_shot:]
    return Episodes(
        support=torch.from_numpy(support),
        query=torch.from_numpy(query),
        classes=torch.from_numpy(classes),
        seed=seed,
    )


def check_unknown_fraction(fraction: float) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"the unknown fraction of open-set queries must be strictly between 0 and 1, got {fraction!r}")
    return float(fraction)


def unknown_count(known_queries: int, fraction: float) -> int:
    """How many unknown queries make ``fraction`` of a task's queries, beside ``known_queries`` known ones (at least 1)."""
    fraction = check_unknown_fraction(fraction)
    return max(1, math.floor(known_queries * fraction / (1.0 - fraction) + 0.5))  # half up, not to even


def sample_unknown_queries(
    labels: torch.Tensor | np.ndarray,
    class_groups: torch.Tensor | np.ndarray,
    episodes: Episodes,
    fraction: float = 0.2,
    seed: int | None = None,
    within_group: bool = True,
) -> torch.Tensor:
    """Open-set queries for fixed episodes: ``[T, U]`` images of classes outside each task's ways.

    ``U`` unknown queries join the ``N * Q`` known ones so that they make ``fraction`` of the
    task's queries (:func:`unknown_count`). Each is an image of a class of the same split that
    is not one of the task's ways, drawn uniformly among those classes (distinct classes while
    there are enough). With ``within_group`` the classes come from the task's own group
    (alphabet), the harder "none of these"; a group with no class to spare lends from the
    whole split. The draw is fixed by ``seed`` (the episodes' own seed by default).

    Raises:
        ValueError: when ``fraction`` is not in (0, 1), or the split has no class outside a task.
    """
    labels = np.asarray(labels)
    class_groups = np.asarray(class_groups)
    classes = episodes.classes.numpy()
    n_tasks, n_way = classes.shape
    count = unknown_count(n_way * episodes.query.shape[2], fraction)
    members = _class_members(labels, len(class_groups))
    nonempty = np.array([c for c, m in enumerate(members) if len(m)])
    rng = np.random.default_rng(episodes.seed if seed is None else seed)
    unknown = np.empty((n_tasks, count), dtype=np.int64)
    for t in range(n_tasks):
        outside = np.setdiff1d(nonempty, classes[t])
        pool = outside[class_groups[outside] == class_groups[classes[t, 0]]] if within_group else outside
        if len(pool) == 0:
            pool = outside
        if len(pool) == 0:
            raise ValueError(
                f"open-set episodes need a class outside each task's {n_way} ways, but task {t} uses every "
                f"one of the split's {len(nonempty)} classes: evaluate fewer ways or on more classes"
            )
        chosen = rng.choice(pool, size=count, replace=len(pool) < count)
        unknown[t] = [members[c][rng.integers(len(members[c]))] for c in chosen]
    return torch.from_numpy(unknown)
