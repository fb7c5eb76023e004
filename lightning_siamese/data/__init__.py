"""Data: sources (files to tensors), samplers (labels to pairs, batches, episodes), transforms, data modules.

The names here are the ones configs use as ``class_path`` (``lightning_siamese.data.OmniglotDataModule``).
"""

from lightning_siamese.data.datamodules.base import EvaluationSet, SiameseDataModule
from lightning_siamese.data.datamodules.batches import KochPairBatches, SampledBatches
from lightning_siamese.data.datamodules.folder import FolderDataModule
from lightning_siamese.data.datamodules.lfw import LFWDataModule
from lightning_siamese.data.datamodules.mnist import MNISTDataModule
from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from lightning_siamese.data.datamodules.signatures import SignatureDataModule
from lightning_siamese.data.samplers.classes import ClassBalancedSampler
from lightning_siamese.data.samplers.episodes import Episodes, sample_episodes
from lightning_siamese.data.samplers.pairs import (
    BalancedPairSampler,
    ImagePairSampler,
    TripletSampler,
)
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.sources.folder import load_image_folder
from lightning_siamese.data.sources.omniglot import load_lake_runs, load_omniglot
from lightning_siamese.data.transforms.augment import DarkShotAugment, KochAffine
from lightning_siamese.data.transforms.views import AlignmentViews

__all__ = [
    "AlignmentViews",
    "BalancedPairSampler",
    "ClassBalancedSampler",
    "DarkShotAugment",
    "Episodes",
    "EvaluationSet",
    "FolderDataModule",
    "ImageCollection",
    "ImagePairSampler",
    "KochAffine",
    "KochPairBatches",
    "LFWDataModule",
    "MNISTDataModule",
    "OmniglotDataModule",
    "SampledBatches",
    "SiameseDataModule",
    "SignatureDataModule",
    "TripletSampler",
    "load_image_folder",
    "load_lake_runs",
    "load_omniglot",
    "sample_episodes",
]
