"""Figures and image grids: ROC curves, captioned pairs, t-SNE pictures and TensorBoard's projector."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.transforms.views import to_float
from lightning_siamese.evaluation.probe import OODResult
from lightning_siamese.evaluation.projection import tsne_points

matplotlib.use("Agg")  # figures are written to files and TensorBoard, never shown


RIGHT, WRONG, NEUTRAL = (0, 220, 0), (255, 60, 60), (255, 255, 255)


def roc_figure(far: torch.Tensor, tar: torch.Tensor, title: str) -> Figure:
    """TAR against FAR on a log FAR axis (where verification operates) and a linear one."""
    fars, tars = far.double().numpy(), tar.double().numpy()
    figure, (linear, logarithmic) = plt.subplots(1, 2, figsize=(9, 4))
    for axis in (linear, logarithmic):
        axis.plot(fars, tars, drawstyle="steps-post")
        axis.set_xlabel("false accept rate")
        axis.set_ylabel("true accept rate")
        axis.grid(True, alpha=0.3)
    linear.plot([0, 1], [0, 1], linestyle=":", color="grey")
    positive = fars > 0
    if positive.any():  # a log axis has no zero
        logarithmic.set_xscale("log")
        logarithmic.set_xlim(fars[positive].min(), 1)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: str) -> None:
    figure.savefig(path, dpi=100)
    plt.close(figure)


def pair_tile(first: torch.Tensor, second: torch.Tensor, caption: str, colour: tuple[int, int, int]) -> torch.Tensor:
    """Two float images ``[C, H, W]`` side by side with a caption strip above, as RGB uint8."""
    divider = torch.full((first.shape[0], first.shape[1], 2), 0.5)
    pair = torch.cat([first, divider, second], dim=-1).clamp(0, 1).mul(255).byte()
    if pair.shape[0] == 1:
        pair = pair.expand(3, -1, -1)
    height, width = pair.shape[1:]
    canvas = Image.new("RGB", (width, height + 14), (0, 0, 0))
    canvas.paste(Image.fromarray(pair.permute(1, 2, 0).numpy()), (0, 14))
    ImageDraw.Draw(canvas).text((2, 1), caption, fill=colour)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1)


def tile_grid(tiles: list[torch.Tensor], columns: int = 4) -> torch.Tensor:
    """Tiles ``[3, H, W]`` uint8 in a grid, as one ``[3, H', W']`` uint8 image."""
    return make_grid(torch.stack(tiles), nrow=columns, padding=4)


def save_image(grid: torch.Tensor, path: str) -> None:
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)


def tsne_figure(points: np.ndarray, labels: torch.Tensor, class_names: Sequence[str], title: str) -> Figure:
    """A scatter of t-SNE ``points`` coloured by class, with a legend of the class names (up to 20)."""
    label_ids = labels.cpu().numpy()
    present = list(dict.fromkeys(label_ids.tolist()))
    colours = plt.get_cmap("tab20" if len(present) <= 20 else "turbo")
    figure, axis = plt.subplots(figsize=(8.5, 6) if len(present) <= 20 else (6.5, 6))
    for i, label in enumerate(present):
        mine = label_ids == label
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


def plot_roc(result: OODResult, path: str, title: str) -> None:
    """The ROC of the Gini score, with the threshold's operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = result.roc
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(fpr, tpr, label=f"Gini score (AUC {result.auc:.3f})")
    axis.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    axis.plot(1 - result.caught, result.kept, "o", color="C3", label=f"threshold {result.threshold:g}")
    axis.set_xlabel("out-of-distribution images kept (false positive rate)")
    axis.set_ylabel("in-distribution images kept (true positive rate)")
    axis.set_title(title, fontsize=8)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
