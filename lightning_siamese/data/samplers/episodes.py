"""N-way K-shot episodes (and unknown queries for open-set episodes), drawn from labels alone."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lightning_siamese.data.samplers.classes import _class_members
from lightning_siamese.data.samplers.seeds import seed_stream


@dataclass
class Episodes:
    """A fixed set of N-way K-shot tasks, as indices into one image collection.

    Attributes:
        support: ``[T, N, K]`` image indices; ``support[t, n]`` are the K shots of way n.
        query: ``[T, N, Q]`` image indices; ``query[t, n]`` belong to way n.
        classes: ``[T, N]`` class label of each way.
        seed: the seed that drew them (from its ``"episodes"`` stream, :func:`seed_stream`).
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
    each of drawer A's 20 images matched against drawer B's 20. The draw is fixed by
    ``seed``, through its own stream (:func:`~lightning_siamese.data.samplers.seeds.seed_stream`):
    the unknown queries, pairs and triplets of the same seed draw from others.

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
        by_class_inst = [{int(i): m[inst[m] == i] for i in np.unique(inst[m])} for m in members]
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

    rng = seed_stream(seed, "episodes")
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
                    drawn = [by_class_inst[c][int(d)][0] for d in drawers]
                    support[t, w], query[t, w] = drawn[:k_shot], drawn[k_shot:]
            else:  # the classes share too few drawers: distinct drawers per class
                for w, c in enumerate(chosen):
                    drawers = rng.choice(sorted(by_class_inst[c]), size=per_task, replace=False)
                    drawn = [by_class_inst[c][int(d)][0] for d in drawers]
                    support[t, w], query[t, w] = drawn[:k_shot], drawn[k_shot:]
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
    whole split. The draw is fixed by ``seed`` (the episodes' own seed by default), through its
    ``"unknown_queries"`` stream: not the random numbers that drew the episodes.

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
    rng = seed_stream(episodes.seed if seed is None else seed, "unknown_queries")
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
