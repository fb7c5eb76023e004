from lightning_siamese.data.datamodules import EvaluationSet, OmniglotDataModule, SampledBatches
from lightning_siamese.data.samplers import (
    BalancedPairSampler,
    ClassBalancedSampler,
    Episodes,
    TripletSampler,
    sample_episodes,
)
from lightning_siamese.data.sources import ImageCollection, load_omniglot
from lightning_siamese.data.transforms import KochAffine

__all__ = [
    "BalancedPairSampler",
    "ClassBalancedSampler",
    "Episodes",
    "EvaluationSet",
    "ImageCollection",
    "KochAffine",
    "OmniglotDataModule",
    "TripletSampler",
    "SampledBatches",
    "load_omniglot",
    "sample_episodes",
]
