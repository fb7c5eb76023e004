"""Lightning callbacks: they call ``evaluation/`` and write files; they hold no maths of their own.

The names here are the ones configs use as ``class_path`` (``lightning_siamese.callbacks.CosineOverTime``).
"""

from lightning_siamese.callbacks.checkpoint import RunCheckpoint, StopOnNonFiniteLoss
from lightning_siamese.callbacks.health import TrainingHealth
from lightning_siamese.callbacks.report import OneShotReport, StageRecords
from lightning_siamese.callbacks.schedules import CosineOverTime, MomentumRamp
from lightning_siamese.callbacks.visuals import (
    EmbeddingProjector,
    EmbeddingWriter,
    PairGridLogger,
)

__all__ = [
    "CosineOverTime",
    "EmbeddingProjector",
    "EmbeddingWriter",
    "MomentumRamp",
    "OneShotReport",
    "PairGridLogger",
    "RunCheckpoint",
    "StageRecords",
    "StopOnNonFiniteLoss",
    "TrainingHealth",
]
