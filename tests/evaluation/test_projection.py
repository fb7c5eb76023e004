"""t-SNE pictures and TensorBoard's projector: class sampling, the PNG, the figure and the sprite files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from lightning_siamese.callbacks.figures import write_embedding_visuals
from lightning_siamese.callbacks.visuals import EmbeddingProjector
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.evaluation.projection import sample_classes, tsne_points


def collection(classes: int = 6, per_class: int = 5) -> ImageCollection:
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = torch.randint(0, 256, (len(labels), 1, 10, 10), dtype=torch.uint8)
    return ImageCollection(
        images,
        labels,
        [f"g{c % 2}/char{c}" for c in range(classes)],
        torch.arange(classes) % 2,
        ["g0", "g1"],
        None,
        [f"{i}.png" for i in range(len(labels))],
    )


def test_sample_classes_is_seeded_bounded_and_keeps_groups() -> None:
    data = collection()
    picked = sample_classes(data, 3, seed=5)
    assert picked.num_classes == 3 and len(picked) == 15
    assert picked.class_names == sample_classes(data, 3, seed=5).class_names
    assert {sample_classes(data, 3, seed=s).class_names[0] for s in range(10)} != {
        picked.class_names[0]
    }  # seeds differ
    odd = sample_classes(data, 2, seed=0, groups=["g1"])
    assert all(name.startswith("g1/") for name in odd.class_names)
    with pytest.raises(ValueError, match="cannot show 7 classes: the collection has 6"):
        sample_classes(data, 7)


def test_tsne_separates_separated_classes_and_repeats_with_its_seed() -> None:
    torch.manual_seed(0)
    labels = torch.arange(3).repeat_interleave(10)
    embeddings = 20 * torch.eye(3, 8)[labels] + torch.randn(30, 8)
    points = tsne_points(embeddings, seed=1)
    assert points.shape == (30, 2)
    assert (points == tsne_points(embeddings, seed=1)).all()
    centres = torch.stack([torch.from_numpy(points[labels.numpy() == c]).mean(0) for c in range(3)])
    spread = max(float(torch.from_numpy(points[labels.numpy() == c]).std(0).norm()) for c in range(3))
    assert float(torch.pdist(centres).min()) > 2 * spread


def test_png_tensorboard_figure_and_projector_files(tmp_path: Path) -> None:
    data = collection()
    embeddings = torch.randn(len(data), 4)
    with SummaryWriter(str(tmp_path / "run")) as writer:
        png = write_embedding_visuals(writer, tmp_path / "run" / "tsne_val.png", "val", embeddings, data, step=7)
    assert png == tmp_path / "run" / "tsne_val.png"
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.size[0] > 300
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("val/tsne")] == [7]
    config = (tmp_path / "run" / "projector_config.pbtxt").read_text()
    assert "sprite" in config and "val_embeddings" in config
    folder = next((tmp_path / "run").glob("00007/val_embeddings"))
    rows = (folder / "tensors.tsv").read_text().splitlines()
    assert len(rows) == len(data) and len(rows[0].split("\t")) == 4
    assert (folder / "metadata.tsv").read_text().splitlines()[:2] == ["g0/char0", "g0/char0"]
    with Image.open(folder / "sprite.png") as sprite:
        assert sprite.size == (60, 60)  # 30 thumbnails of 10 px, 6 x 6 grid


def test_without_a_writer_only_the_png_is_written(tmp_path: Path) -> None:
    png = write_embedding_visuals(None, tmp_path / "t.png", "test", torch.randn(30, 4), collection())
    assert png.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["t.png"]


def test_projector_callback_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="split must be 'train', 'val' or 'test', got 'dev'"):
        EmbeddingProjector(split="dev", classes=3)
    with pytest.raises(ValueError, match=r"classes must be >= 0 \(0 is off\), got -1"):
        EmbeddingProjector(classes=-1)
