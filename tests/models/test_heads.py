import pytest
import torch
import torch.nn.functional as F

from lightning_siamese.models import KochHead


def test_koch_head_is_symmetric() -> None:
    head = KochHead(32)
    a, b = torch.rand(10, 32), torch.rand(10, 32)
    torch.testing.assert_close(head.similarity(a, b), head.similarity(b, a))


def test_koch_head_matches_the_formula() -> None:
    head = KochHead(6)
    a, b = torch.rand(4, 6), torch.rand(4, 6)
    expected = torch.sigmoid((a - b).abs() @ head.alpha.weight[0] + head.alpha.bias[0])
    torch.testing.assert_close(head.similarity(a, b), expected)
    same = torch.tensor([1, 0, 1, 0])
    torch.testing.assert_close(head.loss(a, b, same), F.binary_cross_entropy(expected, same.float()))


def test_similarity_broadcasts_to_a_score_matrix() -> None:
    head = KochHead(8)
    queries, support = torch.rand(3, 8), torch.rand(5, 8)
    matrix = head.similarity(queries[:, None], support[None])
    assert matrix.shape == (3, 5)
    torch.testing.assert_close(matrix[2, 4], head.similarity(queries[2], support[4]))


def test_distance_heads_are_symmetric_and_rank_by_negative_distance() -> None:
    from lightning_siamese.models import ContrastiveHead, TripletHead

    a, b = torch.rand(6, 8), torch.rand(6, 8)
    for head in (ContrastiveHead(8), TripletHead(8, squared=True), ContrastiveHead(8, normalize=True)):
        torch.testing.assert_close(head.similarity(a, b), head.similarity(b, a))
        assert torch.all(head.similarity(a, a) > head.similarity(a, b) - 1e-6)
    torch.testing.assert_close(ContrastiveHead(8).similarity(a, b), -(a - b).norm(dim=-1), atol=1e-5, rtol=1e-5)


def test_normalised_heads_ignore_embedding_scale() -> None:
    from lightning_siamese.models import TripletHead

    head = TripletHead(8, normalize=True)
    a, b = torch.rand(4, 8), torch.rand(4, 8)
    torch.testing.assert_close(head.similarity(a, b), head.similarity(3 * a, 0.5 * b))


def test_every_head_gives_finite_gradients_on_identical_inputs() -> None:
    from lightning_siamese.models import ContrastiveHead, TripletHead

    labels = torch.tensor([0, 0, 1, 1])
    heads = (
        ContrastiveHead(8),
        ContrastiveHead(8, mining="hard"),
        ContrastiveHead(8, mining="semihard"),
        TripletHead(8),
    )
    for head in (*heads, TripletHead(8, mining="all"), TripletHead(8, mining="semihard")):
        e = torch.ones(4, 8, requires_grad=True)
        loss = head.batch_loss(e, labels)
        if isinstance(head, ContrastiveHead):
            loss = loss + head.loss(e[:2], e[2:], torch.tensor([1, 0]))
        else:
            loss = loss + head.triplet_loss(e[:1], e[1:2], e[2:3])
        loss.backward()
        assert torch.isfinite(e.grad).all(), type(head).__name__


def test_heads_name_the_batches_they_cannot_train_on() -> None:
    import pytest

    from lightning_siamese.models import TripletHead

    with pytest.raises(TypeError, match="KochHead does not train on class-balanced batches"):
        KochHead(4).batch_loss(torch.rand(4, 4), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(TypeError, match="TripletHead does not train on pairs"):
        TripletHead(4).loss(torch.rand(2, 4), torch.rand(2, 4), torch.tensor([1, 0]))


def test_heads_name_the_mining_they_accept() -> None:
    from lightning_siamese.models import ContrastiveHead, TripletHead

    with pytest.raises(ValueError, match=r"mining must be one of \('all', 'hard', 'semihard'\) for contrastive"):
        ContrastiveHead(4, mining="random")
    with pytest.raises(ValueError, match=r"mining must be one of \('all', 'hard', 'semihard'\), got 'random'"):
        TripletHead(4, mining="random")


def test_cosface_head_matches_the_formula_and_scores_by_cosine() -> None:
    from lightning_siamese.models import CosFaceHead

    torch.manual_seed(0)
    head = CosFaceHead(4, num_classes=3, scale=10.0, margin=0.3)
    embeddings, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    cosine = F.normalize(embeddings, dim=-1) @ F.normalize(head.proxies, dim=-1).T
    logits = 10.0 * (cosine - 0.3 * F.one_hot(labels, 3))
    assert torch.allclose(head.batch_loss(embeddings, labels), F.cross_entropy(logits, labels))
    assert torch.allclose(head.similarity(embeddings, 3 * embeddings), torch.ones(5))
    assert head.similarity(embeddings[:, None], embeddings[None]).shape == (5, 5)
    with pytest.raises(ValueError, match="label 2 is beyond CosFaceHead's num_classes=2"):
        CosFaceHead(4, num_classes=2).batch_loss(embeddings, labels)


def test_koch_head_dropout_acts_only_in_training() -> None:
    head = KochHead(64, dropout=0.5)
    first, second = torch.rand(8, 64), torch.rand(8, 64)
    head.eval()
    assert torch.equal(head.logits(first, second), head.logits(first, second))
    head.train()
    assert not torch.equal(head.logits(first, second), head.logits(first, second))
    with pytest.raises(ValueError, match="dropout"):
        KochHead(4, dropout=1.0)
