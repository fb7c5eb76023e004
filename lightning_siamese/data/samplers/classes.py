"""P x K class batches: P classes, K images of each, for batch losses and online mining."""

from __future__ import annotations

import numpy as np
import torch


def _class_members(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(num_classes)]


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
