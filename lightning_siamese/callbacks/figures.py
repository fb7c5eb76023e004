"""Figures and image grids: ROC curves, captioned pairs, t-SNE pictures and TensorBoard's projector."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    writer,
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


def curves_figure(scalars: dict, monitor: str, path: Path) -> list[str]:
    """Loss, the validation metrics and the learning rate against the epoch; returns the tags drawn."""
    last_step = max((step for values in scalars.values() for step, _, _ in values), default=0)
    n_epochs = max((int(v) for _, v, _ in scalars.get("epoch", [])), default=0) + 1
    per_epoch = (last_step + 1) / n_epochs  # steps per epoch, for an epoch axis

    def series(tag: str) -> tuple[list[float], list[float]]:
        return [(step + 1) / per_epoch for step, _, _ in scalars[tag]], [value for _, value, _ in scalars[tag]]

    drawn = []
    accuracy_tags = [t for t in (monitor, "val/oneshot_acc", "val/acc", "val/lake_runs_acc") if t in scalars]
    accuracy_tags = list(dict.fromkeys(t for t in accuracy_tags if not t.endswith("loss")))
    panels = [
        ("loss", ["train/loss_step", "train/loss_epoch", "val/loss"]),
        ("validation", accuracy_tags + [t for t in ("val/pair_auroc", "val/auc") if t in scalars and t != monitor]),
        ("learning rate", sorted(t for t in scalars if t.startswith("lr-"))),
    ]
    panels = [(title, [t for t in tags if scalars.get(t)]) for title, tags in panels]
    panels = [(title, tags) for title, tags in panels if tags]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (title, tags) in zip(axes[0], panels):
        twin = None
        for colour, tag in enumerate(tags):
            xs, ys = series(tag)
            target = axis
            if title == "validation" and not tag.endswith("acc"):  # AUROC/AUC in [0, 1] beside a percentage
                twin = twin or axis.twinx()
                twin.set_ylabel("AUC")
                target = twin
            style = {"alpha": 0.3, "linewidth": 0.8} if tag.endswith("_step") else {"marker": "o", "markersize": 3}
            line = target.plot(xs, ys, label=tag, color=f"C{colour}", **style)[0]
            ci = scalars.get(tag.replace("_acc", "_ci95")) if tag.endswith("_acc") else None
            if ci and len(ci) == len(ys):
                half = [c for _, c, _ in ci]
                target.fill_between(
                    xs,
                    [y - h for y, h in zip(ys, half)],
                    [y + h for y, h in zip(ys, half)],
                    color=line.get_color(),
                    alpha=0.15,
                    label=f"{tag} 95% CI",
                )
            drawn.append(tag)
        axis.set_title(title)
        axis.set_xlabel("epochs completed")
        if title == "validation" and any(t.endswith("acc") for t in tags):
            axis.set_ylabel("accuracy (%)")
        axis.grid(True, alpha=0.3)
        if title == "learning rate":
            axis.set_yscale("log")
        handles, labels = axis.get_legend_handles_labels()
        if twin is not None:
            more = twin.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        axis.legend(handles, labels, fontsize=8)
    figure.tight_layout()
    save_figure(figure, str(path))
    return drawn


def as_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def plot_parameter(rows: list[dict[str, Any]], key: str, others: Sequence[str], metric: str, path: Path) -> bool:
    """``metric`` against ``key``'s values, one line per combination of the other parameters.

    Numeric values spread on a log axis when they span more than a factor of 10 (learning
    rates), else a linear one; other values are categories. The end-of-run report's 95% CI
    is drawn as error bars where the metric has one. Returns False when no row has the metric.
    """
    done = [r for r in rows if r.get("status") == "finished" and isinstance(r.get(metric), (int, float))]
    if not done:
        return False
    values = list(dict.fromkeys(r["params"][key] for r in rows))
    numbers = [as_number(v) for v in values]
    present = [n for n in numbers if n is not None]
    numeric = len(present) == len(numbers)
    position = dict(zip(values, present if numeric else range(len(values))))
    ci = metric.replace(" acc", " ci95") if metric.endswith("report acc") else None
    figure, axis = plt.subplots(figsize=(6, 4))
    lines: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in done:
        lines.setdefault(tuple(row["params"][o] for o in others), []).append(row)

    def order(group: tuple[str, ...]) -> tuple:  # numbers by value, so 3e-4 comes before 1e-3
        return tuple((0, as_number(v), "") if as_number(v) is not None else (1, 0.0, v) for v in group)

    for group, members in sorted(lines.items(), key=lambda item: order(item[0])):
        members.sort(key=lambda r: position[r["params"][key]])
        xs = [position[r["params"][key]] for r in members]
        ys = [r[metric] for r in members]
        errors = [r.get(ci, 0) or 0 for r in members] if ci else None
        label = ", ".join(f"{o.split('.')[-1]}={v}" for o, v in zip(others, group)) or None
        axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=label)
    if numeric and min(present) > 0 and max(present) / min(present) > 10:
        axis.set_xscale("log")
    if not numeric:
        axis.set_xticks(range(len(values)), values)
    failed = [r["params"][key] for r in rows if r.get("status") != "finished"]
    axis.set_xlabel(key + (f"  (failed or not run: {', '.join(sorted(set(failed)))})" if failed else ""))
    axis.set_ylabel(metric + (" (bars: 95% CI)" if ci else ""))
    axis.set_title(f"{metric} vs {key.split('.')[-1]}")
    axis.grid(True, alpha=0.3)
    if others:
        axis.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, str(path))
    return True


def epochs_figure(curves: dict[str, list[tuple[int, float]]], metric: str, path: Path) -> bool:
    """One line per named run: ``(epochs completed, metric)`` points; False (nothing drawn) without any run."""
    if not curves:
        return False
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=name)
    axis.set_xlabel("epochs completed")
    axis.set_ylabel(metric)
    axis.set_title("validation during training, per combination")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, str(path))
    return True
