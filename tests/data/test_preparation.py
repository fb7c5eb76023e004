"""One preparation per data module (uint8 images to the float tensors a model takes), used everywhere.

A signature module divides by the training pixel standard deviation; what its evaluation sets
give the model and what the callbacks embed must be the same tensors.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lightning_siamese.callbacks import visuals
from lightning_siamese.callbacks.health import TrainingHealth
from lightning_siamese.callbacks.report import OneShotReport
from lightning_siamese.callbacks.visuals import EmbeddingProjector
from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from lightning_siamese.data.transforms.views import ScaledToFloat, to_float
from lightning_siamese.models import SiameseModule
from lightning_siamese.models.embedding import embed_aligned, embed_all
from lightning_siamese.models.heads import ContrastiveHead
from tests.data.test_signatures import WRITERS, make_module, write_sign_data
from tests.tiny import tiny_data


class RecordingEncoder(nn.Module):
    """An encoder of any image size (the mean of each channel, scaled) that keeps every batch it is given."""

    embedding_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(self.embedding_dim))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return x.flatten(1).mean(1, keepdim=True) * self.scale


def signatures(tmp_path: Path):
    data = make_module(write_sign_data(tmp_path / "signs", WRITERS), seed=0)
    data.setup("fit")
    return data


def test_every_data_module_has_one_preparation_its_evaluation_sets_use(tmp_path: Path, tiny_omniglot: Path) -> None:
    data = signatures(tmp_path)
    assert data.pixel_std < 0.9  # the scale matters: not 1
    val = data.val_dataloader().dataset
    images = data.split("val").images
    assert torch.equal(data.prepare(images[:3]), torch.stack([val[i][0] for i in range(3)]))
    assert torch.equal(data.prepare(images[:3]), to_float(images[:3]) * (1.0 / data.pixel_std))
    assert isinstance(data.prepare, ScaledToFloat)  # a plain object: DataLoader workers can pickle it
    restored = make_module(tmp_path / "signs")
    restored.load_state_dict({"pixel_std": 0.5, "kind": "signatures"})
    assert torch.equal(restored.prepare(images[:2]), to_float(images[:2]) * 2)  # the checkpoint's std
    plain = tiny_data(tiny_omniglot)
    plain.setup("fit")
    assert plain.prepare is to_float
    assert torch.equal(plain.val_dataloader().dataset[0][0], to_float(plain.split("val").images[0]))


def test_embed_all_and_embed_aligned_take_the_preparation() -> None:
    module = SiameseModule(RecordingEncoder(), head=ContrastiveHead)
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    embed_all(module, images)
    assert torch.equal(module.encoder.seen[-1], to_float(images))  # to_float by default
    embed_all(module, images, prepare=ScaledToFloat(3.0))
    assert torch.equal(module.encoder.seen[-1], to_float(images) * 3.0)
    from lightning_siamese.data.transforms.views import AlignmentViews

    views = AlignmentViews(shifts=(0,), scales=(1.0,), angles=())
    embed_aligned(module, images, views, prepare=ScaledToFloat(3.0))  # the one view: the image itself, resampled
    assert torch.allclose(module.encoder.seen[-1], to_float(images) * 3.0, atol=1e-5)


def test_the_health_callback_embeds_what_validation_embeds(tmp_path: Path) -> None:
    data = signatures(tmp_path)
    module = SiameseModule(RecordingEncoder(), head=ContrastiveHead)
    health = TrainingHealth(sample=4)
    health.on_train_start(SimpleNamespace(datamodule=data), module)
    dataset = data.val_dataloader().dataset
    expected = torch.stack([dataset[int(i)][0] for i in health._probe(len(dataset))])
    assert torch.equal(torch.cat(module.encoder.seen), expected)


def test_the_projector_embeds_as_the_data_module_prepares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = signatures(tmp_path)
    module = SiameseModule(RecordingEncoder(), head=ContrastiveHead)
    shown = {}
    monkeypatch.setattr(visuals, "write_embedding_visuals", lambda *args: shown.setdefault("collection", args[4]))
    trainer = SimpleNamespace(
        interrupted=False,
        fast_dev_run=False,
        is_global_zero=True,
        datamodule=data,
        loggers=[],
        log_dir=str(tmp_path / "run"),
        default_root_dir=str(tmp_path),
        global_step=0,
    )
    EmbeddingProjector(split="val", classes=2).on_fit_end(trainer, module)
    assert torch.equal(torch.cat(module.encoder.seen), data.prepare(shown["collection"].images))


class DoubledOmniglot(OmniglotDataModule):
    """An Omniglot module with a preparation of its own, to see that the report takes it."""

    @property
    def prepare(self) -> ScaledToFloat:
        return ScaledToFloat(2.0)


def test_the_end_of_run_report_embeds_as_the_data_module_prepares(tiny_omniglot: Path) -> None:
    data = tiny_data(tiny_omniglot)
    data.__class__ = DoubledOmniglot
    data.setup("fit")
    module = SiameseModule(RecordingEncoder(), head=ContrastiveHead)
    trainer = SimpleNamespace(datamodule=data, precision_plugin=SimpleNamespace(forward_context=contextlib.nullcontext))
    report = OneShotReport(split="val", tasks=4, seed=3)
    report.evaluate(trainer, module)
    images = data.evaluation_set("val", tasks=4, seed=3).collection.images
    assert torch.equal(torch.cat(module.encoder.seen), data.prepare(images))
    assert torch.equal(data.val_dataloader().dataset[0][0], to_float(images[0]) * 2.0)
