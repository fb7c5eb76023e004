"""Under bf16 autocast the encoder runs in bf16 and every head's loss in float32."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lightning_siamese.models import KochEncoder, SiameseModule, TripletHead
from tests.models.test_finite_gradients import build, cases
from tests.models.test_module import quiet_trainer, tiny_task

BATCHES = {
    "pairs": lambda x: {"first": x[:4], "second": x[4:], "same": torch.tensor([1, 0, 1, 0])},
    "triplets": lambda x: {"anchor": x[:3], "positive": x[3:6], "negative": torch.cat([x[6:], x[:1]])},
    "classes": lambda x: {"images": x, "labels": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])},
}


def tiny_encoder() -> KochEncoder:
    return KochEncoder(input_size=28, kernel_sizes=(3, 3, 2, 2), channels=(4, 8, 8, 8), embedding_dim=8, init="default")


@pytest.mark.parametrize(("cls", "options"), cases())
def test_each_head_scores_a_bf16_encoder_in_float32(cls, options) -> None:
    torch.manual_seed(0)
    module = SiameseModule(tiny_encoder(), head=build(cls, **options))
    images = torch.rand(8, 1, 28, 28)
    for kind in module.head.trains_on:
        batch = BATCHES[kind](images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module.training_loss(batch)
            embedded = {k: module.embed(v).float() if v.is_floating_point() else v for k, v in batch.items()}
        assert embedded[next(iter(embedded))].dtype == torch.float32
        assert loss.dtype == torch.float32, f"{cls.__name__} on {kind}"
        # The same bf16 embeddings, scored outside autocast: the loss must be the float32 one.
        if kind == "pairs":
            expected = module.head.loss(embedded["first"], embedded["second"], batch["same"])
        elif kind == "triplets":
            expected = module.head.triplet_loss(embedded["anchor"], embedded["positive"], embedded["negative"])
        else:
            expected = module.head.batch_loss(embedded["images"], batch["labels"])
        torch.testing.assert_close(loss, expected, rtol=0, atol=0)


def test_a_bf16_channels_last_fit_trains_on_the_cpu(tiny_omniglot: Path, tmp_path: Path) -> None:
    pl.seed_everything(0)
    data = tiny_task(tiny_omniglot, "classes")
    module = SiameseModule(
        tiny_encoder(),
        head=lambda d: TripletHead(d, mining="hard", normalize=True),
        optimizer=lambda p: torch.optim.Adam(p, lr=3e-3),
        channels_last=True,
    )
    trainer = quiet_trainer(tmp_path, max_epochs=3, precision="bf16-mixed")
    before = trainer.validate(module, datamodule=data, verbose=False)[0]
    trainer.fit(module, datamodule=data)
    after = trainer.callback_metrics
    assert torch.isfinite(after["train/loss"])
    assert after["val/loss"] < before["val/loss"]
    assert module.encoder.features[0].weight.dtype == torch.float32  # master weights stay float32
