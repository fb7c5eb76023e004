"""SigNet: the blog's layers, a flattened size that follows the input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_siamese.models import ContrastiveHead, SiameseModule, SigNet


@pytest.mark.parametrize(("size", "flat"), [((105, 105), 30_976), ((155, 220), 108_800), (105, 30_976)])
def test_flattened_size_follows_the_input(size, flat) -> None:
    encoder = SigNet(size, embedding_dim=2)
    assert encoder.flat_dim == flat and encoder.fc[0].in_features == flat


def test_forward_shapes_and_the_blog_layers() -> None:
    encoder = SigNet((40, 56), embedding_dim=16).eval()
    assert encoder(torch.rand(3, 1, 40, 56)).shape == (3, 16)
    convs = [m for m in encoder.features if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.padding[0]) for c in convs] == [
        (96, 11, 0),
        (256, 5, 2),
        (384, 3, 1),
        (256, 3, 1),
    ]
    lrn = [m for m in encoder.features if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrn) == 2 and (lrn[0].size, lrn[0].alpha, lrn[0].beta, lrn[0].k) == (5, 1e-4, 0.75, 2.0)
    assert [m.p for m in encoder.features if isinstance(m, nn.Dropout2d)] == [0.3, 0.3]
    linears = [m for m in encoder.fc if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [1024, 128, 16]
    assert [m.p for m in encoder.fc if isinstance(m, nn.Dropout)] == [0.5]


def test_too_small_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="input_size 24x80 is too small for SigNet"):
        SigNet((24, 80))


def test_composes_with_the_contrastive_head() -> None:
    model = SiameseModule(SigNet((30, 44), embedding_dim=8), head=lambda d: ContrastiveHead(d, margin=2.0)).eval()
    images = torch.rand(2, 1, 30, 44)
    assert model.similarity(images, images).tolist() == pytest.approx([0.0, 0.0], abs=1e-5)
