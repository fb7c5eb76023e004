"""Every head trains through the same LightningModule on the batch kind it supports."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from lightning_siamese.models import (
    ContrastiveHead,
    CosFaceHead,
    KochEncoder,
    KochHead,
    PrototypicalHead,
    SiameseModule,
    TripletHead,
)
from tests.tiny import tiny_data, tiny_encoder


def tiny_task(root: Path, kind: str) -> OmniglotDataModule:
    """5-way tasks on the tiny Omniglot: one alphabet to train on, one to validate."""
    return OmniglotDataModule(
        root=str(root),
        sets=["images_background"],
        val_alphabets=["Gamma"],
        test_alphabets=["Delta"],
        image_size=28,
        batch_kind=kind,
        batch_size=24,
        images_per_class=4,
        pairs_per_epoch=24 * 6,
        n_way=5,
        val_tasks=40,
        val_pairs=32,
        seed=0,
    )


def quiet_trainer(tmp_path: Path, max_epochs: int, **options) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (KochHead, "pairs"),
        (ContrastiveHead, "pairs"),
        (lambda d: ContrastiveHead(d, mining="hard"), "classes"),
        (lambda d: TripletHead(d, normalize=True), "triplets"),
        (lambda d: TripletHead(d, mining="hard", normalize=True), "classes"),
        (lambda d: TripletHead(d, mining="semihard", squared=True), "classes"),
        (lambda d: TripletHead(d, mining="all"), "classes"),
        (PrototypicalHead, "classes"),
        (PrototypicalHead, "triplets"),
    ],
)
def test_each_head_learns_the_tiny_task(tiny_omniglot: Path, tmp_path: Path, head, kind: str) -> None:
    pl.seed_everything(0)
    data = tiny_task(tiny_omniglot, kind)
    encoder = KochEncoder(
        input_size=28,
        kernel_sizes=(3, 3, 2, 2),
        channels=(8, 16, 16, 32),
        embedding_dim=32,
        init="default",
        output="sigmoid" if head is KochHead else "linear",
    )
    module = SiameseModule(encoder, head=head, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    trainer = quiet_trainer(tmp_path, max_epochs=4)
    before = trainer.validate(module, datamodule=data, verbose=False)[0]
    trainer.fit(module, datamodule=data)
    after = trainer.callback_metrics
    assert torch.isfinite(after["train/loss"])
    # Untrained distance heads already score ~80% here (5-way; the drawers differ by a
    # pixel of jitter), so ask for a lower validation loss and a higher accuracy.
    assert after["val/loss"] < before["val/loss"]
    assert after["val/oneshot_acc"] > max(before["val/oneshot_acc"], 60.0)


def test_a_head_and_a_batch_kind_that_do_not_fit_fail_before_training(tiny_omniglot: Path, tmp_path: Path) -> None:
    data = tiny_data(tiny_omniglot, batch_kind="triplets")
    encoder = tiny_encoder()
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    with pytest.raises(ValueError, match="KochHead trains on pairs, but the data module's batch_kind is 'triplets'"):
        trainer.fit(SiameseModule(encoder, head=KochHead), datamodule=data)


def test_cosface_learns_from_one_image_per_class_batches(tiny_omniglot: Path, tmp_path: Path) -> None:
    pl.seed_everything(0)
    data = tiny_data(
        tiny_omniglot, batch_kind="classes", images_per_class=1, pairs_per_epoch=8 * 16, val_tasks=40, val_pairs=32
    )
    num_classes = data.split("train").num_classes
    encoder = KochEncoder(
        input_size=28,
        kernel_sizes=(3, 3, 2, 2),
        channels=(8, 16, 16, 32),
        embedding_dim=32,
        init="default",
        output="linear",
    )
    module = SiameseModule(
        encoder,
        head=lambda d: CosFaceHead(d, num_classes, scale=16, margin=0.2),
        optimizer=lambda p: torch.optim.Adam(p, lr=3e-3),
    )
    trainer = pl.Trainer(
        max_epochs=4,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    before = trainer.validate(module, datamodule=data, verbose=False)[0]
    trainer.fit(module, datamodule=data)
    after = trainer.callback_metrics
    assert "val/loss" not in after  # a classifying head has no loss on pairs of unseen classes
    assert after["val/oneshot_acc"] > before["val/oneshot_acc"] + 5


def test_mining_heads_refuse_one_image_per_class(tiny_omniglot: Path, tmp_path: Path) -> None:
    data = tiny_data(tiny_omniglot, batch_kind="classes", images_per_class=1)
    encoder = tiny_encoder()
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    with pytest.raises(ValueError, match=r"TripletHead needs two images of a class in a batch.*images_per_class is 1"):
        trainer.fit(SiameseModule(encoder, head=TripletHead), datamodule=data)


def test_eval_flip_averages_an_image_and_its_mirror_outside_training() -> None:
    encoder = tiny_encoder()
    module = SiameseModule(encoder, eval_flip=True).eval()
    images = torch.rand(3, 1, 28, 28)
    expected = (encoder(images) + encoder(images.flip(-1))) / 2
    assert torch.allclose(module.embed(images), expected)
    assert torch.allclose(module.embed(images.flip(-1)), module.embed(images), atol=1e-6)  # mirror-invariant
    module.train()
    assert torch.allclose(module.embed(images), encoder(images))


def test_eval_shift_averages_an_image_and_its_four_shifted_copies_outside_training() -> None:
    encoder = tiny_encoder()
    images = torch.rand(3, 1, 28, 28)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="replicate")
    shifted = [padded[..., 0:28, 2:30], padded[..., 4:32, 2:30], padded[..., 2:30, 0:28], padded[..., 2:30, 4:32]]
    assert torch.equal(shifted[0][..., 2:, :], images[..., :-2, :])  # moved down by 2 px, top edge replicated
    assert torch.equal(shifted[0][..., :2, :], images[..., :1, :].expand(-1, -1, 2, -1))
    expected = torch.stack([encoder(v) for v in (images, *shifted)]).mean(0)
    module = SiameseModule(encoder, eval_shift=2).eval()
    assert torch.allclose(module.embed(images), expected, atol=1e-6)
    both = SiameseModule(encoder, eval_shift=2, eval_flip=True).eval()  # ten views: the five and their mirrors
    mirrored = torch.stack([encoder(v.flip(-1)) for v in (images, *shifted)]).mean(0)
    assert torch.allclose(both.embed(images), (expected + mirrored) / 2, atol=1e-6)
    module.train()
    assert torch.allclose(module.embed(images), encoder(images))
    with pytest.raises(ValueError, match="eval_shift must be a number of pixels >= 0, got -1"):
        SiameseModule(encoder, eval_shift=-1)


def test_channels_last_and_compile_switches_keep_embeddings_and_checkpoint_names() -> None:
    torch.manual_seed(0)
    encoder = tiny_encoder()
    plain = SiameseModule(encoder).eval()
    images = torch.rand(3, 1, 28, 28)
    expected = plain.embed(images)
    fast = SiameseModule(encoder, channels_last=True).eval()
    assert torch.allclose(fast.embed(images), expected, atol=1e-5)
    assert encoder.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    compiled = SiameseModule(encoder, compile=True)
    assert set(compiled.state_dict()) == set(plain.state_dict())  # no _orig_mod. prefixes


def test_a_checkpoint_keeps_every_fitted_threshold_side_by_side() -> None:
    # Verification threshold and rule, open-set rejection threshold and per-writer k are fitted by
    # different validations; one checkpoint must keep them all without one overwriting another.
    def small() -> SiameseModule:
        encoder = tiny_encoder()
        return SiameseModule(encoder, threshold_rule="far", target_far=0.01, openset=True)

    module = small()
    module.verification_threshold, module.verification_threshold_rule = 0.25, "far 0.01"
    module.openset_threshold, module.writer_threshold_k = -0.75, 1.5
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    restored = small()
    restored.on_load_checkpoint(checkpoint)
    kept = (
        restored.verification_threshold,
        restored.verification_threshold_rule,
        restored.openset_threshold,
        restored.writer_threshold_k,
    )
    assert kept == (0.25, "far 0.01", -0.75, 1.5)
    restored.on_load_checkpoint({})  # a checkpoint from before these were kept: none fitted
    assert restored.verification_threshold is restored.openset_threshold is restored.writer_threshold_k is None
