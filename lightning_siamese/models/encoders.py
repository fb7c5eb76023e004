"""Encoders: plain ``nn.Module``s mapping images ``[B, C, H, W]`` to embeddings ``[B, D]``.

Every encoder exposes ``embedding_dim`` so a head can be sized to it. No Lightning here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # the heads are not needed to run an encoder
    from lightning_siamese.models.heads import PairHead


class KochEncoder(nn.Module):
    """The convolutional twin of Koch, Zemel and Salakhutdinov (2015).

    With the defaults it is the paper's net: 1x105x105 input; conv 64@10x10, ReLU,
    max-pool 2; conv 128@7x7, ReLU, max-pool 2; conv 128@4x4, ReLU, max-pool 2;
    conv 256@4x4, ReLU; flatten (9216); fully connected 4096, sigmoid.

    Args:
        input_size: side of the square input image.
        in_channels: image channels.
        channels: output channels of the four convolutions.
        kernel_sizes: kernel sizes of the four convolutions.
        embedding_dim: width of the final fully connected layer.
        batch_norm: add batch normalisation after each convolution (not in the paper).
        init: ``"koch"`` for the paper's initialisation (conv weights N(0, 1e-2), biases
            N(0.5, 1e-2), fully connected weights N(0, 0.2)); ``"normal"`` for the LFW
            seed's (every weight N(0, 1e-2), the fully connected layer's too, biases
            N(0.5, 1e-2)); ``"default"`` for PyTorch's.
        output: ``"sigmoid"`` as in the paper, or ``"linear"`` (an unbounded embedding,
            the usual choice for distance-based heads).
    """

    def __init__(
        self,
        input_size: int = 105,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 128, 128, 256),
        kernel_sizes: Sequence[int] = (10, 7, 4, 4),
        embedding_dim: int = 4096,
        batch_norm: bool = False,
        init: str = "koch",
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        if len(channels) != 4 or len(kernel_sizes) != 4:
            raise ValueError(
                f"KochEncoder has four convolutions: got channels={list(channels)}, kernel_sizes={list(kernel_sizes)}"
            )
        if init not in ("koch", "normal", "default"):
            raise ValueError(f"init must be 'koch', 'normal' or 'default', got {init!r}")
        if output not in ("sigmoid", "linear"):
            raise ValueError(f"output must be 'sigmoid' or 'linear', got {output!r}")
        self.output = output
        layers: list[nn.Module] = []
        size, previous = input_size, in_channels
        for i, (width, kernel) in enumerate(zip(channels, kernel_sizes)):
            size = size - kernel + 1
            if size < 1 or (i < 3 and size < 2):
                raise ValueError(
                    f"input_size={input_size} is too small for kernel_sizes={list(kernel_sizes)}: "
                    f"the feature map vanishes at convolution {i + 1}"
                )
            layers.append(nn.Conv2d(previous, width, kernel))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            if i < 3:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            previous = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.flat_dim = previous * size * size
        self.fc = nn.Linear(self.flat_dim, embedding_dim)
        self.embedding_dim = embedding_dim
        self.input_size = input_size
        if init != "default":
            self.reset_koch_parameters(fc_std=2e-1 if init == "koch" else 1e-2)

    def reset_koch_parameters(self, fc_std: float = 2e-1) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 1e-2)
                if module.bias is not None:  # always: these convolutions are built with a bias
                    nn.init.normal_(module.bias, 0.5, 1e-2)
        nn.init.normal_(self.fc.weight, 0.0, fc_std)
        nn.init.normal_(self.fc.bias, 0.5, 1e-2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embedding = self.fc(self.features(images))
        return torch.sigmoid(embedding) if self.output == "sigmoid" else embedding


class ConvNetEncoder(nn.Module):
    """The four-block ConvNet of Vinyals et al. (2016) and Snell et al. (2017).

    Each block is conv 3x3 (padding 1), batch norm, ReLU, max-pool 2; the flattened
    feature map is the embedding (64-d for 28 px inputs with the defaults), unless
    ``embedding_dim`` asks for a linear projection. Small and fast: the usual few-shot
    backbone where Koch's 39M-parameter net is too slow (e.g. on a CPU).

    Args:
        input_size: side of the square input image.
        in_channels: image channels.
        channels: output channels of each block (their number is the number of blocks).
        embedding_dim: width of an optional final linear layer; ``None`` keeps the
            flattened features.
        pool_first: max-pool straight after each convolution, before batch norm and ReLU.
            ReLU commutes with max-pooling, so the blocks stay nearly the same function
            (batch norm's statistics come from the pooled map), while normalisation and
            ReLU touch a quarter of the pixels: on a CPU, where those memory-bound steps
            outweigh the convolutions, a training step is about 1.6x faster.
    """

    def __init__(
        self,
        input_size: int = 28,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 64, 64, 64),
        embedding_dim: int | None = None,
        pool_first: bool = False,
    ) -> None:
        super().__init__()
        size = input_size // 2 ** len(channels)
        if size < 1:
            raise ValueError(
                f"input_size={input_size} is too small for {len(channels)} blocks: each halves the "
                f"feature map, which needs at least {2 ** len(channels)} px"
            )
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            norm = [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            pool: list[nn.Module] = [nn.MaxPool2d(2)]
            layers += [nn.Conv2d(previous, width, 3, padding=1), *(pool + norm if pool_first else norm + pool)]
            previous = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat_dim = previous * size * size
        self.fc = nn.Linear(flat_dim, embedding_dim) if embedding_dim is not None else nn.Identity()
        self.embedding_dim = embedding_dim if embedding_dim is not None else flat_dim
        self.input_size = input_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images))


class SigNet(nn.Module):
    """SigNet (Dey et al. 2017) as Reni's blog builds it, for offline signature verification.

    conv 96@11x11, ReLU, LRN(5, 1e-4, 0.75, 2), max-pool 3/2; conv 256@5x5 pad 2, ReLU, LRN,
    max-pool 3/2, Dropout2d 0.3; conv 384@3x3 pad 1, ReLU; conv 256@3x3 pad 1, ReLU, max-pool
    3/2, Dropout2d 0.3; FC 1024, ReLU, dropout 0.5; FC 128, ReLU; FC to the embedding (the
    blog ends at 2 units). The flattened size follows from ``input_size``: 30,976 for the
    blog's 105x105, 108,800 for the paper's 155x220.

    Args:
        input_size: ``(height, width)`` of the input, or one side of a square one.
        in_channels: image channels.
        embedding_dim: width of the last fully connected layer.
        conv_dropout, fc_dropout: the blog's 0.3 (after the second and fourth convolution
            blocks) and 0.5 (after FC 1024).
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = (155, 220),
        in_channels: int = 1,
        embedding_dim: int = 128,
        conv_dropout: float = 0.3,
        fc_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 11),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(96, 256, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout2d(conv_dropout),
            nn.Conv2d(256, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout2d(conv_dropout),
            nn.Flatten(),
        )
        # conv 11 (no padding) then three 3/2 pools; the padded convolutions keep the size.
        size = [height - 10, width - 10]
        for _ in range(3):
            size = [(s - 3) // 2 + 1 for s in size]
        if min(size) < 1:
            raise ValueError(
                f"input_size {height}x{width} is too small for SigNet: conv 11x11 and three 3/2 max-pools "
                f"need at least 25 px on each side"
            )
        self.flat_dim = 256 * size[0] * size[1]
        self.fc = nn.Sequential(
            nn.Linear(self.flat_dim, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(fc_dropout),
            nn.Linear(1024, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, embedding_dim),
        )
        self.embedding_dim = embedding_dim
        self.input_size = (height, width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images))


class SmallConvEmbedding(nn.Module):
    """The ekeany seed's MNIST embedding net (Keras), layer for layer.

    conv 32@3x3 (no padding), ReLU; conv 32@3x3, ReLU; max-pool 2; dropout 0.25; flatten;
    dense 128, ReLU; dropout 0.5; dense ``embedding_dim`` (linear). 600,810 parameters for
    28 px inputs and a 10-d embedding, as the seed's model summary counts.

    Args:
        input_size: side of the square input image.
        in_channels: image channels.
        embedding_dim: width of the output (the seed: 10).
        dropout: the two dropout rates (after the pool, after the dense layer).
    """

    def __init__(
        self,
        input_size: int = 28,
        in_channels: int = 1,
        embedding_dim: int = 10,
        dropout: Sequence[float] = (0.25, 0.5),
    ) -> None:
        super().__init__()
        size = (input_size - 4) // 2
        if size < 1:
            raise ValueError(
                f"input_size={input_size} is too small: two 3x3 convolutions and a pool need at least 6 px"
            )
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(dropout[0]),
            nn.Flatten(),
            nn.Linear(32 * size * size, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout[1]),
            nn.Linear(128, embedding_dim),
        )
        self.embedding_dim = embedding_dim
        self.input_size = input_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class EnsembleEncoder(nn.Module):
    """Several independently initialised encoders, trained side by side and scored as one.

    The embedding is the concatenation of the members' L2-normalised embeddings, so a
    Euclidean head ranks pairs by the members' summed cosine similarity: each member counts
    equally, whatever its own embedding norm. Training applies the head's loss to each member's
    slice (:meth:`member_embeddings`; ``SiameseModule`` averages them), so each member learns
    from its own loss alone (their only link is seeing the same batches) and their errors are
    partly independent, which the sum averages out; a loss on the concatenation would train
    them as one wider net.

    Args:
        member: builds one member, e.g. ``ConvNetEncoder`` with its arguments (in a config,
            a ``class_path`` and ``init_args``); called ``members`` times for fresh weights.
        members: how many members.
    """

    def __init__(self, member: Callable[[], nn.Module], members: int = 2) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"members must be at least 1, got {members}")
        self.members = nn.ModuleList(member() for _ in range(members))
        dims = {getattr(encoder, "embedding_dim", None) for encoder in self.members}
        if None in dims:
            raise TypeError(f"ensemble member {type(self.members[0]).__name__} must expose `embedding_dim`")
        self.member_dim = cast(int, dims.pop())  # an int: the members without `embedding_dim` were refused above
        self.embedding_dim = self.member_dim * members
        if hasattr(self.members[0], "input_size"):
            self.input_size = self.members[0].input_size

    def member_embeddings(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each member's slice of ensemble embeddings ``[B, members * member_dim]``."""
        return embeddings.split(self.member_dim, dim=-1)

    def check_head(self, head: nn.Module) -> None:
        """Refuse a head with learned weights: they would be sized to the whole embedding, not a member's slice."""
        if any(True for _ in head.parameters()):
            raise ValueError(
                f"an EnsembleEncoder trains each member with the head's loss on its own slice of the embedding, but "
                f"{type(head).__name__} has learned weights sized to the whole embedding: use a head without "
                f"weights (TripletHead, ContrastiveHead, PrototypicalHead)"
            )

    def member_loss(
        self, loss: Callable[..., torch.Tensor], head: PairHead, *embeddings: torch.Tensor, **targets: torch.Tensor
    ) -> torch.Tensor:
        """The mean over members of ``loss`` on each member's slice of ``embeddings`` (and of the head's
        ``last_active_fraction``, which the training-health check reads)."""
        losses, active = [], []
        for members in zip(*(self.member_embeddings(e) for e in embeddings)):
            losses.append(loss(*members, **targets))
            active.append(getattr(head, "last_active_fraction", float("nan")))
        head.last_active_fraction = sum(active) / len(active)
        return torch.stack(losses).mean()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.normalize(encoder(images), dim=-1) for encoder in self.members], dim=-1)
