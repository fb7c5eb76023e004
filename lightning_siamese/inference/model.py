"""A trained model for tools: load a checkpoint, embed files, and the thresholds it keeps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lightning_siamese.data.transforms.views import embed_views
from lightning_siamese.evaluation.writers import reference_statistics
from lightning_siamese.inference.images import read_image

if TYPE_CHECKING:
    from lightning_siamese.models import SiameseModule


def load_trained(ckpt: str) -> tuple[SiameseModule, dict]:
    """A checkpoint's model in eval mode and its data module's settings (image size, crop, channels)."""
    from lightning_siamese.inference.checkpoints import check_checkpoint_file
    from lightning_siamese.models import SiameseModule

    saved = check_checkpoint_file(ckpt)
    data = saved.get("datamodule_hyper_parameters") or {}
    if "image_size" not in data:
        raise ValueError(
            f"{ckpt} records no data module settings (image size, crop): was it written by `lightning fit`?"
        )
    # A data module's saved state (the signature module's training pixel std) completes its settings.
    state = saved.get(str(data.get("_class_path", "")).rsplit(".", 1)[-1])
    data = {**data, **(state if isinstance(state, dict) else {})}
    return SiameseModule.load_from_checkpoint(ckpt, map_location="cpu").eval(), data


class Embedder(torch.nn.Module):
    """A trained model's evaluation-mode ``embed`` (encoder, and its ``eval_flip`` and ``eval_shift``), for export.

    It holds the encoder alone: the LightningModule around it (metrics, trainer hooks) cannot
    be traced.
    """

    def __init__(self, model: SiameseModule) -> None:
        super().__init__()
        self.encoder, self.eval_flip, self.eval_shift = model.encoder, model.eval_flip, model.eval_shift

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return embed_views(self.encoder, images, self.eval_flip, self.eval_shift)


def embed_paths(model: SiameseModule, data: dict, paths: list[str], batch_size: int = 256) -> torch.Tensor:
    """``model.embed`` of image files read as the checkpoint's data module prepared its images, ``[N, D]``."""
    with torch.no_grad():
        return torch.cat(
            [
                model.embed(torch.cat([read_image(p, data) for p in paths[i : i + batch_size]]))
                for i in range(0, len(paths), batch_size)
            ]
        )


def decision_threshold(model: SiameseModule, ckpt: str, threshold: float | None) -> tuple[float, str]:
    """The threshold on scores for "same": ``threshold`` if given, else the checkpoint's validation one, and where it came from."""
    if threshold is not None:
        return threshold, "--threshold"
    if model.verification_threshold is not None:
        rule = model.verification_threshold_rule or "accuracy"  # checkpoints from before the rule was kept
        fitted = {"accuracy": "most accurate", "eer": "equal-error point"}.get(
            rule, f"false-accept rate {rule.removeprefix('far ')}"
        )
        return model.verification_threshold, f"validation, {fitted} (stored in the checkpoint)"
    if model.head.probability:
        return 0.5, "0.5 (the head's probability; no validation threshold stored)"
    raise ValueError(
        f"{ckpt} stores no verification threshold (its data module has no validation pairs): pass --threshold"
    )


def writer_threshold(model: SiameseModule, data: dict, ckpt: str, references: list[str]) -> tuple[float, str]:
    """A writer's own threshold, mean - k std of the similarities among their reference signatures,
    with the k fitted on the validation writers (see evaluation/writers.py)."""
    if model.writer_threshold_k is None:
        raise ValueError(
            f"{ckpt} stores no per-writer k (it was not validated on signature writers): drop --references"
        )
    if len(references) < 2:
        raise ValueError(f"--references needs at least two reference signatures, got {len(references)}: {references}")
    with torch.no_grad():
        table = model.embed(torch.cat([read_image(p, data) for p in references]))
        mean, std = reference_statistics(table, torch.arange(len(references)), model.head.similarity)
    threshold = float(mean) - model.writer_threshold_k * max(float(std), 1e-6)
    return threshold, f"the writer's {len(references)} references, mean - {model.writer_threshold_k:.3g} std"
