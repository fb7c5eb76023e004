"""Class samples for pictures of an embedding, and their t-SNE coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lightning_siamese.data.sources.collection import ImageCollection


def sample_classes(
    collection: ImageCollection, classes: int, seed: int = 0, groups: Sequence[str] | None = None
) -> ImageCollection:
    """``classes`` classes of ``collection`` (of the named ``groups`` only, if given), drawn with ``seed``."""
    if groups:
        collection = collection.select_groups(list(groups))
    if not 1 <= classes <= collection.num_classes:
        raise ValueError(
            f"cannot show {classes} classes: the collection has {collection.num_classes} (expected 1 to that)"
        )
    chosen = np.random.default_rng(seed).choice(collection.num_classes, classes, replace=False)
    return collection.select_classes(sorted(int(c) for c in chosen))


def tsne_points(embeddings: torch.Tensor, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-d t-SNE of ``embeddings`` ``[N, D]``, ``[N, 2]``; the perplexity is capped below N as t-SNE needs."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    rows = embeddings.detach().cpu().double().numpy()
    if len(rows) < 3:
        raise ValueError(f"t-SNE needs at least 3 embeddings, got {len(rows)}")
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (len(rows) - 1) / 3), init="pca", random_state=seed)
    # One thread: for the few hundred points shown, OpenMP threads cost more than they save
    # (measured 0.4 s against 24 s for 30 points on two busy cores).
    with threadpool_limits(1):
        return tsne.fit_transform(rows)
