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


def test_identical_embeddings_give_finite_gradients() -> None:
    head = KochHead(8)
    a = torch.rand(4, 8, requires_grad=True)
    head.loss(a, a.detach().clone(), torch.ones(4)).backward()
    assert torch.isfinite(a.grad).all()
