"""Pictures of an embedding: t-SNE (scikit-learn) coloured by class, and TensorBoard's projector.

:func:`sample_classes` picks a bounded, seeded subset of a split's classes;
:func:`write_embedding_visuals` writes ``tsne_<stage>.png``, the same figure to TensorBoard
(``<stage>/tsne``) and the embeddings with class names and image thumbnails (sprites) to
TensorBoard's projector.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from lightning_siamese.data.sources import ImageCollection
from lightning_siamese.data.transforms import to_float
from lightning_siamese.evaluation.figures import save_figure


def sample_classes(
    collection: ImageCollection, classes: int, seed: int = 0, groups: Sequence[str] | None = None
) -> ImageCollection:
    """``classes`` classes of ``collection`` (of the named ``groups`` only, if given), drawn with ``seed``."""
    if groups:
        collection = collection.select_groups(list(groups))
    if not 1 <= classes <= collection.num_classes:
        raise ValueError(f"cannot show {classes} classes: the collection has {collection.num_classes} (expected 1 to that)")
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


def tsne_figure(points: np.ndarray, labels: torch.Tensor, class_names: Sequence[str], title: str) -> Figure:
    """A scatter of t-SNE ``points`` coloured by class, with a legend of the class names (up to 20)."""
    labels = labels.cpu().numpy()
    present = list(dict.fromkeys(labels.tolist()))
    colours = plt.get_cmap("tab20" if len(present) <= 20 else "turbo")
    figure, axis = plt.subplots(figsize=(8.5, 6) if len(present) <= 20 else (6.5, 6))
    for i, label in enumerate(present):
        mine = labels == label
        colour = colours(i % 20) if len(present) <= 20 else colours(i / max(len(present) - 1, 1))
        axis.scatter(points[mine, 0], points[mine, 1], s=14, color=colour, label=class_names[label], alpha=0.85)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title, fontsize=10)
    if len(present) <= 20:
        axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False, markerscale=1.2)
    figure.tight_layout()
    return figure


def write_embedding_visuals(
    writer,  # noqa: ANN001 - a torch.utils.tensorboard SummaryWriter (a TensorBoardLogger's experiment), or None
    png: str | Path,
    stage: str,
    embeddings: torch.Tensor,
    collection: ImageCollection,
    step: int = 0,
    seed: int = 0,
    model: str = "",
) -> Path:
    """The t-SNE picture to the file ``png``, and (with a ``writer``) to TensorBoard as ``<stage>/tsne``
    with the projector's ``<stage>_embeddings`` (class names, image thumbnails).

    ``embeddings`` are one row per image of ``collection`` (in its order); ``model`` names
    them in the title.
    """
    points = tsne_points(embeddings, seed)
    title = f"t-SNE of {len(collection)} {stage} images of {collection.num_classes} classes (seed {seed})"
    title = f"{model}: {title}" if model else title
    figure = tsne_figure(points, collection.labels, collection.class_names, title)
    path = Path(png)
    path.parent.mkdir(parents=True, exist_ok=True)
    if writer is not None:
        writer.add_figure(f"{stage}/tsne", figure, global_step=step, close=False)
    save_figure(figure, str(path))
    if writer is None:
        return path
    writer.add_embedding(
        embeddings.detach().float().cpu(),
        metadata=[collection.class_names[int(c)] for c in collection.labels],
        label_img=to_float(collection.images),
        global_step=step,
        tag=f"{stage}_embeddings",
    )
    writer.flush()
    return path
