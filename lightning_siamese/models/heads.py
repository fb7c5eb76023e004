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


class PairHead(nn.Module):
    """Base class of heads that score pairs of embeddings."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim

    def loss(self, first: torch.Tensor, second: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class KochHead(PairHead):
    """Koch et al.'s weighted L1 head: p = sigmoid(sum_j alpha_j |h1_j - h2_j| + b).

    Trained with binary cross-entropy; ``similarity`` is the probability p of "same".

    Args:
        embedding_dim: width of the encoder output.
        init: ``"koch"`` draws alpha from N(0, 0.2) and b from N(0.5, 1e-2) as the paper
            does for fully connected layers; ``"default"`` keeps PyTorch's.
    """

    def __init__(self, embedding_dim: int, init: str = "koch") -> None:
        super().__init__(embedding_dim)
        if init not in ("koch", "default"):
            raise ValueError(f"init must be 'koch' or 'default', got {init!r}")
        self.alpha = nn.Linear(embedding_dim, 1)
        if init == "koch":
            nn.init.normal_(self.alpha.weight, 0.0, 2e-1)
            nn.init.normal_(self.alpha.bias, 0.5, 1e-2)

    def logits(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.alpha((first - second).abs()).squeeze(-1)

    def loss(self, first: torch.Tensor, second: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.logits(first, second), same.to(first.dtype))

    def similarity(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(first, second))
