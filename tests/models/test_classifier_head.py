"""The categorical CNN baseline's head: cross-entropy over training classes, penultimate-layer similarity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_siamese.data.samplers.episodes import sample_episodes
from lightning_siamese.evaluation.oneshot import episode_accuracies
from lightning_siamese.models import ClassifierHead, KochEncoder, SiameseModule


def test_loss_is_cross_entropy_of_the_linear_layer() -> None:
    torch.manual_seed(0)
    head = ClassifierHead(6, num_classes=4, label_smoothing=0.1)
    embeddings, labels = torch.randn(5, 6), torch.tensor([0, 3, 1, 1, 2])
    logits = embeddings @ head.classifier.weight.T + head.classifier.bias
    assert head.logits(embeddings).shape == (5, 4)
    expected = F.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(head.batch_loss(embeddings, labels), expected)
    # By hand, without smoothing: -log softmax of the right class.
    plain = ClassifierHead(6, num_classes=4)
    plain.load_state_dict(head.state_dict())
    by_hand = -(logits.log_softmax(-1)[torch.arange(5), labels]).mean()
    assert torch.allclose(plain.batch_loss(embeddings, labels), by_hand)


def test_similarity_compares_embeddings_without_the_classifier() -> None:
    torch.manual_seed(0)
    first, second = torch.randn(3, 1, 6), torch.randn(1, 4, 6)
    cosine = ClassifierHead(6, 4).similarity(first, second)
    assert cosine.shape == (3, 4)
    assert torch.allclose(cosine[1, 2], F.cosine_similarity(first[1, 0], second[0, 2], dim=0))
    euclidean = ClassifierHead(6, 4, similarity="euclidean").similarity(first, second)
    assert torch.allclose(euclidean[2, 3], -(first[2, 0] - second[0, 3]).norm(), atol=1e-5)


def test_bad_settings_and_labels_say_what_to_set() -> None:
    with pytest.raises(ValueError, match="num_classes must be at least 2, got 1"):
        ClassifierHead(6, 1)
    with pytest.raises(ValueError, match="similarity must be 'cosine' or 'euclidean', got 'l1'"):
        ClassifierHead(6, 4, similarity="l1")
    with pytest.raises(ValueError, match=r"label 7 is beyond ClassifierHead's num_classes=4: .*at least 8"):
        ClassifierHead(6, 4).batch_loss(torch.randn(2, 6), torch.tensor([0, 7]))


def test_module_trains_the_classifier_and_embeds_with_the_penultimate_layer() -> None:
    torch.manual_seed(0)
    encoder = KochEncoder(
        input_size=28,
        kernel_sizes=[3, 3, 2, 2],
        channels=[4, 4, 4, 8],
        embedding_dim=12,
        init="default",
        output="linear",
    )
    module = SiameseModule(encoder, head=lambda d: ClassifierHead(d, num_classes=5))
    assert module.head.embedding_dim == 12 and module.head.trains_on == ("classes",)
    # Five classes, each a bright square in its own place, with noise.
    labels = torch.arange(5).repeat_interleave(8)
    images = 0.1 * torch.rand(40, 1, 28, 28)
    for i, c in enumerate(labels):
        images[i, 0, 5 * c : 5 * c + 6, 5 * c : 5 * c + 6] += 0.9
    optimizer = torch.optim.Adam(module.parameters(), lr=0.02)
    losses = []
    for _ in range(20):
        loss = module.training_loss({"images": images, "labels": labels})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    module.eval()
    with torch.no_grad():
        embeddings = module.embed(images)
    assert embeddings.shape == (40, 12)  # the encoder's output, not the 5 class scores
    episodes = sample_episodes(
        labels, torch.zeros(5, dtype=torch.long), n_way=5, k_shot=1, n_query=1, num_tasks=20, seed=0
    )
    assert float(episode_accuracies(embeddings, episodes, module.head.similarity).mean()) > 80.0
