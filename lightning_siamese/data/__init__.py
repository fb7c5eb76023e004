from lightning_siamese.data.datamodules import EvaluationSet, OmniglotDataModule, PairBatches
from lightning_siamese.data.samplers import BalancedPairSampler, Episodes, sample_episodes
from lightning_siamese.data.sources import ImageCollection, load_omniglot
from lightning_siamese.data.transforms import KochAffine

__all__ = [
    "BalancedPairSampler",
    "Episodes",
    "EvaluationSet",
    "ImageCollection",
    "KochAffine",
    "OmniglotDataModule",
    "PairBatches",
    "load_omniglot",
    "sample_episodes",
]
