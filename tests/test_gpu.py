"""GPU checks: skipped on machines without CUDA (CI has none)."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lightning_siamese.evaluation.oneshot import evaluate_episodes
from lightning_siamese.models import SiameseModule
from tests.tiny import tiny_data, tiny_encoder

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_fit_and_evaluate_on_gpu_match_cpu(
    tiny_omniglot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cuDNN uses TF32 by default, which moves embeddings by ~1e-3: compare in full float32.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    data = tiny_data(tiny_omniglot, batch_size=16, pairs_per_epoch=64, val_tasks=20, val_pairs=32)
    encoder = tiny_encoder(channels=(4, 8, 8, 16), embedding_dim=32)
    module = SiameseModule(encoder)
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        max_epochs=1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=data)
    assert trainer.strategy.root_device.type == "cuda"  # (Lightning moves the model back to the CPU after fit)
    logged = trainer.callback_metrics["val/oneshot_acc"].item()

    evaluation = data.evaluation_set("val")
    images = torch.stack([evaluation[i][0] for i in range(len(evaluation))])
    module.cuda().eval()
    with torch.no_grad():
        on_gpu = module.embed(images.cuda())
        recomputed = evaluate_episodes(on_gpu, evaluation.episodes, module.head.similarity).accuracy
        module.cpu()
        on_cpu = module.embed(images)
    assert abs(recomputed - logged) <= 1.0  # one query of 100 may flip on batch-size rounding
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-4)
