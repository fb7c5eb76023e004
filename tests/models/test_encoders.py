import pytest
import torch

from lightning_siamese.models import (
    ConvNetEncoder,
    KochEncoder,
    KochHead,
    SiameseModule,
)


def test_koch_net_has_the_paper_parameter_count_and_shapes() -> None:
    encoder = KochEncoder()
    head = KochHead(encoder.embedding_dim)
    total = sum(p.numel() for p in encoder.parameters()) + sum(p.numel() for p in head.parameters())
    assert total == 38_951_745
    assert encoder.flat_dim == 9216
    out = encoder(torch.rand(2, 1, 105, 105))
    assert out.shape == (2, 4096)
    assert torch.all((out >= 0) & (out <= 1))  # sigmoid output (saturates under the paper init)


def test_koch_initialisation_follows_the_paper() -> None:
    torch.manual_seed(0)
    encoder = KochEncoder()
    conv = encoder.features[0]
    assert conv.weight.std().item() == pytest.approx(1e-2, rel=0.05)
    assert conv.bias.mean().item() == pytest.approx(0.5, abs=5e-3)
    assert encoder.fc.weight.std().item() == pytest.approx(0.2, rel=0.01)
    assert encoder.fc.bias.mean().item() == pytest.approx(0.5, abs=1e-3)


def test_smaller_variants_fit_a_cpu() -> None:
    encoder = KochEncoder(input_size=52, kernel_sizes=(5, 4, 3, 2), channels=(8, 16, 16, 32), embedding_dim=64)
    assert encoder(torch.rand(3, 1, 52, 52)).shape == (3, 64)
    rgb = KochEncoder(in_channels=3, input_size=28, kernel_sizes=(3, 3, 2, 2), channels=(4, 4, 4, 4), embedding_dim=8)
    assert rgb(torch.rand(2, 3, 28, 28)).shape == (2, 8)


def test_too_small_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="input_size=30"):
        KochEncoder(input_size=30)


def test_module_builds_the_head_from_the_encoder_width() -> None:
    module = SiameseModule(
        KochEncoder(input_size=28, kernel_sizes=(3, 3, 2, 2), channels=(4, 4, 4, 4), embedding_dim=16)
    )
    assert module.head.embedding_dim == 16
    x = torch.rand(5, 1, 28, 28)
    assert module.embed(x).shape == (5, 16)
    assert module.similarity(x, x.flip(0)).shape == (5,)
    with pytest.raises(ValueError, match="head expects 8-d"):
        SiameseModule(
            KochEncoder(input_size=28, kernel_sizes=(3, 3, 2, 2), channels=(4, 4, 4, 4), embedding_dim=16),
            head=KochHead(8),
        )


def test_convnet_is_the_four_block_few_shot_backbone() -> None:
    encoder = ConvNetEncoder()
    assert encoder.embedding_dim == 64  # 28 -> 14 -> 7 -> 3 -> 1, 64 channels
    assert encoder(torch.rand(5, 1, 28, 28)).shape == (5, 64)
    # 4 x (conv 3x3 + BN): the 112k parameters of Snell et al.'s encoder
    assert sum(p.numel() for p in encoder.parameters()) == 111_936
    wide = ConvNetEncoder(input_size=56, in_channels=3, channels=(8, 16), embedding_dim=10)
    assert wide(torch.rand(2, 3, 56, 56)).shape == (2, 10) and wide.embedding_dim == 10
    assert ConvNetEncoder(input_size=56, channels=(8, 16)).embedding_dim == 16 * 14 * 14


def test_convnet_pool_first_is_the_same_function_with_positive_batch_norm() -> None:
    # In eval mode, batch norm with a positive scale is increasing, so it commutes with
    # max-pooling as ReLU does: with the same weights both block orders give one output.
    torch.manual_seed(0)
    post = ConvNetEncoder(input_size=28, channels=(4, 8, 8), embedding_dim=6).eval()
    first = ConvNetEncoder(input_size=28, channels=(4, 8, 8), embedding_dim=6, pool_first=True).eval()
    assert [type(m).__name__ for m in first.features[:4]] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    with torch.no_grad():
        for norm in (m for m in post.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
        # same parameters in the same order; only the batch norms' indices in `features` differ
        first.load_state_dict(dict(zip(first.state_dict(), post.state_dict().values(), strict=True)))
    images = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(first(images), post(images))
    with torch.no_grad():  # a negative scale flips the order of the pooled values: no longer the same
        next(m for m in first.modules() if isinstance(m, torch.nn.BatchNorm2d)).weight.neg_()
        next(m for m in post.modules() if isinstance(m, torch.nn.BatchNorm2d)).weight.neg_()
    assert not torch.allclose(first(images), post(images))


def test_convnet_rejects_inputs_its_blocks_would_pool_away() -> None:
    with pytest.raises(ValueError, match="input_size=8 is too small for 4 blocks"):
        ConvNetEncoder(input_size=8)


def test_small_conv_embedding_is_the_mnist_seeds_net() -> None:
    from lightning_siamese.models import SmallConvEmbedding

    net = SmallConvEmbedding()
    assert sum(p.numel() for p in net.parameters()) == 600_810  # the seed's Keras summary
    images = torch.rand(4, 1, 28, 28)
    assert net(images).shape == (4, 10)
    net.eval()
    assert torch.equal(net(images), net(images))  # dropout off outside training
    net.train()
    assert not torch.equal(net(images), net(images))
    with pytest.raises(ValueError, match="input_size=5 is too small"):
        SmallConvEmbedding(input_size=5)
