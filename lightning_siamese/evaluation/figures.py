"""Figures for reports: the ROC curve, and pairs of images captioned with their scores."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are written to files and TensorBoard, never shown

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

RIGHT, WRONG, NEUTRAL = (0, 220, 0), (255, 60, 60), (255, 255, 255)


def roc_figure(far: torch.Tensor, tar: torch.Tensor, title: str) -> Figure:
    """TAR against FAR on a log FAR axis (where verification operates) and a linear one."""
    far, tar = far.double().numpy(), tar.double().numpy()
    figure, (linear, logarithmic) = plt.subplots(1, 2, figsize=(9, 4))
    for axis in (linear, logarithmic):
        axis.plot(far, tar, drawstyle="steps-post")
        axis.set_xlabel("false accept rate")
        axis.set_ylabel("true accept rate")
        axis.grid(True, alpha=0.3)
    linear.plot([0, 1], [0, 1], linestyle=":", color="grey")
    positive = far > 0
    if positive.any():  # a log axis has no zero
        logarithmic.set_xscale("log")
        logarithmic.set_xlim(far[positive].min(), 1)
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
