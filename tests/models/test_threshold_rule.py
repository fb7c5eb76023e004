"""SiameseModule's threshold_rule: fitted on validation, kept in the checkpoint, shown by verify."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lightning_siamese.data import LFWDataModule
from lightning_siamese.evaluation.verification import (
    fit_threshold,
    verification_metrics,
)
from lightning_siamese.inference.model import decision_threshold
from lightning_siamese.models import KochEncoder, SiameseModule, TripletHead
from lightning_siamese.models.embedding import embed_all
from tests.data.test_lfw_datamodule import write_lfw


def small_module(**kwargs) -> SiameseModule:
    encoder = KochEncoder(
        input_size=32,
        kernel_sizes=(3, 3, 2, 2),
        channels=(4, 4, 4, 4),
        embedding_dim=8,
        init="default",
        output="linear",
    )
    return SiameseModule(encoder, head=TripletHead, **kwargs)


@pytest.mark.parametrize(("rule", "far"), [("accuracy", None), ("eer", None), ("far", 0.25)])
def test_validation_fits_the_rule_and_the_checkpoint_keeps_it(tmp_path: Path, rule: str, far) -> None:
    pl.seed_everything(0)
    data = LFWDataModule(
        root=str(write_lfw(tmp_path / "lfw")), image_size=32, batch_size=4, eval_batch_size=8, val_fraction=0.5
    )
    module = small_module(threshold_rule=rule, target_far=far)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    dataset = data.val_dataloader().dataset
    table = embed_all(module, dataset.collection.images)
    scores = module.head.similarity(table[dataset.pairs["first"]], table[dataset.pairs["second"]])
    expected = fit_threshold(scores, dataset.pairs["same"], rule, far)
    assert module.verification_threshold == pytest.approx(expected)
    # val/acc is the accuracy at the fitted threshold.
    assert metrics["val/acc"] == pytest.approx(verification_metrics(scores, dataset.pairs["same"], expected).accuracy)

    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(
        path, map_location="cpu", weights_only=False
    )  # the test built its encoder in Python: hparams hold it
    assert saved["verification_threshold_rule"] == (rule if far is None else f"far {far:g}")
    loaded = small_module()
    loaded.on_load_checkpoint(saved)
    assert loaded.verification_threshold == module.verification_threshold
    assert loaded.verification_threshold_rule == saved["verification_threshold_rule"]
    # verify (and identify) say how the stored threshold was fitted; --threshold overrides it.
    threshold, source = decision_threshold(loaded, str(path), None)
    assert threshold == module.verification_threshold
    fitted = {"accuracy": "most accurate", "eer": "equal-error point", "far": "false-accept rate 0.25"}[rule]
    assert source == f"validation, {fitted} (stored in the checkpoint)"
    assert decision_threshold(loaded, str(path), 0.3) == (0.3, "--threshold")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold_rule": "far"}, "threshold_rule 'far' needs target_far"),
        (
            {"threshold_rule": "far", "target_far": 0.0},
            "target_far must be a false-accept rate strictly between 0 and 1.*got 0.0",
        ),
        ({"threshold_rule": "far", "target_far": 1.5}, "got 1.5"),
        ({"threshold_rule": "eer", "target_far": -0.2}, "got -0.2"),
        ({"threshold_rule": "best"}, "threshold_rule must be one of .*got 'best'"),
    ],
)
def test_bad_threshold_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small_module(**kwargs)
